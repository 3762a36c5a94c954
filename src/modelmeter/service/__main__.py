"""``python -m modelmeter.service``: the collector, same flags as ``modelmeter collector``."""

from __future__ import annotations

import argparse
import sys

from modelmeter.service.cli import configure, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m modelmeter.service")
    configure(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
