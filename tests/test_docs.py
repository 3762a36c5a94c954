"""The docs name every module and every metric.

* README's source map lists each file under src/modelmeter.
* docs/metrics.md (the glossary the dashboard serves at /glossary) has an entry for every
  exported family of ``modelmeter.metric_table.METRICS`` and for every recording rule of
  deploy/prometheus/rules/recording.yml and merged.yml, each with its window, its time, its
  guard and a PromQL example that promtool parses.

The glossary's rule for recording rules: every ``record:`` has an anchor of its own, its name
with the colons replaced by hyphens, placed right before the heading of the entry that
describes it, and that heading names it. Twins over another range (``..._rate5m`` and
``..._rate1h``) share one entry: its heading lists both names and both anchors precede it.
An exported family's anchor is its name.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import require_binary

REPO = Path(__file__).resolve().parents[1]
GLOSSARY = REPO / "docs" / "metrics.md"
RULE_FILES = [
    REPO / "deploy" / "prometheus" / "rules" / name for name in ("recording.yml", "merged.yml")
]

#: The terms of "How to read this page"; an entry's Window and Time start with one of them.
WINDOWS = (
    "sliding window",
    "performance window",
    "all time",
    "since the collector process started",
    "since that client started",
    "fixed",
    "now",
    "Prometheus range",
)
TIMES = (
    "prediction time",
    "label arrival time",
    "receipt",
    "scrape time",
    "registration",
    "report",
    "housekeeping",
)

ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
INTRO = "How to read this page"
PROMQL = re.compile(r"```promql\n(.*?)\n```", re.DOTALL)


def test_the_readme_source_map_lists_every_module() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("```\nsrc/modelmeter/") :]
    block = block[: block.index("\n```\n")]
    named = set(re.findall(r"[\w]+\.py", block))
    package = REPO / "src" / "modelmeter"
    modules = {p.name for p in package.rglob("*.py")}
    missing = sorted(modules - named)
    assert not missing, f"README's source map does not name: {missing}"


# ------------------------------------------------------------------- docs/metrics.md


@dataclass(frozen=True)
class Entry:
    """One glossary entry: its anchors, the names its heading lists, and its body."""

    anchors: tuple[str, ...]
    names: tuple[str, ...]
    body: str

    def field(self, name: str) -> str:
        """The text of the bullet ``- **name:** ...`` (continuation lines joined)."""
        match = re.search(rf"^- \*\*{name}:\*\* (.*(?:\n  .*)*)", self.body, re.MULTILINE)
        assert match, f"entry {self.names[0]} has no '- **{name}:**' line"
        return " ".join(part.strip() for part in match.group(1).splitlines())


def anchor_of(name: str) -> str:
    """The anchor of a family (its name) or of a recording rule (colons -> hyphens)."""
    return name.replace(":", "-")


def slug(heading: str) -> str:
    """The id GitHub gives a heading, which a section's own anchor repeats (the dashboard's
    markdown renderer gives headings no ids).

    >>> slug("Recording rules: merged.yml")
    'recording-rules-mergedyml'
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def glossary_entries(text: str) -> list[Entry]:
    """Every entry: anchor lines directly followed by a ``###`` heading outside "How to read
    this page", up to the next anchor or heading. A section (``##``, and the ``###`` of "How to
    read this page") may have one anchor, its :func:`slug`; an entry heading must have
    anchors; an anchor must be right before a heading."""
    lines = text.splitlines()
    entries: list[Entry] = []
    anchors: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        anchor = ANCHOR.fullmatch(line)
        if anchor:
            anchors.append(anchor.group(1))
            i += 1
            continue
        if line.startswith("## ") or (line.startswith("### ") and section == INTRO):
            title = line.split(" ", 1)[1]
            assert anchors in ([], [slug(title)]), f"section {title!r} has anchors {anchors}"
            if line.startswith("## "):
                section = title
            anchors = []
        elif line.startswith("### "):
            assert anchors, f"heading {line!r} has no anchor"
            names = tuple(n.strip() for n in line[4:].split(","))
            body: list[str] = []
            i += 1
            while i < len(lines) and not (
                ANCHOR.fullmatch(lines[i]) or lines[i].startswith(("## ", "### "))
            ):
                body.append(lines[i])
                i += 1
            entries.append(Entry(tuple(anchors), names, "\n".join(body)))
            anchors = []
            continue
        else:
            assert not anchors, f"anchors {anchors} are not right before a heading: {line!r}"
        i += 1
    assert not anchors, f"anchors {anchors} at the end of the page"
    return entries


@pytest.fixture(scope="module")
def glossary() -> str:
    return GLOSSARY.read_text()


@pytest.fixture(scope="module")
def entries(glossary: str) -> list[Entry]:
    return glossary_entries(glossary)


