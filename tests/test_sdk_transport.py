"""The SDK's standard-library HTTP: keep-alive, reconnects, proxies, auth and headers.

Against small real HTTP servers on loopback (``http.server``, HTTP/1.1 where keep-alive
matters), each recording what it receives.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from helpers import free_port, wait_until
from modelmeter.sdk import Client

PROXY_VARS = [
    v for n in ("http", "https", "all", "no") for v in (f"{n}_proxy", f"{n.upper()}_PROXY")
]


class Server:
    """HTTP/1.1 loopback server recording (client port, method, path, headers, body)."""

    def __init__(self, idle_timeout: float | None = None, connect_status: int = 407) -> None:
        self.requests: list[tuple[int, str, str, dict[str, str], Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_timeout  # the server closes a connection idle this long

            def record(self, body: Any) -> None:
                with server.lock:
                    server.requests.append(
                        (self.client_address[1], self.command, self.path, dict(self.headers), body)
                    )

            def do_POST(self) -> None:
                self.record(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                payload = b'{"accepted": 1, "rejected": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_CONNECT(self) -> None:
                self.record(None)
                self.send_response(connect_status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ports(self) -> list[int]:
        with self.lock:
            return [r[0] for r in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def server(no_proxy_env: pytest.MonkeyPatch) -> Iterator[Server]:
    srv = Server(idle_timeout=1.0)
    yield srv
    srv.close()


def make_client(url: str, **kwargs: Any) -> Client:
    options: dict[str, Any] = {"flush_interval": 60.0, "timeout": 2.0, "max_backoff": 0.2}
    options.update(kwargs)
    return Client(url, "m", **options)


def test_one_keep_alive_connection_for_many_requests(server: Server) -> None:
    client = make_client(server.url, token="t0k")
    for i in range(3):
        client.log_prediction({"x": float(i)}, 0)
        assert client.flush(timeout=10)
    assert len(server.ports()) == 3 and len(set(server.ports())) == 1
    _, method, path, headers, body = server.requests[0]
    assert (method, path) == ("POST", "/v1/models/m/predictions")
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("modelmeter-sdk")
    assert body["predictions"][0]["features"] == {"x": 0.0}
    client.close()


def test_a_connection_the_collector_closed_while_idle_is_made_again_quietly(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server.url)
    with caplog.at_level(logging.WARNING, logger="modelmeter.sdk"):
        client.log_prediction({"x": 1.0}, 0)
        assert client.flush(timeout=10)
        time.sleep(2.0)  # the server closes the idle connection after 1 s
        client.log_prediction({"x": 2.0}, 0)
        assert client.flush(timeout=10)
    ports = server.ports()
    assert len(ports) == 2 and ports[0] != ports[1]
    assert client.stats["retried"] == 0 and caplog.text == ""
    client.close()


def test_a_base_path_and_credentials_in_the_url(server: Server) -> None:
    url = server.url.replace("http://", "http://alice:s%40cret@") + "/mm/"
    client = make_client(url)
    client.log_label("p", 1)
    assert client.flush(timeout=10)
    _, _, path, headers, _ = server.requests[0]
    assert path == "/mm/v1/models/m/labels"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alice:s@cret").decode()
    client.close()


def test_an_http_proxy_from_the_environment(server: Server, no_proxy_env: Any) -> None:
    no_proxy_env.setenv("HTTP_PROXY", server.url.replace("http://", "http://bob:pw@"))
    client = make_client("http://collector.invalid:8000/base")
    client.log_prediction({"x": 1.0}, 0)
    assert client.flush(timeout=10)
    _, _, path, headers, _ = server.requests[0]
    assert path == "http://collector.invalid:8000/base/v1/models/m/predictions"
    assert headers["Host"] == "collector.invalid:8000"
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"bob:pw").decode()
    client.close()


def test_no_proxy_bypasses_it(server: Server, no_proxy_env: Any) -> None:
    no_proxy_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody listens
    no_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    client = make_client(server.url)
    client.log_prediction({"x": 1.0}, 0)
    assert client.flush(timeout=10)
    assert server.requests[0][2] == "/v1/models/m/predictions"
    client.close()


def test_https_goes_through_a_connect_tunnel(no_proxy_env: Any) -> None:
    proxy = Server(connect_status=407)  # the proxy refuses: the client retries
    try:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://bob:pw@"))
        client = make_client("https://collector.example")
        client.log_prediction({"x": 1.0}, 0)
        assert not client.flush(timeout=1)
        wait_until(lambda: client.stats["retried"] >= 1, timeout=10, what="a retry")
        _, method, path, headers, _ = proxy.requests[0]
        assert (method, path) == ("CONNECT", "collector.example:443")
        assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"bob:pw").decode()
        assert not client.close(timeout=0)
        assert client.stats["dropped"] == 1
    finally:
        proxy.close()


def test_tls_to_a_plain_http_server_is_a_connection_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server.url.replace("http://", "https://"))
    with caplog.at_level(logging.WARNING, logger="modelmeter.sdk"):
        client.log_prediction({"x": 1.0}, 0)
        assert not client.flush(timeout=2)
        wait_until(lambda: client.stats["retried"] >= 1, timeout=10, what="a retry")
    assert "cannot reach the collector" in caplog.text and "SSL" in caplog.text
    assert not client.close(timeout=0)


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://:8000", "host"), ("http://h:99999", "(?i)port"), ("ftp://h", "http://")],
)
def test_bad_urls_are_refused_at_once(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client(url, "m")


def test_a_token_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        Client("http://127.0.0.1:9", "m", token="a\r\nX-Evil: 1")
