"""The docs name every module: README's source map lists each file under src/modelmeter."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_source_map_lists_every_module() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("```\nsrc/modelmeter/") :]
    block = block[: block.index("\n```\n")]
    named = set(re.findall(r"[\w]+\.py", block))
    package = REPO / "src" / "modelmeter"
    modules = {p.name for p in package.rglob("*.py")}
    missing = sorted(modules - named)
    assert not missing, f"README's source map does not name: {missing}"
