"""The Prometheus and Alertmanager files under deploy/, checked by the real promtool and amtool.

``deploy/checks/prometheus.sh`` runs the same commands for ``make check-deploy``; these tests let
pytest report them too, and check what the tools do not: every alert has a severity, a summary and
a description carrying its value, every alert has a unit test that fires it and one where it
stays silent, every recording rule has a value test, and the README's alert table lists every
alert with its severity and ``for``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import DEPLOY, REPO, require_binary
from modelmeter.spec import DEFAULT_THRESHOLDS

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"

#: Alerts about a collector, not a model: no model label; they name the instance instead.
COLLECTOR_ALERTS = frozenset({"CollectorDown", "StoreNearBudget"})
#: Alerts with no per-model threshold: any loss alerts, or the figure is a collector setting.
ABSOLUTE_ALERTS = frozenset(
    {"CollectorDown", "ClientDroppingEvents", "StoreNearBudget", "PredictionsExpiringEarly"}
)


def run_tool(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False
    )


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of the shipped rule files that has the key ``kind`` (alert or record)."""
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


def test_prometheus_config_is_valid() -> None:
    promtool = require_binary("promtool")
    result = run_tool(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_files_are_valid() -> None:
    promtool = require_binary("promtool")
    assert RULE_FILES, "no rule files in deploy/prometheus/rules/"
    result = run_tool(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_is_valid() -> None:
    amtool = require_binary("amtool")
    result = run_tool(amtool, "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    promtool = require_binary("promtool")
    result = run_tool(promtool, "test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_reports_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness fails when an expectation is wrong (so a passing run means something)."""
    promtool = require_binary("promtool")
    (tmp_path / "tests").mkdir()
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    text = (PROMETHEUS / "tests" / "accuracy.yml").read_text()
    broken = text.replace("accuracy 75%", "accuracy 74%", 1)
    assert broken != text
    (tmp_path / "tests" / "accuracy.yml").write_text(broken)
    result = run_tool(promtool, "test", "rules", tmp_path / "tests" / "accuracy.yml")
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", rules("alert"), ids=lambda r: r["alert"])
def test_alert_has_severity_summary_and_value(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule.get("for"), "every alert states its `for` duration"
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    if rule["alert"] != "CollectorDown":  # its value is only up == 0 / absent
        assert "$value" in annotations["description"]
    if rule["alert"] in COLLECTOR_ALERTS:
        assert "$labels.instance" in annotations["description"]
    else:
        assert "$labels.model" in annotations["description"]
    if rule["alert"] in {"FeatureDrift", "DataQuality"}:
        assert "$labels.feature" in annotations["description"]


def alert_checks(firing: bool) -> set[str]:
    """The alerts that some unit test expects to fire (or expects not to fire)."""
    tested: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if bool(check.get("exp_alerts")) == firing:
                    tested.add(check["alertname"])
    return tested


def test_every_alert_has_a_firing_unit_test() -> None:
    assert {r["alert"] for r in rules("alert")} <= alert_checks(firing=True)


def test_every_alert_has_a_silent_unit_test() -> None:
    """An always-firing rule passes the firing tests: each alert also has a silent case."""
    assert {r["alert"] for r in rules("alert")} <= alert_checks(firing=False)


def test_every_recording_rule_has_a_value_test() -> None:
    exprs = []
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            exprs += [c["expr"] for c in case.get("promql_expr_test", []) if c.get("exp_samples")]
    missing = [r["record"] for r in rules("record") if not any(r["record"] in e for e in exprs)]
    assert not missing, f"recording rules without a value test: {missing}"


CALIBRATED_ALERTS = {"MultivariateDrift": "model_multivariate_drift_threshold"}


def test_thresholds_come_from_the_collector_gauge() -> None:
    """One rule serves every model: no alert hard-codes a model threshold."""
    for rule in rules("alert"):
        if rule["alert"] in CALIBRATED_ALERTS:  # the collector's calibrated per-model band
            assert CALIBRATED_ALERTS[rule["alert"]] in rule["expr"], rule["alert"]
        elif rule["alert"] not in ABSOLUTE_ALERTS:
            assert "model_alert_threshold" in rule["expr"], rule["alert"]


def test_threshold_fallbacks_match_the_spec_defaults() -> None:
    """A threshold the collector may not export yet falls back to a default, in the rule and in
    the description alike; once the spec knows the threshold, its default is the same number."""
    rule_fallback = re.compile(
        r'model_alert_threshold\{threshold="(\w+)"\}\)\s*or\s*[^\n]*?\* 0 \+ ([0-9.]+)'
    )
    note_fallback = re.compile(r'threshold="(\w+)"\}\) or vector\(([0-9.]+)\)')
    for rule in rules("alert"):
        used = set(re.findall(r'model_alert_threshold\{threshold="(\w+)"\}', rule["expr"]))
        in_rule = dict(rule_fallback.findall(rule["expr"]))
        in_note = dict(note_fallback.findall(rule["annotations"]["description"]))
        assert in_rule.keys() == in_note.keys(), rule["alert"]
        for name in used:
            assert name in DEFAULT_THRESHOLDS or name in in_rule, (rule["alert"], name)
        for name, default in in_rule.items():
            assert float(default) == float(in_note[name]), (rule["alert"], name)
            if name in DEFAULT_THRESHOLDS:
                assert float(default) == DEFAULT_THRESHOLDS[name], (rule["alert"], name)


def test_readme_alert_table_lists_every_alert() -> None:
    """The README's alert table has one row per alert, with the rule's severity and `for`."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("`") and cells[1] in {"warning", "critical"}:
            rows[cells[0].strip("`")] = (cells[1], cells[4])
    assert {r["alert"]: (r["labels"]["severity"], r["for"]) for r in rules("alert")} == rows


# ---------------------------------------------------------------- a model over several collectors

MERGED_RULES = PROMETHEUS / "rules" / "merged.yml"
SPREAD = "(model:collector_instances:count > 1)"
#: Per-collector gauges a model alert may compare; a spread model needs a merged figure instead.
PER_COLLECTOR_GAUGES = re.compile(
    r"\b(model_accuracy|model_estimated_accuracy|model_label_coverage_ratio|model_feature_drift|"
    r"model_prediction_drift|model_multivariate_drift|model_feature_quality_ratio)\b"
)
#: Per-collector alerts left as they are: no counters of segments exist to merge.
NOT_MERGED = frozenset({"LowSegmentAccuracy"})


FLOAT_COUNTERS = frozenset(
    {"model_estimated_outcomes_total", "model_multivariate_reconstruction_error_sum_total"}
)


def test_windowed_counters_use_the_exact_window_count() -> None:
    """Every counter of merged.yml enters through the one window construction of its header
    (no rate(), increase() or plain offset, whose mix over collectors is not exact); the float
    counters through its variant that tolerates a read-back a hair lower."""
    exact = re.compile(
        r"\(\s*\(\s*last_over_time\((\w+)\[(5m|1h)\]\)\s*-\s*"
        r"last_over_time\(\1\[1h\] offset \2\)\s*\)\s*>= 0\s*unless\s*"
        r"resets\(\1\[\2\]\) > 0\s*\)\s*or\s*last_over_time\(\1\[\2\]\)"
    )
    tolerant = re.compile(
        r"\(\s*clamp_min\(\s*last_over_time\((\w+)\[(5m|1h)\]\)\s*-\s*"
        r"last_over_time\(\1\[1h\] offset \2\),\s*0\s*\)\s*unless\s*"
        r"min_over_time\(\1\[\2\]\)\s*<\s*last_over_time\(\1\[1h\] offset \2\) \* \(1 - 1e-9\)"
        r"\s*\)\s*or\s*last_over_time\(\1\[\2\]\)"
    )
    text = MERGED_RULES.read_text()
    groups = yaml.safe_load(text)["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    assert not any(re.search(r"\b(rate|increase|irate|delta)\(", e) for e in exprs)
    counters = set(re.findall(r"\b(model_\w+_total)\b", text))
    assert counters >= FLOAT_COUNTERS | {
        "model_feature_bin_observations_total",
        "model_prediction_bin_observations_total",
        "model_multivariate_reconstruction_rows_total",
    }
    used = 0
    for expr in exprs:
        names = set(re.findall(r"\b(model_\w+_total)\b", expr))
        if names:
            found = exact.findall(expr) + tolerant.findall(expr)
            assert {n for n, _ in found} == names, expr
            assert {n for n, _ in tolerant.findall(expr)} == names & FLOAT_COUNTERS, expr
            assert len({w for _, w in found}) == 1, expr
            used += len(found)
    assert used >= len(counters)


def test_model_alerts_on_collector_gauges_have_a_merged_branch() -> None:
    """A model spread over collectors: each alert on a per-collector gauge drops that gauge
    when the model is spread and takes a merged figure instead."""
    for rule in rules("alert"):
        expr = rule["expr"]
        if not PER_COLLECTOR_GAUGES.search(expr) or rule["alert"] in NOT_MERGED:
            continue
        assert f"unless on (model) {SPREAD}" in expr, rule["alert"]
        assert f"and on (model) {SPREAD}" in expr, rule["alert"]
        merged = expr.split(f"unless on (model) {SPREAD}", 1)[1]
        assert re.search(r"\bmodel(_\w+)?:\w+:\w+", merged), rule["alert"]


def test_every_merged_alert_fires_and_stays_silent_for_a_spread_model() -> None:
    """merged_alerts.yml fires each alert with a merged branch without instance labels (once
    per model, not per collector) and has a check where it is quiet. (promtool matches the list
    of firing alerts exactly, so the spread models left out of a firing check are quiet too.)"""
    with_branch = {r["alert"] for r in rules("alert") if SPREAD in r["expr"]}
    assert len(with_branch) >= 8
    fired: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load((PROMETHEUS / "tests" / "merged_alerts.yml").read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            alerts = check.get("exp_alerts") or []
            if any("instance" not in a["exp_labels"] for a in alerts):
                fired.add(check["alertname"])
            if not alerts:
                silent.add(check["alertname"])
    assert with_branch <= fired
    assert with_branch <= silent


def test_merged_unit_tests_are_what_their_script_generates() -> None:
    """deploy/prometheus/tests/merged.yml is generated (its expected values come from numpy and
    scipy): the committed file is the script's output."""
    script = PROMETHEUS / "tests" / "merged_expected.py"
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.rstrip("\n") == (PROMETHEUS / "tests" / "merged.yml").read_text().rstrip(
        "\n"
    )
