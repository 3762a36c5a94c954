"""Safe by default (issue 10, part 3), against the real collector process on 127.0.0.1.

- ``reference.path`` is read only from MODELMETER_REFERENCE_DIR, only as a regular file and only
  up to MODELMETER_MAX_REFERENCE_BYTES; every refusal is a 422 that tells nothing about the file
  system, and the collector's memory stays bounded (``/dev/zero``, a FIFO, a 2 GiB file...).
- The collector refuses to start on a non-loopback address without write tokens.
- Names are full matches; non-ASCII credentials are a 401/403, never a 500; ``/debug/timings``
  answers only when enabled.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest

from helpers import ManagedProcess, free_port, missing
from service_support import collector, events, reference_csv, spec_dict, without_labels

JSON = {"content-type": "application/json"}
WRITE = {"authorization": "Bearer plain"}
GIB = 1024**3
# What an OS error or a resolved path would leave in a message.
OS_ERROR_TEXT = ("errno", "no such file", "permission denied", "is a directory", "not a directory")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/[\w.-]+/")


def _clean_env() -> dict[str, str]:
    """The environment without any MODELMETER_* setting of the machine running the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELMETER_")}


class RssWatch:
    """Samples a process's resident memory in a thread until stopped; keeps the maximum."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- a collector with a reference dir


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A collector with MODELMETER_REFERENCE_DIR and write tokens (one of them non-ASCII)."""
    tmp = tmp_path_factory.mktemp("guarded")
    refs = tmp / "references"
    refs.mkdir()
    (refs / "ok.csv").write_bytes(reference_csv())
    outside = tmp / "outside.csv"
    outside.write_bytes(reference_csv())
    env = _clean_env() | {
        "MODELMETER_REFERENCE_DIR": str(refs),
        "MODELMETER_WRITE_TOKENS": "tökén,plain",
    }
    with collector(tmp, env=env) as proc, httpx.Client(base_url=proc.url, timeout=30.0) as client:
        yield {"proc": proc, "client": client, "refs": refs, "tmp": tmp, "outside": outside}


def _put(client: httpx.Client, model: str, path: str) -> httpx.Response:
    body = orjson.dumps(spec_dict(path))
    return client.put(f"/v1/models/{model}", content=body, headers=JSON | WRITE)


def _assert_reveals_nothing(detail: str, tmp: Path, what: str) -> None:
    lowered = detail.lower()
    assert str(tmp) not in detail, what
    assert not ABSOLUTE_PATH.search(detail), f"{what}: an absolute path in {detail!r}"
    for text in OS_ERROR_TEXT:
        assert text not in lowered, f"{what}: OS error text {text!r} in {detail!r}"


def test_reference_paths_that_are_not_regular_files_inside_the_directory_are_refused(
    guarded: dict[str, Any],
) -> None:
    if not hasattr(os, "mkfifo"):
        missing("os.mkfifo is not available: cannot test a FIFO reference")
    refs: Path = guarded["refs"]
    tmp: Path = guarded["tmp"]
    os.mkfifo(refs / "fifo.csv")
    (refs / "a-directory").mkdir()
    (refs / "link-out.csv").symlink_to(guarded["outside"])
    (refs / "link-zero.csv").symlink_to("/dev/zero")
    (refs / "loop.csv").symlink_to(refs / "loop.csv")
    cases = {
        "/dev/zero": "a device",
        "link-zero.csv": "a symlink to a device",
        "fifo.csv": "a FIFO inside the directory",
        str(refs / "fifo.csv"): "a FIFO by absolute path",
        "a-directory": "a directory",
        str(refs): "the directory itself",
        str(guarded["outside"]): "an absolute path outside",
        "../outside.csv": "a relative path out of the directory",
        "link-out.csv": "a symlink pointing out",
        "loop.csv": "a symlink loop",
        "nope.csv": "a file that does not exist",
        "/etc/passwd": "a system file",
        "/proc/self/environ": "the collector's environment",
    }
    if os.geteuid() != 0:  # root reads a file whatever its mode
        locked = refs / "locked.csv"
        locked.write_bytes(reference_csv())
        locked.chmod(0)
        cases["locked.csv"] = "a file without read permission"
    client: httpx.Client = guarded["client"]
    details = {}
    with RssWatch(guarded["proc"].pid) as rss:
        for path, what in cases.items():
            response = _put(client, "m1", path)
            assert response.status_code == 422, (what, response.status_code, response.text)
            detail = response.json()["detail"]
            _assert_reveals_nothing(detail, tmp, what)
            details[what] = detail
    assert rss.peak < GIB, f"collector RSS reached {rss.peak / GIB:.2f} GiB"
    # One message, whatever the reason: it tells which files exist to no one.
    assert len(set(details.values())) == 1, details
    (detail,) = set(details.values())
    assert "MODELMETER_REFERENCE_DIR" in detail and "multipart field 'reference'" in detail
    assert client.get("/v1/models").json()["models"] == []


