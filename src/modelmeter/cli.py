"""The ``modelmeter`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``configure(parser)`` (adds its flags) and ``run(args) -> int``.
Modules are imported only when their command runs, so ``modelmeter --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("modelmeter.launcher", "run the whole local stack (collector, Prometheus, Alertmanager, dashboard)"),
    "collector": ("modelmeter.service.cli", "run the collector (ingestion API and /metrics)"),
    "dashboard": ("modelmeter.dashboard.cli", "run the live Dash dashboard on Prometheus"),
    "demo": ("modelmeter.demo.cli", "run the demo model service and replay its real data stream"),
    "check-spec": ("modelmeter.spec_cli", "validate a model spec and its reference data"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmeter",
        description="Real-time monitoring of machine-learning models in production.",
    )
    from modelmeter import __version__

    parser.add_argument("--version", action="version", version=f"modelmeter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip().splitlines()[0],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.configure(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
