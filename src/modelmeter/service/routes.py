"""The collector's HTTP endpoints (docs/contract.md, "HTTP API").

Handlers only do HTTP: auth, content type, size limits. The work (parsing, validation,
store, engine) runs in a worker thread through :class:`~modelmeter.service.hub.Hub`, so the
event loop keeps answering ``/healthz`` and ``/metrics`` while a large batch is processed.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from modelmeter.exposition import CONTENT_TYPE_LATEST, render
from modelmeter.names import NAME_PATTERNS, is_name
from modelmeter.service.auth import check_token
from modelmeter.service.hub import Hub
from modelmeter.service.ingest import IngestError, parse_json
from modelmeter.service.schemas import (
    ERROR_RESPONSES,
    LABELS_BODY,
    PREDICTIONS_BODY,
    SPEC_BODY,
    LabelsResult,
    ModelDetail,
    ModelList,
    PredictionsResult,
    Registered,
    Status,
)
from modelmeter.settings import Settings
from modelmeter.spec import ModelSpec, load_spec

__all__ = ["router"]

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="write or read token")
_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
_MODEL_NAME = NAME_PATTERNS["model"].pattern  # in messages
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _authorize(request: Request, scope: str, always: bool = False) -> None:
    """Raise 401/403 unless the request's bearer token grants ``scope``.

    Reads are open while no read token is configured, unless ``always`` (``/metrics`` with
    MODELMETER_PROTECT_METRICS), which then accepts the read and the write tokens.
    """
    settings = _settings(request)
    if scope == "write":
        allowed: tuple[str, ...] = settings.write_tokens
    elif settings.read_tokens or always:
        allowed = settings.read_tokens + settings.write_tokens
    else:
        allowed = ()
    error = check_token(request.headers.get("authorization"), allowed, scope)
    if error is not None:
        raise error


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _require_json(request: Request) -> None:
    media = _media_type(request)
    if media != "application/json" and not media.endswith("+json"):
        raise IngestError(
            415,
            f"Content-Type is {media or 'missing'!r}; send the body as 'application/json'",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes, by Content-Length or as streamed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise IngestError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise IngestError(
                413,
                f"the body has {size} bytes; the limit is {limit} (MODELMETER_MAX_BODY_BYTES); "
                "send smaller batches",
            )
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise IngestError(
                413,
                f"the body exceeds {limit} bytes (MODELMETER_MAX_BODY_BYTES); send smaller batches",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _check_name(model: str) -> None:
    if not is_name("model", model):
        raise IngestError(
            404, f"model {model[:80]!r} is not registered (names match {_MODEL_NAME})"
        )


# --- ingestion ------------------------------------------------------------------------------


@router.post(
    "/v1/models/{model}/predictions",
    response_model=PredictionsResult,
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": PREDICTIONS_BODY, "security": _SECURITY},
    summary="Ingest a batch of prediction events",
)
async def post_predictions(model: str, request: Request) -> Response:
    return await _ingest(model, request, "predictions")


@router.post(
    "/v1/models/{model}/labels",
    response_model=LabelsResult,
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": LABELS_BODY, "security": _SECURITY},
    summary="Ingest labels of earlier predictions, by prediction id",
)
async def post_labels(model: str, request: Request) -> Response:
    return await _ingest(model, request, "labels")


async def _ingest(model: str, request: Request, kind: str) -> Response:
    """Authorize, check, read the body, then parse and commit it off the event loop."""
    _authorize(request, "write")
    _check_name(model)
    _require_json(request)
    hub = _hub(request)
    hub.entry(model)
    body = await read_body(request, _settings(request).max_body_bytes)
    ingest = hub.ingest_predictions if kind == "predictions" else hub.ingest_labels

    def work() -> dict[str, Any]:
        t0 = time.perf_counter()
        doc = parse_json(body)
        hub.timings["parse"] += time.perf_counter() - t0
        return ingest(model, doc, time.time())

    return _json(await anyio.to_thread.run_sync(work))


# --- registration ---------------------------------------------------------------------------


async def _multipart(request: Request, body: bytes) -> tuple[bytes, bytes | None, str | None]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    replay = Request(request.scope, receive)
    try:
        form = await replay.form(max_files=2, max_fields=4)
    except Exception as exc:  # python-multipart raises several types for broken bodies
        raise IngestError(400, f"malformed multipart body: {exc}") from None
    spec_part = form.get("spec")
    if spec_part is None:
        raise IngestError(422, "the multipart body has no 'spec' field; send spec=<file>")
    spec_bytes = await spec_part.read() if not isinstance(spec_part, str) else spec_part.encode()
    ref_part = form.get("reference")
    if ref_part is None:
        return spec_bytes, None, None
    if isinstance(ref_part, str):
        return spec_bytes, ref_part.encode(), "reference.csv"
    return spec_bytes, await ref_part.read(), ref_part.filename or "reference"


@router.put(
    "/v1/models/{model}",
    response_model=Registered,
    status_code=200,
    responses={201: {"model": Registered}, **ERROR_RESPONSES},
    openapi_extra={"requestBody": SPEC_BODY, "security": _SECURITY},
    summary="Register or replace a model spec (JSON, YAML, or multipart with reference data)",
)
async def put_model(model: str, request: Request) -> Response:
    _authorize(request, "write")
    if not is_name("model", model):
        raise IngestError(
            422, f"model name {model[:80]!r} is invalid; use 1-64 of A-Z a-z 0-9 _ . -"
        )
    media = _media_type(request)
    body = await read_body(request, _settings(request).max_body_bytes)
    reference: bytes | None = None
    reference_name: str | None = None
    if media == "multipart/form-data":
        spec_bytes, reference, reference_name = await _multipart(request, body)
    elif media == "application/json" or media in _YAML_TYPES:
        spec_bytes = body
    else:
        raise IngestError(
            415,
            f"Content-Type is {media or 'missing'!r}; send the spec as application/json, "
            "application/yaml, or multipart/form-data (spec=<file>, reference=<csv|parquet>)",
        )
    hub = _hub(request)

    def work() -> tuple[bool, ModelSpec]:
        spec = load_spec(spec_bytes)
        return hub.register(model, spec, reference, reference_name)

    created, spec = await anyio.to_thread.run_sync(work)
    return _json({"model": model, "spec": spec.to_dict()}, 201 if created else 200)


@router.delete(
    "/v1/models/{model}",
    status_code=204,
    responses=ERROR_RESPONSES,
    openapi_extra={"security": _SECURITY},
    summary="Delete a model: its spec, state and waiting events; its series leave /metrics",
)
async def delete_model(model: str, request: Request) -> Response:
    _authorize(request, "write")
    _check_name(model)
    hub = _hub(request)
    await anyio.to_thread.run_sync(hub.delete, model)
    return Response(status_code=204)


@router.delete(
    "/v1/models/{model}/versions/{version}",
    status_code=204,
    responses=ERROR_RESPONSES,
    openapi_extra={"security": _SECURITY},
    summary="Retire a model version: its series leave /metrics; its late labels are counted",
)
async def delete_version(model: str, version: str, request: Request) -> Response:
    _authorize(request, "write")
    _check_name(model)
    hub = _hub(request)
    await anyio.to_thread.run_sync(hub.retire_version, model, version, time.time())
    return Response(status_code=204)


# --- reading --------------------------------------------------------------------------------


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=ERROR_RESPONSES,
    openapi_extra={"security": _SECURITY},
    summary="List registered models",
)
async def list_models(request: Request) -> Response:
    _authorize(request, "read")
    return _json({"models": _hub(request).listing()})


@router.get(
    "/v1/models/{model}",
    response_model=ModelDetail,
    responses=ERROR_RESPONSES,
    openapi_extra={"security": _SECURITY},
    summary="A model's spec and the current snapshot of each version (NaN as null)",
)
async def get_model(model: str, request: Request) -> Response:
    _authorize(request, "read")
    _check_name(model)
    hub = _hub(request)
    hub.entry(model)
    return _json(await anyio.to_thread.run_sync(hub.describe, model, time.time()))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {}, 403: {}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    if _settings(request).protect_metrics:
        _authorize(request, "read", always=True)
    payload = await anyio.to_thread.run_sync(render, request.app.state.registry)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", response_model=Status, summary="Liveness")
async def healthz() -> Response:
    return _json({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Status,
    responses={503: {"model": Status}},
    summary="Readiness: the store is open and every model restored",
)
async def readyz(request: Request) -> Response:
    ready = _hub(request).ready
    return _json({"status": "ready" if ready else "starting"}, 200 if ready else 503)


@router.get("/debug/timings", include_in_schema=False)
async def timings(request: Request) -> Response:
    """Cumulative seconds spent per ingestion stage (for bench/ingest.py); 404 unless
    MODELMETER_DEBUG_ENDPOINTS (``--debug-endpoints``) is on."""
    if not _settings(request).debug_endpoints:
        raise IngestError(404, "Not Found")
    _authorize(request, "read")
    return _json(dict(_hub(request).timings))