def test_a_2_gib_reference_file_is_refused_by_its_size_and_memory_stays_bounded(
    guarded: dict[str, Any],
) -> None:
    big = guarded["refs"] / "big.csv"
    with open(big, "wb") as f:
        f.write(reference_csv()[:200])  # a real header, then 2 GiB of (sparse) zeros
        f.truncate(2 * GIB)
    try:
        with RssWatch(guarded["proc"].pid) as rss:
            for path in ("big.csv", str(big)):
                response = _put(guarded["client"], "m2", path)
                assert response.status_code == 422, response.text
                detail = response.json()["detail"]
                assert "MODELMETER_MAX_REFERENCE_BYTES" in detail
                assert str(64 * 1024**2) in detail  # the default limit, in bytes
                _assert_reveals_nothing(detail, guarded["tmp"], path)
        assert rss.peak < GIB, f"collector RSS reached {rss.peak / GIB:.2f} GiB"
    finally:
        big.unlink()


def test_a_small_regular_file_inside_the_directory_registers(guarded: dict[str, Any]) -> None:
    client: httpx.Client = guarded["client"]
    assert _put(client, "ok", "ok.csv").status_code == 201
    same = _put(client, "ok", str(guarded["refs"] / "ok.csv"))  # the same file, absolute
    assert same.status_code == 200, same.text
    (guarded["refs"] / "inner").mkdir(exist_ok=True)
    (guarded["refs"] / "inner" / "to-ok.csv").symlink_to(guarded["refs"] / "ok.csv")
    assert _put(client, "ok2", "inner/to-ok.csv").status_code == 201  # a symlink staying inside
    assert _put(client, "ok3", "inner/../ok.csv").status_code == 201
    models = {m["model"] for m in client.get("/v1/models").json()["models"]}
    assert {"ok", "ok2", "ok3"} <= models


