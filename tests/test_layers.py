"""The house in the large: each layer imports only the layers below it (docs/contract.md, Layout).

Read from the source (every ``import`` and ``from ... import``, at any depth), so an import inside
a function counts as much as one at the top; imports for the type checker only do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "modelmeter"

#: layer -> the modelmeter modules it must never import (prefix match on the dotted name)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sdk": ("modelmeter.engine", "modelmeter.spec", "modelmeter.service", "modelmeter.store",
            "modelmeter.exposition", "modelmeter.scrape", "modelmeter.metric_table",
            "modelmeter.dashboard", "modelmeter.launcher", "modelmeter.demo"),
    "engine": ("modelmeter.",),  # nothing outside the engine (checked below with the exception)
    "spec": ("modelmeter.service", "modelmeter.exposition", "modelmeter.scrape",
             "modelmeter.dashboard", "modelmeter.launcher", "modelmeter.sdk", "modelmeter.demo"),
    "store": ("modelmeter.service", "modelmeter.dashboard", "modelmeter.launcher",
              "modelmeter.sdk", "modelmeter.demo"),
    "exposition": ("modelmeter.service", "modelmeter.dashboard", "modelmeter.launcher",
                   "modelmeter.sdk", "modelmeter.demo"),
    "service": ("modelmeter.dashboard", "modelmeter.launcher", "modelmeter.demo"),
    "dashboard": ("modelmeter.service", "modelmeter.engine", "modelmeter.store",
                  "modelmeter.sdk", "modelmeter.demo"),
}  # fmt: skip
#: third-party modules the SDK must not import at all
SDK_THIRD_PARTY = ("numpy", "pandas", "httpx", "fastapi", "pydantic", "scipy", "sklearn", "yaml")


def _layer(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE)
    head = rel.parts[0].removesuffix(".py")
    if head in ("sdk", "engine", "spec", "service", "dashboard"):
        return head
    if head.startswith("store"):
        return "store"
    if head in ("exposition", "scrape", "metric_table"):
        return "exposition"
    return None


def _imports(path: Path) -> set[str]:
    """Every module imported at run time (``if TYPE_CHECKING:`` blocks are for mypy only)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(p) is not None)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_layer_imports_upwards(path: Path) -> None:
    layer = _layer(path)
    assert layer is not None
    bad = set()
    for name in _imports(path):
        if layer == "engine":
            if name.startswith("modelmeter.") and not name.startswith("modelmeter.engine"):
                bad.add(name)
            continue
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
            bad.add(name)
        if layer == "sdk" and name.split(".")[0] in SDK_THIRD_PARTY:
            bad.add(name)
    assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(bad)}"
