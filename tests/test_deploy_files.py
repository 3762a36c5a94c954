"""The container and deployment files are consistent with the repository and with each other.

No Docker engine is needed (none exists where this was written): the Dockerfiles, the Compose
file and the Render blueprint are checked as text; every PromQL expression of the Grafana
dashboard and of the shipped rules is parsed by the real ``promtool``; hadolint and the Compose
JSON schema (also run by ``deploy/checks/containers.sh``) run here too. The token story (no
collector container starts open on 0.0.0.0) is checked through the collector's and the
launcher's own code, and the single container's generated token with the real collector.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from helpers import DEPLOY, REPO, ManagedProcess, free_port, missing, require_binary

DOCKERFILES = sorted(REPO.glob("Dockerfile*"))
COMPOSE = REPO / "docker-compose.yml"
RENDER = REPO / "render.yaml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD_JSON = GRAFANA / "dashboards" / "modelmeter.json"
DATA_DIR = "/data"


# ---------------------------------------------------------------- Dockerfiles


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    result = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    starts = [i for i, (k, _) in enumerate(steps) if k == "FROM"]
    assert starts, f"{path.name}: no FROM"
    return steps[starts[-1] :]


def dockerignored() -> set[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_there_are_three_dockerfiles() -> None:
    assert [p.name for p in DOCKERFILES] == [
        "Dockerfile",
        "Dockerfile.collector",
        "Dockerfile.dashboard",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    ignored = dockerignored()
    copies = [args for keyword, args in instructions(dockerfile) if keyword in ("COPY", "ADD")]
    assert copies, f"{dockerfile.name} copies nothing"
    checked = 0
    for args in copies:
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: no such path"
            top = Path(source).parts[0]
            assert top not in ignored, f"{dockerfile.name}: {source} is excluded by .dockerignore"
            checked += 1
    assert checked


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_slim_pinned_non_root_and_health_checked(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    args = dict(
        a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a and steps.index((k, a)) == 0
    )
    base = args.get("PYTHON_IMAGE", "")
    assert re.fullmatch(r"python:3\.11[.\d]*-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    last = final_stage(dockerfile)
    users = [a for k, a in last if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert any(k == "HEALTHCHECK" for k, _ in last), "no HEALTHCHECK"
    assert any(k == "CMD" for k, _ in last), "no CMD"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_healthcheck_command_is_valid_python(dockerfile: Path) -> None:
    (check,) = [a for k, a in final_stage(dockerfile) if k == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3 :])
    assert argv[:2] == ["python", "-c"], argv
    compile(argv[2], f"{dockerfile.name} HEALTHCHECK", "exec")
    assert "127.0.0.1" in argv[2]


def test_single_container_runs_the_whole_stack_on_port_and_data_volume() -> None:
    steps = final_stage(REPO / "Dockerfile")
    text = "\n".join(f"{k} {a}" for k, a in steps)
    cmd = json.loads(next(a for k, a in steps if k == "CMD"))
    assert cmd[:2] == ["modelmeter", "up"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # the dashboard, on $PORT
    assert cmd[cmd.index("--collector-host") + 1] == "0.0.0.0"  # private network
    assert cmd[cmd.index("--data-dir") + 1] == DATA_DIR
    assert json.loads(next(a for k, a in steps if k == "VOLUME")) == [DATA_DIR]
    assert "PORT=8050" in text
    assert "prometheus-alertmanager=" in text and "prometheus=" in text


def _pinned_debian_versions() -> dict[str, str]:
    steps = instructions(REPO / "Dockerfile")
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    return {
        "prometheus": args["PROMETHEUS_VERSION"],
        "prometheus-alertmanager": args["ALERTMANAGER_VERSION"],
    }


@pytest.mark.parametrize("package", ["prometheus", "prometheus-alertmanager"])
def test_debian_pins_match_the_packages_the_tests_run(package: str) -> None:
    """The image installs the very Prometheus/Alertmanager versions this machine tests with."""
    if shutil.which("dpkg-query") is None:  # CI is Debian: there this fails
        missing("not a Debian machine: cannot compare the pinned package versions")
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    if installed.returncode != 0:
        require_binary(package)
        missing(f"{package} is not installed from a Debian package here")
    pinned = _pinned_debian_versions()[package]
    assert installed.stdout == pinned, (
        f"Dockerfile pins {package}={pinned} but the tests run {installed.stdout}; "
        "update the ARG in Dockerfile (apt-cache policy shows the candidate)"
    )


def test_the_installed_package_ships_every_data_file() -> None:
    """Dockerfile.collector and Dockerfile.dashboard install a wheel (``pip install
    ".[server]"``): every non-Python file of the package must match
    ``[tool.setuptools.package-data]``."""
    import tomllib

    package = REPO / "src" / "modelmeter"
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["modelmeter"]
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    data_files = {
        path
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    missing = sorted(str(p.relative_to(package)) for p in data_files - shipped)
    assert not missing, (
        f"not in the wheel the images install: {missing}; add their patterns to "
        "[tool.setuptools.package-data] modelmeter in pyproject.toml"
    )


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = dockerignored()
    for name in (".git", ".venv", "bench/.venv-peers", "modelmeter-data"):
        assert name in ignored
    for needed in ("src", "deploy", "pyproject.toml", "README.md"):
        assert needed not in ignored


# ---------------------------------------------------------------- docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"collector", "prometheus", "alertmanager", "dashboard", "demo"}
    assert services["demo"]["profiles"] == ["demo"]
    for name in ("collector", "prometheus", "alertmanager", "dashboard"):
        assert "profiles" not in services[name], f"{name} must start by default"
    assert services["dashboard"]["environment"]["PROM_URL"] == "http://prometheus:9090"


COMPOSE_FILES = [COMPOSE, DEPLOY / "multi" / "docker-compose.yml"]
LOCAL_IMAGES = {"modelmeter-collector:local", "modelmeter-dashboard:local", "modelmeter-demo:local"}


def load_compose(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_builds_and_images_are_pinned(path: Path) -> None:
    for name, service in load_compose(path)["services"].items():
        build = service.get("build")
        if build:
            assert (path.parent / build["context"] / build["dockerfile"]).is_file(), name
            assert service.get("image") in LOCAL_IMAGES, f"{name}: name the built image"
        image = service.get("image", "")
        if image not in LOCAL_IMAGES:
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin {image!r}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_state_lives_in_named_volumes(path: Path) -> None:
    compose = load_compose(path)
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (path.parent / source).exists(), f"{name}: bind mount {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    stateful = {"prometheus": "/prometheus", "alertmanager": "/alertmanager"}
    stateful |= {n: DATA_DIR for n in compose["services"] if n.startswith("collector")}
    for name, target in stateful.items():
        targets = [v.split(":")[1] for v in compose["services"][name]["volumes"]]
        assert target in targets, f"{name} keeps its data outside a volume"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_prometheus_config_is_valid_and_finds_the_rules(path: Path, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    compose = load_compose(path)
    service = compose["services"]["prometheus"]
    (config_ref,) = service["configs"]
    text = compose["configs"][config_ref["source"]]["content"]
    config = yaml.safe_load(text)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "modelmeter"  # the job the alert rules watch
    for target in (t for sc in job["static_configs"] for t in sc["targets"]):
        host, port = target.split(":")
        assert host in compose["services"] and port == "8000", target
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]
    for write in config.get("remote_write", []):
        assert write["url"].split("/")[2].split(":")[0] in compose["services"], write["url"]
    # The rule glob points where the rules are mounted.
    mounts = dict(v.split(":")[:2] for v in service["volumes"])
    (rule_glob,) = config["rule_files"]
    mounted_dir = next(src for src, dst in mounts.items() if rule_glob.startswith(dst + "/"))
    assert sorted((path.parent / mounted_dir).glob(Path(rule_glob).name)), "no rules would load"
    (tmp_path / "prometheus.yml").write_text(text)
    check = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# ---------------------------------------------------------------- render.yaml

# Service fields of the Render Blueprint specification (render.com/docs/blueprint-spec).
RENDER_SERVICE_KEYS = {
    "type", "name", "runtime", "env", "plan", "region", "repo", "branch", "rootDir",
    "dockerfilePath", "dockerContext", "dockerCommand", "image", "registryCredential",
    "buildCommand", "startCommand", "preDeployCommand", "healthCheckPath", "numInstances",
    "scaling", "disk", "envVars", "autoDeploy", "autoDeployTrigger", "buildFilter", "domains",
    "previews", "maxShutdownDelaySeconds", "initialDeployHook", "ipAllowList",
}  # fmt: skip
RENDER_TYPES = {"web", "pserv", "worker", "cron", "static", "keyvalue", "redis"}
RENDER_DISK_KEYS = {"name", "mountPath", "sizeGB"}
RENDER_ENV_SOURCES = {"value", "generateValue", "sync", "fromDatabase", "fromService", "fromGroup"}


def test_render_blueprint_keys() -> None:
    blueprint = yaml.safe_load(RENDER.read_text())
    assert set(blueprint) <= {"services", "databases", "envVarGroups", "projects", "previews"}
    (service,) = blueprint["services"]
    unknown = set(service) - RENDER_SERVICE_KEYS
    assert not unknown, f"render.yaml: keys Render does not document: {unknown}"
    assert service["type"] in RENDER_TYPES
    assert service["runtime"] == "docker"
    assert (REPO / service["dockerContext"] / service["dockerfilePath"]).is_file()
    # The dashboard path that stays open under basic auth (tests/test_dashboard_view.py).
    assert service["healthCheckPath"] == "/healthz"
    assert set(service["disk"]) == RENDER_DISK_KEYS
    assert service["disk"]["mountPath"] == DATA_DIR  # the Dockerfile's VOLUME
    assert isinstance(service["disk"]["sizeGB"], int) and service["disk"]["sizeGB"] >= 1
    keys = []
    for var in service["envVars"]:
        sources = set(var) - {"key"}
        assert len(sources) == 1 and sources <= RENDER_ENV_SOURCES, var
        if "value" in var:
            assert isinstance(var["value"], str), f"{var['key']}: quote the value"
        keys.append(var["key"])
    assert len(keys) == len(set(keys))
    assert "PORT" in keys and "MODELMETER_WRITE_TOKENS" in keys


# ---------------------------------------------------------------- Grafana


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_JSON.read_text()))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def grafana_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p["targets"]]


def test_grafana_dashboard_is_templated_on_model_and_version(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"model", "version"}
    assert variables["model"]["definition"] == "label_values(model_info, model)"
    assert 'model_info{model="$model"}' in variables["version"]["definition"]
    for expr in grafana_exprs(dashboard):
        assert "$model" in expr or "job=" in expr, f"not filtered by model: {expr}"


def test_grafana_dashboard_has_the_dash_dashboard_panels(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(grafana_exprs(dashboard))
    for metric in (
        "model_accuracy", "model_precision", "model_recall", "model_f1_score",
        "model_estimated_accuracy", "model_estimated_f1_score", "ALERTS",
        "model_predictions_total", "model_prediction_errors_total",
        "model_prediction_latency_seconds_bucket", "model_feature_drift",
        "model_feature_quality_ratio", "model_label_coverage_ratio",
        "model_serving_cpu_ratio", "model_serving_memory_bytes",
        "process_cpu_seconds_total", "process_resident_memory_bytes",
    ):  # fmt: skip
        assert re.search(rf"\b{metric}\b", exprs), f"no panel shows {metric}"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def contract_metric_names() -> set[str]:
    """Metric names of docs/contract.md, with its shorthand expanded (`a_b_c` / `_d` -> a_b_d)."""
    names: set[str] = set()
    for line in (REPO / "docs" / "contract.md").read_text().splitlines():
        previous = ""
        for token in re.findall(r"`([A-Za-z_][A-Za-z0-9_:]*)`", line):
            if token.startswith("_") and previous:
                names.add(previous.rsplit("_", 1)[0] + token)
            else:
                names.add(token)
                previous = token
    return names


def test_grafana_metric_names_are_in_the_contract(dashboard: dict[str, Any]) -> None:
    known = contract_metric_names()
    rules = "".join(p.read_text() for p in (DEPLOY / "prometheus" / "rules").glob("*.yml"))
    pattern = r"\b((?:model|modelmeter)_[a-z0-9_]+|model:[a-z0-9_:]+)\b"
    names = set(re.findall(pattern, " ".join(grafana_exprs(dashboard))))
    assert len(names) >= 15
    for name in sorted(names):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        found = {name, base, base.removesuffix("_total")} & known or f"record: {name}" in rules
        assert found, f"{name} is in the Grafana dashboard but not in docs/contract.md"


def test_grafana_provisioning_matches_the_dashboard(dashboard: dict[str, Any]) -> None:
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert source["type"] == "prometheus"
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "modelmeter.yml").read_text()
    )["providers"]
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_every_promql_expression_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses each Grafana expression (variables substituted) and every shipped rule."""
    promtool = require_binary("promtool")
    exprs = [
        e.replace("$model", "demo").replace("$version", "v1") for e in grafana_exprs(dashboard)
    ]
    assert len(exprs) >= 20
    rules = {
        "groups": [
            {
                "name": "grafana-dashboard",
                "rules": [
                    {"record": f"grafana:panel_expr_{i}", "expr": expr}
                    for i, expr in enumerate(exprs)
                ],
            }
        ]
    }
    generated = tmp_path / "grafana-exprs.yml"
    generated.write_text(yaml.safe_dump(rules))
    shipped = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert shipped, "no rules in deploy/prometheus/rules"
    check = subprocess.run(
        [promtool, "check", "rules", str(generated), *map(str, shipped)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in check.stdout


# ---------------------------------------------------------------- multi-collector layout


def test_multi_collector_prometheus_config_is_valid() -> None:
    promtool = require_binary("promtool")
    path = DEPLOY / "multi" / "prometheus.yml"
    config = yaml.safe_load(path.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "modelmeter"
    assert len([t for sc in job["static_configs"] for t in sc["targets"]]) == 2
    (write,) = config["remote_write"]
    assert write["url"].endswith("/api/v1/write")
    check = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, cwd=REPO
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "rule files found" in check.stdout and "SUCCESS: 0 rule files" not in check.stdout


def test_a_wheel_ships_every_file_modelmeter_up_renders() -> None:
    """pyproject's data-files put deploy/ where launcher.deploy_dir() looks in an install."""
    import tomllib

    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    shipped = {
        f"{target.removeprefix('share/modelmeter/')}/{path.name}"
        for target, patterns in data_files.items()
        for pattern in patterns
        for path in REPO.glob(pattern)
    }
    needed = {
        "deploy/prometheus/prometheus.yml",
        "deploy/alertmanager/alertmanager.yml",
        *(
            f"deploy/prometheus/rules/{p.name}"
            for p in (DEPLOY / "prometheus" / "rules").glob("*.yml")
        ),
    }
    assert needed <= shipped


# ---------------------------------------------------------------- the token story

TOKEN_REQUIRED = re.compile(r"\$\{MODELMETER_WRITE_TOKENS:\?[^}]*MODELMETER_WRITE_TOKENS[^}]*\}")


def _linter(name: str) -> str:
    """A linter of the dev dependencies: next to this Python (the venv) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found; install the dev dependencies: pip install -e '.[dev]'")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_are_hadolint_clean(dockerfile: Path) -> None:
    hadolint = _linter("hadolint")
    check = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "error", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_files_follow_the_compose_specification(path: Path) -> None:
    checker = _linter("check-jsonschema")
    check = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _collectors(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the collector image's default command."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "modelmeter-collector:local" and "command" not in service
    }


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_requires_a_write_token(path: Path) -> None:
    """The collector containers listen on 0.0.0.0: compose refuses to start them without
    MODELMETER_WRITE_TOKENS (``${VAR:?message}``), and nothing starts them open."""
    compose = load_compose(path)
    collectors = _collectors(compose)
    assert collectors, "no collector service"
    for name, service in collectors.items():
        tokens = service["environment"]["MODELMETER_WRITE_TOKENS"]
        assert TOKEN_REQUIRED.fullmatch(tokens), f"{name}: MODELMETER_WRITE_TOKENS not required"
    assert "MODELMETER_ALLOW_OPEN" not in path.read_text()
    demo = compose["services"].get("demo")
    if demo is not None:  # the demo writes to the collector: it sends one of the tokens
        assert "MODELMETER_WRITE_TOKENS" in demo["environment"]["MODELMETER_TOKEN"]


def _image_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in final_stage(dockerfile):
        if keyword == "ENV":
            env.update(dict(word.split("=", 1) for word in shlex.split(args)))
    return env


def test_the_collector_image_refuses_to_start_open_and_starts_with_a_token() -> None:
    """Dockerfile.collector's environment, through the collector's own start check."""
    from modelmeter.settings import Settings, open_start_refusal

    env = _image_env(REPO / "Dockerfile.collector")
    assert env["MODELMETER_HOST"] == "0.0.0.0"
    assert "MODELMETER_ALLOW_OPEN" not in env and "MODELMETER_WRITE_TOKENS" not in env
    refusal = open_start_refusal(Settings.from_env(env))
    assert refusal is not None and "MODELMETER_WRITE_TOKENS" in refusal
    assert "-e MODELMETER_WRITE_TOKENS=" in (REPO / "Dockerfile.collector").read_text()
    with_token = Settings.from_env(env | {"MODELMETER_WRITE_TOKENS": "t"})
    assert open_start_refusal(with_token) is None


def test_render_generates_the_write_token() -> None:
    (service,) = yaml.safe_load(RENDER.read_text())["services"]
    env = {var["key"]: var for var in service["envVars"]}
    assert env["MODELMETER_WRITE_TOKENS"] == {
        "key": "MODELMETER_WRITE_TOKENS",
        "generateValue": True,
    }
    assert "MODELMETER_ALLOW_OPEN" not in env


def _single_container_plan(tmp_path: Path) -> Any:
    """The launcher's plan for the single-container CMD (ports and binaries not checked)."""
    import argparse

    from modelmeter import launcher

    cmd = json.loads(next(a for k, a in final_stage(REPO / "Dockerfile") if k == "CMD"))
    parser = argparse.ArgumentParser()
    launcher.configure(parser)
    args = parser.parse_args(cmd[2:])
    assert args.collector_host == "0.0.0.0" and not args.allow_open
    return launcher.Plan(
        host=args.host,
        collector_host=args.collector_host,
        collector_port=free_port(),
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        dashboard_port=None,
        demo=True,
        demo_port=args.demo_port,
        data_dir=tmp_path / "data",
        webhook_url=None,
        max_alert_for=None,
        prometheus_bin="prometheus",
        alertmanager_bin="alertmanager",
        allow_open=args.allow_open,
    )


def test_the_single_container_generates_a_write_token_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``modelmeter up --collector-host 0.0.0.0`` (the Dockerfile's CMD) without
    MODELMETER_WRITE_TOKENS: a token in DATA_DIR/write-token (0600), reused at the next start,
    given to the collector and the demo; the real collector then starts on 0.0.0.0 and
    refuses writes without it."""
    from modelmeter import launcher

    for name in ("MODELMETER_WRITE_TOKENS", "MODELMETER_ALLOW_OPEN", "MODELMETER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    plan = _single_container_plan(tmp_path)
    plan.data_dir.mkdir()
    first = launcher.collector_auth(plan)
    token_file = plan.data_dir / launcher.WRITE_TOKEN_FILE
    assert first.write_token and token_file.read_text().strip() == first.write_token
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert launcher.collector_auth(plan).write_token == first.write_token  # the next start
    children = {child.name: child for child, _ in launcher.build_children(first, tmp_path)}
    collector = children["collector"]
    assert collector.env["MODELMETER_WRITE_TOKENS"] == first.write_token
    assert "--allow-open" not in collector.argv
    assert children["demo"].env["MODELMETER_TOKEN"] == first.write_token

    proc = ManagedProcess(
        "collector",
        collector.argv,
        tmp_path / "collector.log",
        ready_url=f"{first.collector_url}/readyz",
        env=collector.env,
    )
    with proc:
        url = f"{first.collector_url}/v1/models/m/labels"
        assert httpx.post(url, json={"labels": []}, timeout=10).status_code == 401
        sent = {"authorization": f"Bearer {first.write_token}"}
        assert httpx.post(url, json={"labels": []}, headers=sent, timeout=10).status_code == 404


def test_a_configured_token_or_allow_open_needs_no_generated_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelmeter import launcher

    monkeypatch.delenv("MODELMETER_ALLOW_OPEN", raising=False)
    plan = _single_container_plan(tmp_path)
    plan.data_dir.mkdir()
    monkeypatch.setenv("MODELMETER_WRITE_TOKENS", "mine")
    assert launcher.collector_auth(plan) == plan
    monkeypatch.delenv("MODELMETER_WRITE_TOKENS")
    open_plan = dataclasses.replace(plan, allow_open=True)
    assert launcher.collector_auth(open_plan) == open_plan
    (collector, _), *_ = launcher.build_children(open_plan, tmp_path)
    assert "--allow-open" in collector.argv
    loopback = dataclasses.replace(plan, collector_host="127.0.0.1")
    assert launcher.collector_auth(loopback) == loopback
    assert not (plan.data_dir / launcher.WRITE_TOKEN_FILE).exists()