def exported_families() -> list[str]:
    """The names of ``METRICS``, read when the test runs (new families count at once)."""
    from modelmeter.metric_table import METRICS

    return [d.name for d in METRICS]


def recording_rules() -> list[str]:
    """Every ``record:`` of recording.yml and merged.yml."""
    records = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            records.extend(rule["record"] for rule in group["rules"] if "record" in rule)
    assert records
    return records


def test_every_entry_has_one_anchor_per_name_it_lists(entries: list[Entry]) -> None:
    for entry in entries:
        assert entry.anchors == tuple(anchor_of(n) for n in entry.names), entry.names
    anchors = [a for entry in entries for a in entry.anchors]
    duplicates = sorted({a for a in anchors if anchors.count(a) > 1})
    assert not duplicates, f"anchors used twice: {duplicates}"


def test_every_exported_family_has_an_entry(entries: list[Entry]) -> None:
    """A family added to METRICS without an entry in docs/metrics.md fails here."""
    documented = {name for entry in entries for name in entry.names}
    missing = [name for name in exported_families() if name not in documented]
    assert not missing, f"docs/metrics.md has no entry (anchor and heading) for: {missing}"


def test_every_recording_rule_has_an_entry(entries: list[Entry]) -> None:
    """Each record has its own anchor right before the heading of the entry that names it
    (twins share an entry)."""
    by_anchor = {a: entry for entry in entries for a in entry.anchors}
    missing = []
    for record in recording_rules():
        entry = by_anchor.get(anchor_of(record))
        if entry is None or record not in entry.names:
            missing.append(record)
    assert not missing, f"docs/metrics.md has no entry for the recording rules: {missing}"


def test_every_entry_says_its_window_time_and_guard(entries: list[Entry]) -> None:
    assert entries
    for entry in entries:
        name = entry.names[0]
        assert entry.field("Type"), name
        window = entry.field("Window")
        assert window.startswith(WINDOWS), f"{name}: window {window!r} is none of {WINDOWS}"
        time = entry.field("Time")
        assert time.startswith(TIMES), f"{name}: time {time!r} is none of {TIMES}"
        guard = entry.field("Guard")
        assert "min_samples" in guard or guard.startswith("no guard"), f"{name}: {guard!r}"
        assert PROMQL.search(entry.body), f"{name} has no ```promql example"


def test_every_link_in_the_page_has_its_anchor(glossary: str) -> None:
    """In-page links work on GitHub and on the dashboard's /glossary (explicit anchors)."""
    anchors = set(ANCHOR.findall(glossary))
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", glossary)) - anchors)
    assert not broken, f"links to missing anchors: {broken}"
    relative = re.findall(r"\]\((?!#|https?://)[^)]*\)", glossary)
    assert not relative, f"file links do not resolve on /glossary: {relative}"


def test_the_terms_are_defined_in_how_to_read(glossary: str) -> None:
    intro = glossary[glossary.index(f"## {INTRO}") :]
    intro = intro[: intro.index("\n## ", 1)]
    for term in (*WINDOWS, *TIMES):
        assert f"**{term}**" in intro, f"'How to read this page' does not define {term!r}"


def promql_examples(glossary: str) -> list[str]:
    examples = PROMQL.findall(glossary)
    assert len(examples) >= 100
    return examples


def test_promql_examples_name_only_existing_series(glossary: str, entries: list[Entry]) -> None:
    """A typo in a series name is caught: every model*/modelmeter* name in an example is a
    family (histograms with _bucket, _sum, _count), a recording rule or a documented entry."""
    from modelmeter.metric_table import METRICS

    known = set(recording_rules()) | {name for entry in entries for name in entry.names}
    for d in METRICS:
        known.add(d.name)
        if d.type == "histogram":
            known.update(f"{d.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    unknown = set()
    for expr in promql_examples(glossary):
        code = re.sub(r'"[^"]*"', '""', expr)
        for token in re.findall(r"\bmodel[a-z0-9_]*(?::[A-Za-z0-9_]+)*", code):
            if token != "model" and token not in known:
                unknown.add(token)
    assert not unknown, f"PromQL examples name unknown series: {sorted(unknown)}"


def test_promql_examples_parse(glossary: str, tmp_path: Path) -> None:
    """promtool parses every example (as the expression of a recording rule)."""
    promtool = require_binary("promtool")
    examples = promql_examples(glossary)
    rules = {
        "groups": [
            {
                "name": "docs-metrics-examples",
                "rules": [
                    {"record": f"docs:example_{i}", "expr": expr} for i, expr in enumerate(examples)
                ],
            }
        ]
    }
    generated = tmp_path / "glossary-examples.yml"
    generated.write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        [promtool, "check", "rules", str(generated)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(examples)} rules found" in check.stdout
