"""This run's Prometheus and Alertmanager configuration, rendered from ``deploy/``.

:func:`write_run_configs` writes ``DATA_DIR/run/``: ``prometheus.yml`` with this run's
collector and Alertmanager targets (and the scrape token when ``/metrics`` is protected),
``alertmanager.yml`` with the webhook URL, and the alert rules, their ``for:`` capped by
``--max-alert-for`` (:func:`cap_alert_for`).
"""

from __future__ import annotations

import re
import shutil
import sysconfig
from pathlib import Path
from typing import Any

import yaml

from modelmeter.stack_plan import Plan, StackError, client_host, scrape_token
from modelmeter.units import parse_duration

__all__ = [
    "cap_alert_for",
    "deploy_dir",
    "render_alertmanager",
    "render_prometheus",
    "write_run_configs",
]

_FOR_LINE = re.compile(r"(?m)^(\s*for:\s*)(\S+)")


def deploy_dir() -> Path:
    """The ``deploy/`` directory: in the source tree, else as a wheel installs it.

    >>> (deploy_dir() / "prometheus" / "prometheus.yml").is_file()
    True
    """
    here = Path(__file__).resolve()
    installed = Path(sysconfig.get_path("data")) / "share" / "modelmeter" / "deploy"
    candidates = [here.parents[2] / "deploy", installed]
    for candidate in candidates:
        if (candidate / "prometheus" / "prometheus.yml").is_file():
            return candidate
    raise StackError(
        "cannot find the deploy/ directory (prometheus.yml, rules, alertmanager.yml) next to "
        f"the modelmeter package; looked in {', '.join(map(str, candidates))}"
    )


def cap_alert_for(rules_text: str, cap: str) -> str:
    r"""Shorten every ``for:`` in a rule file to at most ``cap``, keeping comments and layout.

    >>> print(cap_alert_for("- alert: A\n  for: 15m\n- alert: B\n  for: 30s\n", "1m"))
    - alert: A
      for: 1m
    - alert: B
      for: 30s
    <BLANKLINE>
    """
    limit = parse_duration(cap)

    def shorten(match: re.Match[str]) -> str:
        keep = parse_duration(match.group(2)) <= limit
        return match.group(1) + (match.group(2) if keep else cap)

    return _FOR_LINE.sub(shorten, rules_text)


def render_prometheus(
    template: str,
    collector_target: str,
    alertmanager_target: str,
    scrape_token_file: Path | None = None,
    **global_overrides: str,
) -> str:
    """This run's prometheus.yml: the shipped one with the collector and Alertmanager targets.

    >>> text = (deploy_dir() / "prometheus" / "prometheus.yml").read_text()
    >>> out = yaml.safe_load(render_prometheus(text, "127.0.0.1:18000", "127.0.0.1:19093"))
    >>> out["scrape_configs"][0]["static_configs"][0]["targets"]
    ['127.0.0.1:18000']
    >>> out["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    ['127.0.0.1:19093']
    """
    config: dict[str, Any] = yaml.safe_load(template)
    config["global"].update(global_overrides)
    for job in config["scrape_configs"]:
        if job["job_name"] == "modelmeter":
            job["static_configs"] = [{"targets": [collector_target]}]
            if scrape_token_file is not None:  # the collector's /metrics needs a read token
                job["authorization"] = {
                    "type": "Bearer",
                    "credentials_file": str(scrape_token_file),
                }
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_target]}]}]
    header = "# Rendered by modelmeter from deploy/prometheus/prometheus.yml; edit that file.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def render_alertmanager(template: str, webhook_url: str | None, **route_overrides: str) -> str:
    """This run's alertmanager.yml: every webhook receiver posts to ``webhook_url`` if given.

    >>> text = (deploy_dir() / "alertmanager" / "alertmanager.yml").read_text()
    >>> out = yaml.safe_load(render_alertmanager(text, "http://127.0.0.1:7000/hook"))
    >>> {c["url"] for r in out["receivers"] for c in r.get("webhook_configs", [])}
    {'http://127.0.0.1:7000/hook'}
    """
    config: dict[str, Any] = yaml.safe_load(template)
    if webhook_url:
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = webhook_url
    config["route"].update(route_overrides)
    header = "# Rendered by modelmeter from deploy/alertmanager/alertmanager.yml; edit that file.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def write_run_configs(plan: Plan, deploy: Path) -> Path:
    """Render this run's configuration into DATA_DIR/run/ and return that directory."""
    run_dir = plan.data_dir / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "rules").mkdir(parents=True)
    for rule_file in sorted((deploy / "prometheus" / "rules").glob("*.yml")):
        text = rule_file.read_text()
        if plan.max_alert_for:
            text = cap_alert_for(text, plan.max_alert_for)
        (run_dir / "rules" / rule_file.name).write_text(text)
    token = scrape_token(plan)
    token_file = None
    if token is not None:
        token_file = run_dir / "scrape-token"
        token_file.touch(mode=0o600)
        token_file.write_text(token)
    (run_dir / "prometheus.yml").write_text(
        render_prometheus(
            (deploy / "prometheus" / "prometheus.yml").read_text(),
            f"{client_host(plan.collector_host)}:{plan.collector_port}",
            f"127.0.0.1:{plan.alertmanager_port}",
            token_file,
        )
    )
    (run_dir / "alertmanager.yml").write_text(
        render_alertmanager(
            (deploy / "alertmanager" / "alertmanager.yml").read_text(), plan.webhook_url
        )
    )
    return run_dir
