"""The SDK costs a model service nothing: the standard library and psutil only.

``pip install modelmeter`` installs the SDK alone (the server stack is in extras), so
``import modelmeter`` must not import numpy, pandas, httpx, orjson or any server dependency,
and a client must work where ``import numpy`` and ``import orjson`` fail. The reference in
docs/sdk.md must name every public name and method.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelmeter.sdk
from modelmeter.sdk import Client, MonitoredEstimator
from test_sdk import Recorder

REPO = Path(__file__).resolve().parents[1]
SDK_DIR = REPO / "src" / "modelmeter" / "sdk"
HEAVY = [
    "numpy", "pandas", "httpx", "httpcore", "orjson", "fastapi", "starlette", "pydantic",
    "scipy", "sklearn", "dash", "plotly", "prometheus_client", "yaml",
]  # fmt: skip


@pytest.fixture
def server() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def run_python(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script], timeout=60, capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_the_sdk_imports_no_heavy_module() -> None:
    script = (
        "import sys\n"
        "import modelmeter\n"
        "from modelmeter import Client, monitor\n"
        "import modelmeter.sdk\n"
        "client = Client('http://127.0.0.1:9', 'm', flush_interval=3600)\n"
        "client.log_prediction({'x': 1.0}, 0)\n"
        "client.log_labels({'a': 1})\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
        "client.close(timeout=0)\n"
    )
    assert run_python(script).strip() == "[]"


def test_a_client_works_without_numpy_and_orjson(server: Recorder) -> None:
    script = (
        "import sys\n"
        "for name in ('numpy', 'orjson', 'pandas'):\n"
        "    sys.modules[name] = None  # import raises ImportError\n"
        "import modelmeter\n"
        "from modelmeter import Client, monitor\n"
        "class Coin:\n"
        "    classes_ = ['heads', 'tails']\n"
        "    def predict_proba(self, X):\n"
        "        return [[0.3, 0.7] for _ in X]\n"
        f"c = Client({server.url!r}, 'm', flush_interval=3600)\n"
        "c.log_prediction({'x': float('nan'), 'y': float('inf'), 'c': 'red'}, 1,\n"
        "                 probabilities=[0.25, 0.75], latency_seconds=0.01, id='one')\n"
        "c.log_predictions([[1.0, 2.0], [3.0, 4.0]], [0, 1], feature_names=['a', 'b'],\n"
        "                  scores=[0.1, 0.9], ids=['r0', 'r1'])\n"
        "c.log_predictions([{'a': 5.0}], None, probabilities=[[0.2, 0.8]],\n"
        "                  classes=['no', 'yes'], ids=['argmax'])\n"
        "proba, ids = monitor(Coin(), c, feature_names=['x']).predict_proba(\n"
        "    [[0.0]], return_ids=True)\n"
        "c.log_label('one', 1)\n"
        "assert c.flush(timeout=20), c.stats\n"
        "assert 'numpy' not in sys.modules or sys.modules['numpy'] is None\n"
        "print(ids[0])\n"
        "print(c.stats['sent'])\n"
        "assert c.close()\n"
    )
    monitored_id, sent = run_python(script).split()
    assert int(sent) == 6
    events = {e["id"]: e for e in server.events()}
    assert events["one"]["features"] == {"x": None, "y": None, "c": "red"}  # as orjson
    assert events["one"]["probabilities"] == [0.25, 0.75]
    assert events["r1"]["features"] == {"a": 3.0, "b": 4.0} and events["r1"]["score"] == 0.9
    assert events["argmax"]["prediction"] == "yes"
    assert events["argmax"]["probabilities"] == {"no": 0.2, "yes": 0.8}
    assert events[monitored_id]["prediction"] == "tails"
    assert server.events("labels")[0]["id"] == "one"


def test_every_module_is_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in SDK_DIR.glob("*.py")}
    assert len(sizes) >= 6
    assert max(sizes.values()) < 500, sizes


def test_the_public_api_is_exported() -> None:
    assert set(modelmeter.sdk.__all__) >= {"Client", "MonitoredEstimator", "monitor"}
    assert modelmeter.sdk.__all__ == sorted(modelmeter.sdk.__all__)
    for name in modelmeter.sdk.__all__:
        assert getattr(modelmeter.sdk, name).__module__.startswith("modelmeter.sdk")


def public_names() -> list[str]:
    names = list(modelmeter.sdk.__all__)
    for cls in (Client, MonitoredEstimator):
        names += [f"{cls.__name__}.{n}" for n in vars(cls) if not n.startswith("_")]
    return names


def test_the_reference_documents_every_public_name() -> None:
    text = (REPO / "docs" / "sdk.md").read_text()
    headings = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    missing = [
        name
        for name in public_names()
        if not re.search(rf"\b{re.escape(name.rsplit('.', 1)[-1])}\b", headings)
        or f"`{name.rsplit('.', 1)[-1]}" not in text
    ]
    assert not missing, f"docs/sdk.md has no section for {missing}"
    # the documented signature of Client is the real one
    for parameter in inspect.signature(Client).parameters:
        assert f"`{parameter}`" in text, parameter


def test_every_public_function_and_method_has_an_example() -> None:
    objects = [getattr(modelmeter.sdk, name) for name in modelmeter.sdk.__all__]
    objects += [Client.log_prediction, Client.log_predictions, Client.log_label]
    objects += [Client.log_labels, Client.flush, Client.close]
    objects += [Client.stats.fget, Client.reported_drops.fget]  # type: ignore[attr-defined]
    objects += [MonitoredEstimator.predict, MonitoredEstimator.predict_proba]
    without = [o.__qualname__ for o in objects if ">>> " not in (o.__doc__ or "")]
    assert not without, without


def test_json_paths_agree_on_what_the_sdk_sends() -> None:
    """numpy values and non-finite floats: the same JSON with or without orjson."""
    import numpy as np

    from modelmeter.sdk import encoding

    with_orjson = encoding.orjson_dumps()
    assert with_orjson is not None  # installed in the dev environment
    nan, inf = float("nan"), float("inf")
    payloads = [
        {"features": {"x": nan, "y": inf, "z": -inf, "s": "NaN"}, "n": 1, "b": True},
        {"a": np.float64(nan), "b": np.float32(nan), "c": np.int64(7), "d": np.bool_(True)},
        {"array": np.array([[1.0, nan], [inf, 2.0]]), "ints": np.arange(3)},
        {"f32": np.array([0.5, nan], dtype=np.float32), "t": (1, nan), "none": None},
        {"keys": {1: 1.0, "2": 2.0}, "nested": [[[{"deep": [nan]}]]], "u": "é\u2028"},
        # a request body: its lists are encoded in chunks (NaN in one chunk only)
        {"predictions": [{"id": i, "x": nan if i == 60 else i / 3} for i in range(120)]},
        {"labels": [], "resources": {"dropped": {"labels": 0}}},
    ]
    for payload in payloads:
        a, b = encoding.stdlib_dumps(payload), with_orjson(payload)
        assert json.loads(a) == json.loads(b), (a, b)
        assert b"NaN" not in a.replace(b'"NaN"', b"") and b"Infinity" not in a
    for bad in [{"x": object()}, {"x": "\ud800"}]:
        for dumps in (encoding.stdlib_dumps, with_orjson):
            with pytest.raises(encoding.ENCODE_ERRORS):
                dumps(bad)


def test_dumps_without_orjson_is_the_stdlib_path() -> None:
    script = (
        "import sys\n"
        "sys.modules['orjson'] = None\n"
        "from modelmeter.sdk import encoding\n"
        "print(encoding.dumps({'x': float('nan'), 'y': [1, 2.5]}).decode())\n"
        "assert encoding._backend is encoding.stdlib_dumps\n"
    )
    assert run_python(script).strip() == '{"x":null,"y":[1,2.5]}'
