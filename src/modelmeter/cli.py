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
    "up": (
        "modelmeter.launcher",
        "run the whole local stack (collector, Prometheus, Alertmanager, dashboard)",
    ),
    "collector": ("modelmeter.service.cli", "run the collector (ingestion API and /metrics)"),
    "dashboard": ("modelmeter.dashboard.cli", "run the live Dash dashboard on Prometheus"),
    "demo": ("modelmeter.demo.cli", "run the demo model service and replay its real data stream"),
    "check-spec": ("modelmeter.spec_cli", "validate a model spec and its reference data"),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not for switches, not for None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool) or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported (all of them when ``None``)."""
    from modelmeter import __version__

    parser = argparse.ArgumentParser(
        prog="modelmeter",
        description="Real-time monitoring of machine-learning models in production.",
        epilog="Run 'modelmeter COMMAND --help' for the flags of one command.",
    )
    parser.add_argument("--version", action="version", version=f"modelmeter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=_HelpFormatter,
        )
        if command is None or command == name:
            module = importlib.import_module(module_name)
            doc = (module.__doc__ or help_text).strip().splitlines()[0]
            cmd.description = doc
            module.configure(cmd)
            cmd.set_defaults(_module=module)
    return parser


def _chosen_command(argv: list[str]) -> str:
    """The subcommand named on the command line, or ``""`` when there is none (e.g. ``--help``)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else ""
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_chosen_command(argv))
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
