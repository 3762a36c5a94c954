"""``create_app(settings)``: the collector as an ASGI app, built from its settings only.

The lifespan opens the store, restores every model (checkpoint + log replay), builds the
Prometheus registry, runs the housekeeping timer (checkpoints, TTL expiry) and the shift-aware
refit timer (:mod:`modelmeter.service.shift`; off with MODELMETER_SHIFT_REFIT_INTERVAL=0) and
writes a last checkpoint at shutdown. Shared objects live on ``app.state``; there are no globals.

>>> app = create_app(Settings(data_dir="/tmp/modelmeter-example"))
>>> app.state.settings.port, app.title
(8000, 'modelmeter collector')
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from modelmeter import __version__
from modelmeter.exposition import build_registry
from modelmeter.service.hub import Hub
from modelmeter.service.ingest import IngestError
from modelmeter.service.routes import router
from modelmeter.settings import Settings, is_loopback, open_start_refusal
from modelmeter.spec import SpecError
from modelmeter.store import Store

__all__ = ["create_app"]

log = logging.getLogger("modelmeter.collector")


async def _housekeeping(hub: Hub, settings: Settings) -> None:
    """Checkpoint and hold the store to its budget every ``checkpoint_interval``; expire old
    predictions/labels and retire idle versions every minute."""
    interval = settings.checkpoint_interval_seconds
    expire_every = min(60.0, max(1.0, settings.label_ttl_seconds / 10))
    last_expiry = 0.0
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(hub.checkpoint)
            await anyio.to_thread.run_sync(hub.enforce_budget)
            if time.monotonic() - last_expiry >= expire_every:
                last_expiry = time.monotonic()
                await anyio.to_thread.run_sync(hub.expire, time.time())
        except Exception:  # keep the timer alive; the next round retries
            log.exception("housekeeping failed")


async def _shift_refits(
    hub: Hub, settings: Settings, worker: concurrent.futures.ThreadPoolExecutor
) -> None:
    """Every ``shift_refit_interval``: refit the calibration of each version due for it, one
    at a time in ``worker`` (one thread: never on the event loop, never two fits at once)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(settings.shift_refit_interval_seconds)
        try:
            due = await loop.run_in_executor(worker, hub.shift_candidates)  # takes the lock
            for name, version in due:
                await loop.run_in_executor(worker, hub.refit_shift, name, version)
        except Exception:  # keep the timer alive; the next round retries
            log.exception("shift-aware refits failed")


def create_app(settings: Settings) -> FastAPI:
    """The collector app for ``settings`` (serve it with one uvicorn worker).

    Raises ValueError on a non-loopback host without write tokens unless ``allow_open``.
    """

    refusal = open_start_refusal(settings)
    if refusal is not None:
        raise ValueError(refusal)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_path, settings.sqlite_synchronous, settings.max_wal_bytes)
        hub = Hub(settings, store)
        app.state.hub = hub
        app.state.registry = build_registry(lambda: hub.state(time.time()))
        await anyio.to_thread.run_sync(hub.load)
        log.info("collector ready: %d models restored from %s", len(hub.models), store.path)
        if not is_loopback(settings.host) and not settings.write_tokens:
            log.warning(
                "listening on %s without MODELMETER_WRITE_TOKENS (MODELMETER_ALLOW_OPEN): "
                "anyone who can reach the port can register models and send events",
                settings.host,
            )
        tasks = [asyncio.create_task(_housekeeping(hub, settings))]
        worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="modelmeter-refit")
        if settings.shift_refit_interval_seconds > 0:
            tasks.append(asyncio.create_task(_shift_refits(hub, settings, worker)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            worker.shutdown(wait=False, cancel_futures=True)  # a refit running ends by itself
            await anyio.to_thread.run_sync(hub.checkpoint)
            store.close()

    app = FastAPI(
        title="modelmeter collector",
        version=__version__,
        description="Ingests prediction events and labels; serves model metrics to Prometheus.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(router)

    @app.exception_handler(IngestError)
    async def ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(SpecError)
    async def spec_error(request: Request, exc: SpecError) -> JSONResponse:
        return JSONResponse({"detail": f"invalid spec: {exc}"}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc.errors())[:500]}, status_code=422)

    return app
