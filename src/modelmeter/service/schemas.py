"""The documented shapes of the HTTP API (OpenAPI only: bodies are parsed by ``ingest``).

Request bodies are parsed with orjson and validated by hand (fast, and per event), so their
JSON Schemas are written here for ``/openapi.json``; responses are pydantic models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = [
    "ERROR_RESPONSES",
    "LABELS_BODY",
    "PREDICTIONS_BODY",
    "SPEC_BODY",
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
    spec: dict[str, Any]


class ModelSummary(BaseModel):
    model: str
    task: str
    versions: list[str]


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDetail(BaseModel):
    model: str
    spec: dict[str, Any]
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

_SPEC_SCHEMA = {
    "type": "object",
    "required": ["task", "features"],
    "properties": {
        "task": {"enum": ["binary", "multiclass", "regression"]},
        "classes": {"type": "array", "items": {"type": ["string", "integer"]}},
        "positive_class": {"type": ["string", "integer"]},
        "features": {"type": "array", "items": {"type": "object"}},
        "reference": {"type": "object"},
        "window": {"type": "object"},
        "min_samples": {"type": "integer"},
        "thresholds": {"type": "object"},
    },
}

SPEC_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": _SPEC_SCHEMA},
        "application/yaml": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "spec": {"type": "string", "format": "binary"},
                    "reference": {"type": "string", "format": "binary"},
                },
            }
        },
    },
}
