"""The documented shapes of the HTTP API (OpenAPI only: bodies are parsed by ``ingest``).

Event bodies are parsed with orjson and validated by hand (fast, and per event), so their
JSON Schemas are written here for ``/openapi.json``. The model spec is described by the
pydantic models that validate it (:class:`~modelmeter.spec.SpecDocument`): the request body
of ``PUT /v1/models/{model}`` and the ``spec`` of the responses come from them, never from a
copy. Responses are pydantic models.

>>> SPEC_BODY["content"]["application/json"]["schema"]["required"]
['task', 'features']
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, TypeAdapter

from modelmeter.spec import SpecDocument
from modelmeter.spec.fields import Task

__all__ = [
    "ERROR_RESPONSES",
    "LABELS_BODY",
    "PREDICTIONS_BODY",
    "SPEC_BODY",
    "SPEC_SCHEMA",
    "ErrorBody",
    "LabelsResult",
    "ModelDetail",
    "ModelList",
    "ModelSummary",
    "PredictionsResult",
    "Registered",
    "Rejection",
    "Status",
]


class ErrorBody(BaseModel):
    """Every 4xx/5xx: what is wrong and where."""

    detail: str


class Rejection(BaseModel):
    index: int
    error: str


class PredictionsResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejection]


class LabelsResult(BaseModel):
    matched: int
    pending: int
    duplicates: int
    rejected: list[Rejection]


class Registered(BaseModel):
    model: str
    spec: SpecDocument


class ModelSummary(BaseModel):
    model: str
    task: Task
    versions: list[str]


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDetail(BaseModel):
    model: str
    spec: SpecDocument
    pending_labels: int
    snapshots: dict[str, dict[str, Any]]


class Status(BaseModel):
    status: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


#: Error statuses any endpoint may answer (auth, body limits, content type, validation).
ERROR_RESPONSES = _errors(400, 401, 403, 404, 409, 413, 415, 422)

_VALUE = {"type": ["string", "number", "boolean", "null"]}
_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_TIMESTAMP = {
    "description": "Unix seconds or an RFC 3339 time; default: when the collector receives it",
    "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
}

_PREDICTION_EVENT = {
    "type": "object",
    "required": ["id", "features", "prediction"],
    "properties": {
        "id": _ID,
        "timestamp": _TIMESTAMP,
        "features": {"type": "object", "additionalProperties": _VALUE},
        "prediction": _VALUE,
        "probabilities": {
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "number"}},
                {"type": "array", "items": {"type": "number"}},
            ]
        },
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "latency_seconds": {"type": "number", "minimum": 0},
        "error": {"type": ["boolean", "string"]},
        "label": _VALUE,
        "version": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
    },
}

PREDICTIONS_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["predictions"],
                "properties": {
                    "predictions": {"type": "array", "minItems": 1, "items": _PREDICTION_EVENT},
                    "resources": {
                        "type": "object",
                        "required": ["replica"],
                        "properties": {
                            "replica": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
                            "cpu_ratio": {"type": "number", "minimum": 0},
                            "memory_bytes": {"type": "number", "minimum": 0},
                            "version": {"type": "string"},
                        },
                    },
                },
            }
        }
    },
}

LABELS_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["labels"],
                "properties": {
                    "labels": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["id", "label"],
                            "properties": {"id": _ID, "label": _VALUE, "timestamp": _TIMESTAMP},
                        },
                    }
                },
            }
        }
    },
}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``{"$ref": "#/$defs/X"}`` replaced by ``X`` (none is recursive):
    a request body in ``openapi_extra`` cannot bring its ``$defs`` into the components."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                return walk({**target, **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


#: The JSON Schema of a spec document, from the models that validate it.
SPEC_SCHEMA: dict[str, Any] = _inline(TypeAdapter(SpecDocument).json_schema())

SPEC_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": SPEC_SCHEMA},
        "application/yaml": {
            "schema": {"type": "string", "description": "the same document, as YAML"}
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "spec": {
                        "type": "string",
                        "format": "binary",
                        "description": "the spec document, as JSON or YAML",
                    },
                    "reference": {"type": "string", "format": "binary"},
                },
            }
        },
    },
}
