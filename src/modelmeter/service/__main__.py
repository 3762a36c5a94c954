"""``python -m modelmeter.service``: the collector, same flags as ``modelmeter collector``."""

from __future__ import annotations

import argparse
import sys

from modelmeter.service.cli import configure, run

parser = argparse.ArgumentParser(prog="python -m modelmeter.service")
configure(parser)
sys.exit(run(parser.parse_args()))
