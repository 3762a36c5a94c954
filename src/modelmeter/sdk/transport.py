"""HTTP to the collector with the standard library: one keep-alive connection per sender.

``Transport.post`` sends one request on a persistent ``http.client`` connection (HTTPS
through ``ssl.create_default_context()``: the system's CA store, ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` honoured by OpenSSL), and makes the connection again after any error or
when the collector closed it while idle. Proxies come from the environment, as urllib reads
it: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (``http://[user:password@]host:port``
proxies only) and ``NO_PROXY`` (host names and domain suffixes, ``*`` for all; no CIDR
ranges). An HTTPS collector is reached through a ``CONNECT`` tunnel, an HTTP one with
absolute request targets.
"""

from __future__ import annotations

import base64
import http.client
import select
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import SplitResult, unquote, urlsplit

from modelmeter.sdk.logs import logger

# what a failed request raises (ssl.SSLError and socket timeouts are OSErrors)
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


def parse_url(url: str) -> SplitResult:
    """The collector's URL, checked: ``http(s)://host[:port][/prefix]``.

    >>> parse_url("https://collector.example:8443/mm").port
    8443
    >>> parse_url("http://:80")
    Traceback (most recent call last):
    ...
    ValueError: url has no host name: 'http://:80'
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"url has no host name: {url!r}")
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    return parts


def _basic(username: str | None, password: str | None) -> str:
    pair = f"{unquote(username or '')}:{unquote(password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def proxy_for(parts: SplitResult) -> SplitResult | None:
    """The proxy to reach ``parts`` through, from the environment (None: connect directly).

    >>> import os
    >>> from unittest import mock
    >>> env = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "localhost,.internal"}
    >>> with mock.patch.dict(os.environ, env, clear=True):
    ...     print(proxy_for(urlsplit("https://collector.example")).netloc)
    ...     print(proxy_for(urlsplit("https://mm.internal")), proxy_for(urlsplit("http://a")))
    proxy:3128
    None None
    """
    from urllib.request import (  # type: ignore[attr-defined]  # undocumented, not in typeshed
        getproxies_environment,
        proxy_bypass_environment,
    )

    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    if proxy_bypass_environment(parts.netloc.rpartition("@")[2], proxies):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    proxy_parts = urlsplit(proxy)
    if proxy_parts.scheme != "http" or not proxy_parts.hostname:
        logger.warning(
            "modelmeter: proxy %s is not supported (http:// proxies only); connecting directly",
            proxy_parts._replace(netloc=proxy_parts.netloc.rpartition("@")[2]).geturl(),
        )
        return None
    return proxy_parts


def _dropped(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: closed by the server (or garbage)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class Transport:
    """POST bodies to one collector over a persistent connection (not thread-safe: one per
    sender thread).

    >>> t = Transport("http://127.0.0.1:9/base", {"Content-Type": "application/json"}, 0.5)
    >>> t.target("/v1/models/m/predictions")
    '/base/v1/models/m/predictions'
    >>> try:
    ...     t.post("/v1/models/m/predictions", b"{}")  # nobody listens on port 9
    ... except TRANSPORT_ERRORS:
    ...     print("unreachable")
    unreachable
    >>> t.close()
    """

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float) -> None:
        self.parts = parse_url(url)
        self.timeout = timeout
        self.headers = dict(headers)
        if self.parts.username is not None and "Authorization" not in self.headers:
            self.headers["Authorization"] = _basic(self.parts.username, self.parts.password)
        self._base = self.parts.path.rstrip("/")
        self._netloc = self.parts.netloc.rpartition("@")[2]
        self._conn: http.client.HTTPConnection | None = None
        self._absolute = False  # request targets are absolute URLs (an HTTP proxy)
        self._proxy_headers: dict[str, str] = {}

    def target(self, path: str) -> str:
        """The request target of ``path`` under the collector's URL."""
        if self._absolute:
            return f"{self.parts.scheme}://{self._netloc}{self._base}{path}"
        return self._base + path

    def _connect(self) -> http.client.HTTPConnection:
        parts = self.parts
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        proxy = proxy_for(parts)
        host, conn_port = (parts.hostname or "", port)
        if proxy is not None:
            host, conn_port = proxy.hostname or "", proxy.port or 80
        conn: http.client.HTTPConnection
        if https:
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                host, conn_port, timeout=self.timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(host, conn_port, timeout=self.timeout)
        self._absolute, self._proxy_headers = False, {}
        if proxy is not None:
            auth = (
                {"Proxy-Authorization": _basic(proxy.username, proxy.password)}
                if proxy.username is not None
                else {}
            )
            if https:
                conn.set_tunnel(parts.hostname or "", port, headers=auth)
            else:
                self._absolute = True
                self._proxy_headers = auth
        return conn

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send ``body``; return (status, response body). Raises one of
        ``TRANSPORT_ERRORS`` when there is no complete answer (the connection is then
        closed, and made again by the next call)."""
        conn = self._conn
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the collector closed the idle connection: reconnect first
        if conn is None:
            conn = self._conn = self._connect()
        headers = self.headers
        if self._absolute and self._proxy_headers:
            headers = {**headers, **self._proxy_headers}
        try:
            conn.request("POST", self.target(path), body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        return response.status, data

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
