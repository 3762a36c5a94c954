"""``pip install modelmeter`` is the SDK alone: a wheel of this repository, installed without
extras in a fresh venv, brings at most 4 distributions and 30 MiB, imports nothing of the server
stack, sends events to a real collector, and its server commands name the extra to install.

The wheel is built from this checkout (``pip wheel --no-deps``) and installed from the package
registry the machine is configured with, like ``make setup`` does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from helpers import wait_until
from service_support import collector, events, spec_dict, write_reference

REPO = Path(__file__).resolve().parents[1]
MAX_DEPENDENCIES = 4
MAX_INSTALLED_MIB = 30.0
#: Modules of the server stack that importing the SDK must not pull in.
SERVER_MODULES = (
    "numpy", "pandas", "scipy", "sklearn", "httpx", "httpcore", "orjson", "fastapi", "starlette",
    "pydantic", "uvicorn", "dash", "plotly", "prometheus_client", "yaml", "pyarrow",
)  # fmt: skip

# Sizes every distribution installed beside pip and setuptools (the venv's own), from RECORD.
_INVENTORY = """
import importlib.metadata as md, json
base = {"pip", "setuptools", "wheel"}
out = {}
for dist in md.distributions():
    name = dist.metadata["Name"].lower().replace("_", "-")
    if name in base:
        continue
    size = sum((f.size or 0) for f in dist.files or [])
    out[name] = {"bytes": size, "requires": dist.requires or []}
print(json.dumps(out))
"""


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, capture_output=True, text=True, env=env, **kwargs)


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel of this checkout installed without extras."""
    tmp = tmp_path_factory.mktemp("dist")
    wheels = tmp / "wheels"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        timeout=600,
    )
    assert built.returncode == 0, f"building the wheel failed:\n{built.stderr[-3000:]}"
    (wheel,) = wheels.glob("modelmeter-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    installed = _run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        timeout=600,
    )
    assert installed.returncode == 0, f"pip install of the wheel failed:\n{installed.stderr}"
    yield env_dir


def _inventory(env_dir: Path) -> dict[str, dict[str, Any]]:
    out = _run([str(env_dir / "bin" / "python"), "-c", _INVENTORY], timeout=60)
    assert out.returncode == 0, out.stderr
    inventory: dict[str, dict[str, Any]] = json.loads(out.stdout)
    return inventory


def test_the_sdk_install_is_small(sdk_venv: Path) -> None:
    inventory = _inventory(sdk_venv)
    assert "modelmeter" in inventory
    dependencies = sorted(name for name in inventory if name != "modelmeter")
    total_mib = sum(d["bytes"] for d in inventory.values()) / 2**20
    print(f"SDK install: {len(dependencies)} dependencies {dependencies}, {total_mib:.1f} MiB")
    assert len(dependencies) <= MAX_DEPENDENCIES, dependencies
    assert total_mib <= MAX_INSTALLED_MIB, inventory
    # every server dependency is declared, but only behind an extra
    requires = inventory["modelmeter"]["requires"]
    assert any(r.startswith("fastapi") and "extra ==" in r for r in requires), requires
    assert all("extra ==" in r for r in requires if not r.startswith("psutil")), requires


def test_importing_the_sdk_pulls_in_no_server_module(sdk_venv: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, modelmeter
        from modelmeter import Client, monitor
        print(sorted(m for m in {SERVER_MODULES!r} if m in sys.modules))
        """
    )
    out = _run([str(sdk_venv / "bin" / "python"), "-c", script], timeout=60, cwd=sdk_venv)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["up"], "server"),
        (["collector"], "server"),
        (["dashboard", "--help"], "server"),
        (["check-spec", "spec.yml"], "server"),
        (["demo"], "demo"),
    ],
)
def test_a_server_command_without_its_extra_says_what_to_install(
    sdk_venv: Path, argv: list[str], extra: str
) -> None:
    out = _run([str(sdk_venv / "bin" / "modelmeter"), *argv], timeout=60, cwd=sdk_venv)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"pip install 'modelmeter[{extra}]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_lists_every_command_without_the_extras(sdk_venv: Path) -> None:
    out = _run([str(sdk_venv / "bin" / "modelmeter"), "--help"], timeout=60, cwd=sdk_venv)
    assert out.returncode == 0, out.stderr
    for command in ("up", "collector", "dashboard", "demo", "check-spec"):
        assert command in out.stdout
    assert "pip install 'modelmeter[server]'" in " ".join(out.stdout.split())  # help is wrapped


def test_the_sdk_alone_logs_to_a_real_collector(sdk_venv: Path, tmp_path: Path) -> None:
    ref = write_reference(tmp_path)
    batch = events(0, 300, seed=5)
    with collector(tmp_path).start() as proc:
        url = proc.url  # type: ignore[attr-defined]
        r = httpx.put(
            f"{url}/v1/models/m",
            content=orjson.dumps(spec_dict(ref.name)),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        events_file = tmp_path / "events.json"
        events_file.write_text(json.dumps(batch))
        script = textwrap.dedent(
            f"""
            import json, sys
            from modelmeter import Client
            batch = json.load(open({str(events_file)!r}))
            client = Client({url!r}, model="m", flush_interval=0.05)
            for e in batch:
                client.log_prediction(e["features"], prediction=e["prediction"],
                                      score=e["score"], id=e["id"],
                                      latency_seconds=e["latency_seconds"])
            assert client.flush(timeout=30), client.stats
            client.log_labels([(e["id"], e["_label"]) for e in batch])
            assert client.close(timeout=30), client.stats
            print(json.dumps(dict(client.stats)))
            print(sorted(m for m in {SERVER_MODULES!r} if m in sys.modules))
            """
        )
        out = _run([str(sdk_venv / "bin" / "python"), "-c", script], timeout=120, cwd=sdk_venv)
        assert out.returncode == 0, out.stderr
        stats_line, modules_line = out.stdout.strip().splitlines()[-2:]
        stats = json.loads(stats_line)
        assert stats["sent"] == 2 * len(batch), stats
        assert stats["dropped"] == stats["rejected"] == 0, stats
        assert modules_line == "[]"

        def labeled() -> float:
            text = httpx.get(f"{url}/metrics", timeout=10).text
            pattern = re.compile(r"^model_labeled_predictions_total\{([^}]*)\} (\S+)$", re.M)
            return sum(float(v) for lab, v in pattern.findall(text) if 'model="m"' in lab)

        wait_until(lambda: labeled() == len(batch), timeout=30, what="labels joined")