def test_names_are_full_matches(guarded: dict[str, Any]) -> None:
    client: httpx.Client = guarded["client"]
    if _put(client, "names", "ok.csv").status_code not in (200, 201):
        pytest.fail("cannot register the model of this test")
    batch = without_labels(events(0, 3, seed=4))
    batch[0]["version"] = "v1\n"
    batch[1]["version"] = "v1"
    batch[2]["version"] = "\nv1"
    response = client.post(
        "/v1/models/names/predictions",
        content=orjson.dumps({"predictions": batch}),
        headers=JSON | WRITE,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert sorted(r["index"] for r in body["rejected"]) == [0, 2]
    resources = {"replica": "pod-1\n", "cpu_ratio": 0.5, "memory_bytes": 1e8}
    doc = {"predictions": without_labels(events(10, 1, seed=5)), "resources": resources}
    response = client.post(
        "/v1/models/names/predictions", content=orjson.dumps(doc), headers=JSON | WRITE
    )
    assert response.status_code == 422, response.text
    # A model name with a trailing newline (%0A in the URL) is no name.
    spec = orjson.dumps(spec_dict("ok.csv"))
    put = client.put("/v1/models/names%0A", content=spec, headers=JSON | WRITE)
    assert 400 <= put.status_code < 500, put.text
    assert client.get("/v1/models/names%0A").status_code == 404
    post = client.post(
        "/v1/models/names%0A/predictions",
        content=orjson.dumps({"predictions": []}),
        headers=JSON | WRITE,
    )
    assert post.status_code == 404
    assert "names\n" not in str(client.get("/v1/models").json())


def test_non_ascii_bearer_tokens_are_a_403_or_match_byte_for_byte(guarded: dict[str, Any]) -> None:
    client: httpx.Client = guarded["client"]
    url = "/v1/models/not-registered/predictions"
    body = orjson.dumps({"predictions": []})
    for header in (b"Bearer \xff\xfe", "Bearer ünï".encode("latin-1"), "Bearer 日本".encode()):
        response = client.post(url, content=body, headers={**JSON, "authorization": header})
        assert response.status_code == 403, (header, response.status_code, response.text)
    assert (
        client.post(
            url, content=body, headers={**JSON, "authorization": b"B\xe9arer x"}
        ).status_code
        == 401
    )
    # The configured non-ASCII token, sent as its UTF-8 bytes, is accepted (the model is
    # unknown, hence 404 and not 401/403).
    sent = {**JSON, "authorization": "Bearer tökén".encode()}
    assert client.post(url, content=body, headers=sent).status_code == 404
    assert client.post(url, content=body, headers=JSON | WRITE).status_code == 404


def test_debug_endpoints_are_off_by_default(guarded: dict[str, Any]) -> None:
    assert guarded["client"].get("/debug/timings", headers=WRITE).status_code == 404
    assert guarded["client"].get("/debug/timings").status_code == 404


# ---------------------------------------------------------------- a collector without one


@pytest.fixture(scope="module")
def open_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A collector on loopback without MODELMETER_REFERENCE_DIR, debug endpoints on."""
    tmp = tmp_path_factory.mktemp("open-local")
    (tmp / "reference.csv").write_bytes(reference_csv())
    port = free_port()
    env = _clean_env() | {"MODELMETER_DEBUG_ENDPOINTS": "true"}
    # Not helpers.collector_process: it sets a reference directory.
    proc = ManagedProcess(
        "collector",
        _collector_argv(tmp, "127.0.0.1", port),
        tmp / "collector.log",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    with proc, httpx.Client(base_url=url, timeout=30.0) as client:
        yield {"proc": proc, "client": client, "tmp": tmp}


def test_without_a_reference_directory_a_path_is_refused_and_uploads_work(
    open_local: dict[str, Any],
) -> None:
    client: httpx.Client = open_local["client"]
    reference = open_local["tmp"] / "reference.csv"
    for path in (str(reference), "reference.csv", "/dev/zero"):
        response = client.put("/v1/models/m", content=orjson.dumps(spec_dict(path)), headers=JSON)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "MODELMETER_REFERENCE_DIR" in detail and "multipart field 'reference'" in detail
        _assert_reveals_nothing(detail, open_local["tmp"], path)
    files = {
        "spec": ("spec.json", orjson.dumps(spec_dict()), "application/json"),
        "reference": ("reference.csv", reference.read_bytes(), "text/csv"),
    }
    assert client.put("/v1/models/m", files=files).status_code == 201


def test_an_uploaded_reference_is_bounded_by_the_body_limit(open_local: dict[str, Any]) -> None:
    """MODELMETER_MAX_BODY_BYTES (default 10 MiB) bounds a multipart upload, declared or
    streamed without a Content-Length."""
    client: httpx.Client = open_local["client"]
    boundary = "modelmeter-test-boundary"
    head = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="spec"; filename="s.json"\r\n'
            f"Content-Type: application/json\r\n\r\n"
        ).encode()
        + orjson.dumps(spec_dict())
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="reference"; '
            f'filename="r.csv"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
    )
    chunk = b"0" * (1024 * 1024)
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}

    def streamed() -> Iterator[bytes]:
        yield head
        for _ in range(11):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    with RssWatch(open_local["proc"].pid) as rss:
        declared = client.put("/v1/models/big", content=b"".join(streamed()), headers=headers)
        assert declared.status_code == 413, declared.text
        chunked = client.put("/v1/models/big", content=streamed(), headers=headers)
        assert chunked.status_code == 413, chunked.text
    assert "MODELMETER_MAX_BODY_BYTES" in chunked.json()["detail"]
    assert rss.peak < GIB


def test_debug_timings_answer_when_enabled(open_local: dict[str, Any]) -> None:
    response = open_local["client"].get("/debug/timings")
    assert response.status_code == 200
    assert all(isinstance(v, (int, float)) for v in response.json().values())


# ---------------------------------------------------------------- open start


def _free_port_on_every_interface() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def _collector_argv(tmp: Path, host: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "modelmeter", "collector",
        "--host", host, "--port", str(port), "--data-dir", str(tmp / "data"), *extra,
    ]  # fmt: skip


def test_an_open_start_on_a_non_loopback_address_is_refused(tmp_path: Path) -> None:
    argv = _collector_argv(tmp_path, "0.0.0.0", _free_port_on_every_interface())
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_clean_env())
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert "MODELMETER_WRITE_TOKENS" in message and "--allow-open" in message, message
    assert "Uvicorn running" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # refused before the store is opened


def test_allow_open_starts_on_every_interface(tmp_path: Path) -> None:
    port = _free_port_on_every_interface()
    proc = ManagedProcess(
        "collector",
        _collector_argv(tmp_path, "0.0.0.0", port, "--allow-open"),
        tmp_path / "collector.log",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        env=_clean_env(),
    )
    with proc:  # ready (its /readyz answered), then stopped at once
        assert proc.alive()
    assert f"running on http://0.0.0.0:{port}" in proc.log().lower(), proc.log()


def test_the_refusal_rule() -> None:
    from modelmeter.settings import Settings, open_start_refusal

    def refused(environ: dict[str, str]) -> bool:
        return open_start_refusal(Settings.from_env(environ)) is not None

    assert not refused({})  # 127.0.0.1 by default
    assert not refused({"MODELMETER_HOST": "::1"})
    assert not refused({"MODELMETER_HOST": "localhost"})
    assert refused({"MODELMETER_HOST": "0.0.0.0"})
    assert refused({"MODELMETER_HOST": "::"})
    assert refused({"MODELMETER_HOST": "192.168.1.10"})
    assert not refused({"MODELMETER_HOST": "0.0.0.0", "MODELMETER_WRITE_TOKENS": "t"})
    assert not refused({"MODELMETER_HOST": "0.0.0.0", "MODELMETER_ALLOW_OPEN": "true"})
    assert refused({"MODELMETER_HOST": "0.0.0.0", "MODELMETER_WRITE_TOKENS": " , "})


# ---------------------------------------------------------------- dashboard basic auth


def test_non_ascii_basic_auth_is_a_401_not_a_500() -> None:
    """The dashboard's own Flask server (under Dash), through Flask's test client."""
    try:
        from modelmeter.dashboard.app import create_app
    except ImportError as exc:
        missing(f"the dashboard is not installed: {exc}")
    import base64

    app = create_app("http://127.0.0.1:9", basic_auth=("ana", "pässwörd"))
    client = app.server.test_client()
    good = base64.b64encode("ana:pässwörd".encode()).decode()
    for header in ("Basic ünïcödé", "Basic " + good + "é", "Bäsic " + good, "Basic ", ""):
        response = client.get("/", headers={"Authorization": header})
        assert response.status_code == 401, (header, response.status_code)
        assert "Basic" in response.headers["WWW-Authenticate"]
    assert client.get("/", headers={"Authorization": "Basic " + good}).status_code == 200
    assert client.get("/", headers={"Authorization": "basic " + good}).status_code == 200
    assert client.get("/healthz").status_code == 200
