"""pydantic's errors as spec problems: field paths, our wording for its own errors, every
problem at once (also those that span fields), the values shown kept short."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from modelmeter.spec import SpecDocument, SpecError, load_spec
from modelmeter.spec.errors import path_of, spec_error


def _base() -> dict[str, Any]:
    return {
        "task": "binary",
        "classes": [0, 1],
        "features": [
            {"name": "temperature", "type": "numeric", "range": [-40, 50]},
            {"name": "station", "type": "categorical", "categories": ["a", "b"]},
        ],
    }


def _problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_spec(document)
    return list(info.value.problems)


def test_paths_are_written_as_the_author_reads_them() -> None:
    assert path_of(("features", 3, "type")) == "features[3].type"
    assert path_of(("window", "bucket")) == "window.bucket"
    assert path_of(("classes", 1)) == "classes[1]"
    assert path_of(()) == "spec"


def test_every_section_is_checked_in_one_pass() -> None:
    document = _base() | {
        "task": "binary",
        "classes": ["0", "0"],
        "reference": {"label": "", "format": "csv"},
        "window": {"bucket": "500ms"},
        "min_samples": 1.5,
        "drift": {"bins": 1, "multivariate": {"method": "ica"}},
        "thresholds": {"accuracy_critical": 0.9},
        "segments": ["temperature"],
        "owner": "me",
    }
    paths = [path for path, _ in _problems(document)]
    assert paths == [
        "owner",  # an unknown key comes first in its mapping: a typo may explain the rest
        "classes[1]",
        "reference.format",
        "reference.label",
        "window.bucket",
        "min_samples",
        "drift.bins",
        "drift.multivariate.method",
        "thresholds.accuracy_critical",
        "segments[0]",
    ]
    # a check on another field waits for that field to be valid: no segment check here
    document["features"][1]["categories"] = ["a", None, "a"]
    paths = [path for path, _ in _problems(document)]
    assert paths[2:4] == ["features[1].categories[1]", "features[1].categories[2]"]
    assert "segments[0]" not in paths


def test_duplicates_are_found_next_to_a_bad_item() -> None:
    problems = _problems(_base() | {"classes": ["0", None, "0"]})
    assert problems == [
        ("classes[1]", "expected a string or number, got None"),
        ("classes[2]", "duplicate class '0'"),
        ("classes", "a binary model has exactly 2 classes, got 3"),
    ]
    document = _base()
    document["features"].append({"name": "temperature", "type": "float"})
    assert _problems(document) == [
        ("features[2].name", "duplicate feature name 'temperature'"),
        ("features[2].type", "expected 'numeric' or 'categorical', got 'float'"),
    ]


def test_unknown_keys_list_the_known_ones_even_when_they_are_not_strings() -> None:
    assert _problems(_base() | {"window": {"length": "5m", 3: 1}}) == [
        ("window.3", "unknown field; expected one of length, bucket")
    ]
    ((path, message),) = _problems(_base() | {1: "x"})
    assert path == "1"
    assert message.startswith("unknown field; expected one of task, classes, positive_class")


def test_missing_and_misshapen_parts() -> None:
    document = _base()
    document["features"][0] = {"type": "numeric"}
    document["features"][1] = "station"
    document["drift"] = {"multivariate": "yes"}
    assert _problems(document) == [
        (
            "features[0].name",
            "expected a feature name (a letter or _ then up to 63 characters from A-Z a-z 0-9 "
            "_ . -), got nothing",
        ),
        (
            "features[1]",
            "expected a mapping with keys name, type, range, categories; got 'station'",
        ),
        ("drift.multivariate", "expected a mapping with keys method, variance, z; got 'yes'"),
    ]
    assert _problems({"features": [{"name": "x", "type": "numeric"}]}) == [
        ("task", "expected 'binary', 'multiclass' or 'regression', got nothing")
    ]


def test_the_bad_value_is_shown_as_written_and_short() -> None:
    assert _problems(_base() | {"positive_class": 2}) == [
        ("positive_class", "expected one of the classes ['0', '1'], got 2")
    ]
    ((_, message),) = _problems(_base() | {"reference": {"path": "x" * 5000}})
    assert message == "expected at most 4096 characters, got 5000"
    ((_, message),) = _problems(_base() | {"task": "b" * 500})
    assert message.endswith("got 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...")
    ((_, message),) = _problems(_base() | {"window": {"bucket": 10**400}})
    assert message.endswith("got a number too large")


def test_the_performance_window_is_checked_with_the_window() -> None:
    # A bad window: the performance window is not checked against it (no second problem).
    assert _problems(_base() | {"window": {"length": "65s"}, "performance": "1d"}) == [
        ("window", "length 1m5s must be a whole multiple of bucket 10s")
    ]
    # Its problems come with the others, in document order.
    document = _base() | {
        "window": {"bucket": "1m"},
        "performance": {"window": "1d", "bucket": "7m"},
        "min_samples": 0,
    }
    assert [path for path, _ in _problems(document)] == ["performance.bucket", "min_samples"]
    document = _base() | {"performance": {"window": "x", "bucket": "y"}}
    assert [path for path, _ in _problems(document)] == [
        "performance.window",
        "performance.bucket",
    ]
    ((path, message),) = _problems(_base() | {"window": "1h", "performance": {"bucket": "2h"}})
    assert (path, message) == (
        "performance.bucket",
        "the performance window 1h (window.length) is shorter than bucket 2h",
    )


def test_shorthands_and_open_values() -> None:
    document = _base()
    document["features"][0]["range"] = None  # open on both sides
    document["window"] = 600
    document["drift"] = {"multivariate": True}
    spec = load_spec(document)
    assert (spec.features[0].low, spec.features[0].high) == (None, None)
    assert (spec.window_seconds, spec.bucket_seconds, spec.multivariate) == (600.0, 10.0, True)
    document["performance"] = "2d"  # performance: 2d is {window: 2d}
    spec = load_spec(document)
    assert (spec.performance_window_seconds, spec.performance_bucket_seconds) == (172800.0, 3600.0)
    document["performance"] = 7200  # seconds
    assert load_spec(document).performance_window_seconds == 7200.0
    assert load_spec(_base() | {"min_samples": 200.0}).min_samples == 200  # a whole float
    assert load_spec(_base() | {"classes": [True, False]}).classes == ("True", "False")


def test_a_spec_error_keeps_its_public_name() -> None:
    error = SpecError([("task", "x")])
    assert type(error).__module__ == "modelmeter.spec"
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, SpecError) and again.problems == (("task", "x"),)


def test_spec_error_from_a_validation_error_directly() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        SpecDocument.model_validate({"task": "regression", "features": [], "min_samples": "x"})
    error = spec_error(info.value, SpecDocument)
    assert [path for path, _ in error.problems] == ["features", "min_samples"]
    assert str(error).startswith("2 problems: features: expected a non-empty list")


def test_numbers_too_large_for_text_are_problems_not_crashes() -> None:
    huge = 10**5000  # str() of it raises ValueError (Python's int-to-str digit limit)
    document = _base() | {"classes": [huge, 1], "positive_class": huge}
    document["features"][1]["categories"] = ["a", huge]
    problems = _problems(document)
    assert [path for path, _ in problems] == [
        "classes[0]",
        "positive_class",
        "features[1].categories[1]",
    ]
    assert all(message.endswith("got a number too large") for _, message in problems)
    assert load_spec(_base() | {"classes": [10**40, 1]}).classes == (str(10**40), "1")


def test_segments_of_any_shape_are_problems() -> None:
    problems = _problems(_base() | {"segments": [["station"], {"a": 1}, "station"]})
    assert problems == [
        ("segments[0]", "expected the name of a categorical feature ['station'], got a list of 1"),
        ("segments[1]", "expected the name of a categorical feature ['station'], got a mapping"),
    ]
