"""The spec's JSON Schema comes from the pydantic models that validate it, and agrees with them:
every valid spec and every normalized spec (``to_dict``, what the API answers) fits it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modelmeter.service.schemas import SPEC_BODY, SPEC_SCHEMA, ModelDetail, Registered
from modelmeter.spec import DEFAULT_THRESHOLDS, SpecDocument, load_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_SPECS = sorted(EXAMPLES.glob("*-spec.yaml"))

VALIDATOR = jsonschema.Draft202012Validator(SPEC_SCHEMA)


def _full_spec() -> dict[str, Any]:
    return {
        "task": "multiclass",
        "classes": ["a", "b", 3],
        "features": [
            {"name": "x", "type": "numeric", "range": [0, None]},
            {"name": "c", "type": "categorical", "categories": ["u", "v", 1]},
        ],
        "reference": {"path": "r.csv", "probabilities": ["pa", "pb", "p3"]},
        "window": "1h",
        "min_samples": 50,
        "drift": {"bins": 8, "fdr": 0.1, "multivariate": {"variance": 0.8, "z": 2.5}},
        "thresholds": {"accuracy_warning": 0.9, "silence_seconds": 60},
        "segments": ["c"],
    }


def test_the_request_body_is_the_document_model_schema() -> None:
    assert SPEC_BODY["content"]["application/json"]["schema"] is SPEC_SCHEMA
    assert "$ref" not in json.dumps(SPEC_SCHEMA)  # inlined: openapi_extra has no components
    model = SpecDocument.model_json_schema()
    assert SPEC_SCHEMA["required"] == model["required"] == ["task", "features"]
    assert set(SPEC_SCHEMA["properties"]) == set(SpecDocument.model_fields)
    assert SPEC_SCHEMA["additionalProperties"] is False
    thresholds = SPEC_SCHEMA["properties"]["thresholds"]["anyOf"][0]["properties"]
    assert {k: v["default"] for k, v in thresholds.items()} == dict(DEFAULT_THRESHOLDS)
    assert thresholds["accuracy_warning"]["maximum"] == 1.0
    assert "maximum" not in thresholds["memory_bytes"]
    feature = SPEC_SCHEMA["properties"]["features"]["items"]
    assert feature["properties"]["name"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
    assert feature["properties"]["type"]["enum"] == ["numeric", "categorical"]


def test_responses_describe_the_spec_with_the_same_model() -> None:
    for response in (Registered, ModelDetail):
        assert response.model_fields["spec"].annotation is SpecDocument


@pytest.mark.parametrize("example", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_examples_and_their_normal_form_fit_the_schema(example: Path) -> None:
    document = yaml.safe_load(example.read_text())
    VALIDATOR.validate(document)
    normal = load_spec(example).to_dict()
    VALIDATOR.validate(normal)
    SpecDocument.model_validate(normal)


def test_a_full_spec_fits_the_schema_before_and_after_loading() -> None:
    VALIDATOR.validate(_full_spec())
    spec = load_spec(_full_spec())
    VALIDATOR.validate(spec.to_dict())
    off = _full_spec()
    off["drift"]["multivariate"] = False
    VALIDATOR.validate(load_spec(off).to_dict())
    assert load_spec(off).to_dict()["drift"]["multivariate"] is False


@pytest.mark.parametrize(
    "change",
    [
        {"task": "classification"},
        {"model": "x"},
        {"min_samples": "100"},
        {"min_samples": 0},
        {"window": {"size": "5m"}},
        {"thresholds": {"accuracy_warning": 80}},
        {"drift": {"fdr": 0}},
        {"features": []},
        {"segments": []},
    ],
    ids=lambda c: next(iter(c)),
)
def test_what_the_schema_refuses_the_loader_refuses(change: dict[str, Any]) -> None:
    document = _full_spec() | change
    assert not VALIDATOR.is_valid(document)
    with pytest.raises(ValueError):
        load_spec(document)
