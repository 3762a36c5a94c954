"""The demo model service: a small HTTP API around the model, reporting through the SDK.

``POST /predict`` with ``{"rows": [{feature: value, ...}, ...]}`` answers
``{"ids": [...], "predictions": [...], "scores": [...]}``: the prediction ids are what a label
source later sends its labels against. Every call goes through ``modelmeter.monitor``.
``GET /healthz`` answers ``{"status": "ok", "rows_served": n}``.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from modelmeter.sdk import MonitoredEstimator

__all__ = ["ModelService", "PortInUseError", "create_app"]


class PortInUseError(RuntimeError):
    """The model service's port is taken."""


def create_app(model: MonitoredEstimator, features: Sequence[str]) -> Starlette:
    """The ASGI app serving ``model`` (already wrapped by ``monitor``)."""
    names = list(features)
    positive = list(model.classes_).index(1)
    served = [0]  # rows predicted so far (shown by /healthz)

    async def predict(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            rows = body["rows"]
            frame = pd.DataFrame([[row.get(n) for n in names] for row in rows], columns=names)
            frame = frame.astype("float64")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return JSONResponse(
                {"detail": f"expected {{'rows': [{{feature: number}}]}} with {names}: {exc!r}"},
                status_code=422,
            )
        try:
            proba, ids = model.predict_proba(frame, return_ids=True)
        except Exception as exc:  # reported to modelmeter as errors by the wrapper
            return JSONResponse({"detail": f"model error: {exc}"}, status_code=500)
        served[0] += len(frame)
        scores = proba[:, positive]
        predictions = model.classes_[proba.argmax(axis=1)]
        return JSONResponse(
            {"ids": ids, "predictions": predictions.tolist(), "scores": scores.tolist()}
        )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "rows_served": served[0]})

    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/healthz", healthz)]
    )


def check_port_free(host: str, port: int) -> None:
    """Raise ``PortInUseError`` with what to do when ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {host} is already in use; stop what runs there or pass "
                    "--model-port with a free port"
                ) from None
            raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class ModelService:
    """Run the app with uvicorn in a background thread; ``stop()`` shuts it down cleanly."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="demo-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ModelService:
        check_port_free(self.host, self.port)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise PortInUseError(f"the model service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
