"""The metric glossary (docs/metrics.md) served at ``/glossary``, and the links to it.

docs/metrics.md has one section per exported family, each preceded by an HTML anchor named
after the family (``<a id="model_accuracy"></a>``); a recording rule's anchor is its name with
the colons replaced by hyphens (``model-accuracy-ratio_rate5m``). The dashboard's card titles
and table headers link to ``/glossary#<anchor>``.

The file is read from the source checkout (``docs/metrics.md`` beside ``src/``: a checkout and
an editable install) or from where a wheel installs it (pyproject's data-files:
``<prefix>/share/modelmeter/docs/metrics.md``). It is read again on every visit, so an edited
glossary shows without a restart; when it is missing the page says so and where it looked.

The anchors are not left to the markdown renderer (dcc.Markdown drops an inline
``<a id="..."></a>``: its raw-HTML support renders whole HTML blocks only): the text is split at
each anchor line (outside code fences) and every section is a ``Div`` carrying the anchor as
its id, so ``/glossary#model_accuracy`` has its target whatever the renderer does with HTML.

>>> href("model_accuracy"), href("model:accuracy:ratio_rate5m")
('/glossary#model_accuracy', '/glossary#model-accuracy-ratio_rate5m')
"""

from __future__ import annotations

import re
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dash import dcc, html

__all__ = [
    "GLOSSARY_PATH",
    "anchor",
    "glossary_candidates",
    "glossary_children",
    "href",
    "is_glossary",
    "link",
    "read_glossary",
    "sections",
]

GLOSSARY_PATH = "/glossary"
"""The page's URL path."""


def anchor(family: str) -> str:
    """The glossary anchor of a metric family or recording rule (colons become hyphens).

    >>> anchor("model_feature:psi:window5m")
    'model_feature-psi-window5m'
    """
    return family.replace(":", "-")


def href(family: str) -> str:
    """The glossary URL of a metric family or recording rule."""
    return f"{GLOSSARY_PATH}#{anchor(family)}"


def link(text: Any, family: str, class_name: str = "glossary-link") -> html.A:
    """``text`` linking to the family's glossary entry (a new tab: the dashboard stays)."""
    return html.A(
        text,
        href=href(family),
        target="_blank",
        rel="noopener",
        title=f"{family}: what it measures (glossary)",
        className=class_name,
    )


def is_glossary(pathname: str | None) -> bool:
    """Whether the browser's path is the glossary page (with or without a trailing slash).

    >>> is_glossary("/glossary"), is_glossary("/glossary/"), is_glossary("/"), is_glossary(None)
    (True, True, False, False)
    """
    return pathname is not None and pathname.rstrip("/") == GLOSSARY_PATH


def glossary_candidates() -> list[Path]:
    """Where docs/metrics.md is looked for: the source checkout, then the installed copy."""
    here = Path(__file__).resolve()  # src/modelmeter/dashboard/glossary.py in a checkout
    installed = Path(sysconfig.get_path("data")) / "share" / "modelmeter" / "docs" / "metrics.md"
    return [here.parents[3] / "docs" / "metrics.md", installed]


def read_glossary(paths: Sequence[Path] | None = None) -> tuple[str | None, list[Path]]:
    """(the glossary's text, or ``None`` when no candidate can be read; the paths tried)."""
    tried = list(paths) if paths is not None else glossary_candidates()
    for path in tried:
        try:
            return path.read_text(encoding="utf-8"), tried
        except (OSError, UnicodeDecodeError):
            continue
    return None, tried


_ANCHOR = re.compile(r'^<a\s+(?:id|name)="([^"]+)"\s*>\s*</a>\s*$')
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def sections(text: str) -> list[tuple[str | None, str]]:
    r"""The markdown split at its anchor lines: (anchor or ``None`` for the text before the
    first one, the markdown up to the next anchor). Lines inside code fences never split.

    >>> sections('intro\n<a id="a"></a>\n## A\n```\n<a id="no"></a>\n```\n<a id="b"></a>\nB')
    [(None, 'intro'), ('a', '## A\n```\n<a id="no"></a>\n```'), ('b', 'B')]
    """
    out: list[tuple[str | None, list[str]]] = [(None, [])]
    fence: str | None = None
    for line in text.splitlines():
        marker = _FENCE.match(line)
        if marker:
            run = marker.group(1)
            if fence is None:
                fence = run
            elif run[0] == fence[0] and len(run) >= len(fence):
                fence = None
        found = _ANCHOR.match(line) if fence is None else None
        if found:
            out.append((found.group(1), []))
        else:
            out[-1][1].append(line)
    return [(name, "\n".join(lines).strip("\n")) for name, lines in out if name or lines]


def glossary_children(paths: Sequence[Path] | None = None) -> list[Any]:
    """The glossary page's content: the rendered markdown, or why there is none.

    >>> text = str(glossary_children([Path("/nonexistent/metrics.md")]))
    >>> "glossary is missing" in text and "/nonexistent/metrics.md" in text
    True
    """
    text, tried = read_glossary(paths)
    if text is None:
        return [
            html.H2("The metric glossary is missing"),
            html.P(
                "The dashboard could not read docs/metrics.md; looked in "
                + ", ".join(str(p) for p in tried)
                + ". Install modelmeter from a wheel built with docs/metrics.md, or run it "
                "from a source checkout.",
                className="muted",
                id="glossary-missing",
            ),
        ]
    children: list[Any] = []
    seen: set[str] = set()
    for name, body in sections(text):
        # other raw HTML blocks of the file render as HTML (the file is the package's own,
        # never user input)
        markdown = dcc.Markdown(body, dangerously_allow_html=True, className="glossary-text")
        if name is None or name in seen:  # a repeated anchor: the first one is the target
            children.append(html.Div(markdown, className="glossary-section"))
        else:
            seen.add(name)
            children.append(html.Div(markdown, className="glossary-section", id=name))
    return children
