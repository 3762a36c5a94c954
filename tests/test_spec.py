"""Model specs: parsing, every error path, round trips, reference data in CSV and Parquet."""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from modelmeter import spec_cli
from modelmeter.engine import ModelMonitor, MonitorConfig, ReferenceData
from modelmeter.spec import (
    DEFAULT_THRESHOLDS,
    MIN_REFERENCE_ROWS,
    Feature,
    ModelSpec,
    SpecError,
    load_reference,
    load_spec,
)
from modelmeter.units import format_duration, parse_duration

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_SPECS = sorted(EXAMPLES.glob("*-spec.yaml"))


def base() -> dict[str, Any]:
    """A valid binary spec as plain data (the tests break one field at a time)."""
    return {
        "task": "binary",
        "classes": [0, 1],
        "positive_class": 1,
        "features": [
            {"name": "temperature", "type": "numeric", "range": [-40, 50]},
            {"name": "station", "type": "categorical", "categories": ["a", "b", "c"]},
        ],
        "reference": {"path": "reference.csv"},
        "window": {"length": "5m", "bucket": "10s"},
        "min_samples": 100,
        "thresholds": {"accuracy_warning": 0.8, "accuracy_critical": 0.7},
    }


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("1w", 604800.0),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (" 10s ", 10.0),
        (12, 12.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "5 m", "5M", "m", "-5s", "5x", "1h-3m", "abc", True, None, [1]]
)
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "seconds", [1, 10, 59, 60, 61, 300, 3600, 5400, 86400, 90061, 604800, 0.25]
)
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --------------------------------------------------------------------------- parsing


def test_load_parses_every_field() -> None:
    spec = load_spec(yaml.safe_dump(base()))
    assert spec.task == "binary"
    assert spec.classes == ("0", "1")
    assert spec.positive_class == "1"
    assert spec.features == (
        Feature("temperature", "numeric", -40.0, 50.0),
        Feature("station", "categorical", categories=("a", "b", "c")),
    )
    assert spec.feature_names == ("temperature", "station")
    assert spec.reference.path == "reference.csv"
    assert (spec.reference.prediction, spec.reference.label) == ("prediction", "label")
    assert (spec.window_seconds, spec.bucket_seconds, spec.min_samples) == (300.0, 10.0, 100)
    assert dict(spec.thresholds) == dict(DEFAULT_THRESHOLDS)


def test_defaults_and_positive_class() -> None:
    spec = load_spec(
        {"task": "binary", "classes": ["no", "yes"], "features": [{"name": "x", "type": "numeric"}]}
    )
    assert spec.positive_class == "yes"  # the last class, like the engine
    assert (spec.window_seconds, spec.bucket_seconds, spec.min_samples) == (300.0, 10.0, 100)
    assert (spec.drift_bins, spec.drift_fdr) == (10, 0.05)
    assert spec.reference.path is None


def test_yaml_json_bytes_and_path_give_the_same_spec(tmp_path: Path) -> None:
    data = base()
    from_yaml = load_spec(yaml.safe_dump(data))
    from_json = load_spec(json.dumps(data))
    from_bytes = load_spec(json.dumps(data).encode())
    from_bom = load_spec(b"\xef\xbb\xbf" + yaml.safe_dump(data).encode())
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    from_path = load_spec(path)
    assert from_yaml == from_json == from_bytes == from_bom == from_path == load_spec(data)
    assert from_path.base_dir == tmp_path


def test_window_shorthand_and_thresholds() -> None:
    data = base()
    data["window"] = "1h"
    data["thresholds"] = {"latency_p95_seconds": 0.25, "memory_bytes": 2**30}
    spec = load_spec(data)
    assert (spec.window_seconds, spec.bucket_seconds) == (3600.0, 10.0)
    assert spec.thresholds["latency_p95_seconds"] == 0.25
    assert spec.thresholds["memory_bytes"] == 2**30
    assert spec.thresholds["accuracy_warning"] == 0.8
    assert set(spec.thresholds) == set(DEFAULT_THRESHOLDS)


@pytest.mark.parametrize(
    ("performance", "window", "bucket"),
    [
        ("2d", 172800.0, 3600.0),  # 48 buckets of performance.window / 48
        ({"window": "2d", "bucket": "1h"}, 172800.0, 3600.0),
        ({"window": "2d", "bucket": "2h"}, 172800.0, 7200.0),
        (90000, 90000.0, 1875.0),  # 1d1h in seconds
        ({"bucket": "1m"}, 300.0, 60.0),  # the window's length
        ("20m", 1200.0, 25.0),
        ("6m", 360.0, 10.0),  # 6m / 48 is below window.bucket
        ({}, 300.0, 10.0),
        (None, 300.0, 10.0),
    ],
)
def test_performance_window_forms_and_defaults(
    performance: Any, window: float, bucket: float
) -> None:
    spec = load_spec(base() | {"performance": performance})
    assert (spec.performance_window_seconds, spec.performance_bucket_seconds) == (window, bucket)
    config = spec.monitor_config()
    assert (config.performance_window, config.performance_bucket) == (window, bucket)
    assert config.performance_n_buckets == int(window // bucket)
    assert (config.window_seconds, config.bucket_seconds) == (300.0, 10.0)  # the window stays
    again = load_spec(json.dumps(spec.to_dict()))
    assert again == spec and again.to_dict() == spec.to_dict()
    assert load_spec(yaml.safe_dump(spec.to_dict())) == spec
    if (window, bucket) == (300.0, 10.0):
        assert "performance" not in spec.to_dict()
    else:
        assert spec.to_dict()["performance"] == {
            "window": format_duration(window),
            "bucket": format_duration(bucket),
        }


def test_performance_window_follows_the_window_bucket() -> None:
    spec = load_spec(base() | {"window": {"length": "1h", "bucket": "1m"}, "performance": "1h"})
    assert (spec.performance_window_seconds, spec.performance_bucket_seconds) == (3600.0, 75.0)
    spec = load_spec(base() | {"window": {"length": "10m", "bucket": "1m"}, "performance": "30m"})
    assert (spec.performance_window_seconds, spec.performance_bucket_seconds) == (1800.0, 60.0)
    longer = load_spec(base() | {"window": "1h"})  # no performance: the window, whatever it is
    assert (longer.performance_window_seconds, longer.performance_bucket_seconds) == (3600.0, 10.0)


def test_a_performance_window_equal_to_the_window_leaves_the_spec_as_before() -> None:
    before = load_spec(base())
    same = load_spec(base() | {"performance": {"window": "5m", "bucket": "10s"}})
    assert same == before and same.to_dict() == before.to_dict()
    assert json.dumps(same.to_dict()) == json.dumps(before.to_dict())
    assert "performance" not in before.to_dict() and before.performance_window is None
    assert list(before.to_dict()) == [
        "task",
        "classes",
        "positive_class",
        "features",
        "reference",
        "window",
        "min_samples",
        "drift",
        "thresholds",
    ]
    daily = load_spec(base() | {"performance": "1d"})
    assert daily != before
    assert list(daily.to_dict()).index("performance") == list(daily.to_dict()).index("window") + 1
    # A spec built in code: the defaults of the document.
    built = ModelSpec(task="regression", features=(Feature("x", "numeric"),))
    assert (built.performance_window_seconds, built.performance_bucket_seconds) == (300.0, 10.0)
    explicit = ModelSpec(task="regression", features=built.features, performance_window=300.0)
    assert explicit == built and explicit.performance_window is None


@pytest.mark.parametrize("example", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_round_trip_through_to_dict(example: Path) -> None:
    spec = load_spec(example)
    as_json = json.dumps(spec.to_dict())
    assert load_spec(as_json) == spec
    assert load_spec(yaml.safe_dump(spec.to_dict())) == spec
    assert load_spec(spec.to_dict()).to_dict() == spec.to_dict()


def test_round_trip_of_a_full_spec() -> None:
    data = base()
    data["features"].append({"name": "wind.speed", "type": "numeric", "range": [0, None]})
    data["reference"] = {
        "path": "r.parquet",
        "prediction": "pred",
        "label": "y",
        "score": "p1",
    }
    data["window"] = {"length": "1h30m", "bucket": "30s"}
    data["drift"] = {"bins": 20, "fdr": 0.01}
    spec = load_spec(data)
    again = load_spec(json.dumps(spec.to_dict()))
    assert again == spec
    assert again.to_dict()["window"] == {"length": "1h30m", "bucket": "30s"}
    assert again.features[2] == Feature("wind.speed", "numeric", 0.0, None)


def test_monitor_config_matches_the_spec() -> None:
    data = base()
    data["drift"] = {"bins": 8, "fdr": 0.1}
    spec = load_spec(data)
    config = spec.monitor_config()
    assert isinstance(config, MonitorConfig)
    assert config.task == "binary"
    assert config.classes == ("0", "1")
    assert config.positive_class == "1"
    assert [(f.name, f.kind, f.low, f.high, f.categories) for f in config.features] == [
        ("temperature", "numeric", -40.0, 50.0, None),
        ("station", "categorical", None, None, ("a", "b", "c")),
    ]
    assert (config.window_seconds, config.bucket_seconds, config.min_samples) == (300.0, 10.0, 100)
    assert (config.drift_bins, config.drift_fdr) == (8, 0.1)


def test_model_spec_repr_and_thresholds_are_read_only() -> None:
    spec = ModelSpec(task="regression", features=(Feature("x", "numeric"),))
    assert repr(spec).startswith("ModelSpec(task='regression', features=(Feature(name='x'")
    with pytest.raises(TypeError):
        spec.thresholds["accuracy_warning"] = 0.1  # type: ignore[index]


# --------------------------------------------------------------------------- error paths


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(base())
    for dotted, value in changes.items():
        target: Any = data
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return data


_DELETE = object()

ERROR_CASES: list[tuple[dict[str, Any], str, str]] = [
    (_with(task="classification"), "task", "expected 'binary', 'multiclass' or 'regression'"),
    (_with(task=_DELETE), "task", "got nothing"),
    (_with(classes=["0"]), "classes", "at least 2"),
    (_with(classes="01"), "classes", "expected a list"),
    (_with(classes=["0", "1", "2"]), "classes", "exactly 2 classes, got 3"),
    (_with(classes=["0", "0"]), "classes[1]", "duplicate class '0'"),
    (_with(classes=["0", None]), "classes[1]", "expected a string or number"),
    (_with(classes=["0", "a\nb"]), "classes[1]", "printable characters, got 'a\\nb'"),
    (_with(classes=["0", "x" * 129]), "classes[1]", "1 to 128 printable characters"),
    (_with(positive_class="2"), "positive_class", "expected one of the classes"),
    (_with(features=[]), "features", "non-empty list"),
    (_with(features={"x": "numeric"}), "features", "expected a non-empty list"),
    (
        _with(features=[{"name": f"f{i}", "type": "numeric"} for i in range(201)]),
        "features",
        "at most 200",
    ),
    (
        _with(features__1__type="float"),
        "features[1].type",
        "expected 'numeric' or 'categorical', got 'float'",
    ),
    (_with(features__0__name="1st"), "features[0].name", "a letter or _ then up to 63 characters"),
    (_with(features__0__name="a b"), "features[0].name", "got 'a b'"),
    (_with(features__0__name="x" * 65), "features[0].name", "expected a feature name (a letter"),
    (_with(features__1__name="temperature"), "features[1].name", "duplicate feature name"),
    (_with(features__0__unit="C"), "features[0].unit", "unknown field"),
    (_with(features__0="temperature"), "features[0]", "expected a mapping"),
    (_with(features__0__range=[50, -40]), "features[0].range", "low 50 is above high -40"),
    (_with(features__0__range=[0]), "features[0].range", "expected [low, high]"),
    (_with(features__0__range=["a", 1]), "features[0].range", "expected [low, high]"),
    (_with(features__0__categories=["a"]), "features[0].categories", "only categorical"),
    (_with(features__1__range=[0, 1]), "features[1].range", "only numeric"),
    (_with(features__1__categories=[]), "features[1].categories", "1 to 1000 values"),
    (_with(features__1__categories=["a", "a"]), "features[1].categories[1]", "duplicate category"),
    (_with(reference="data.csv"), "reference", "expected a mapping"),
    (_with(reference__format="csv"), "reference.format", "unknown field"),
    (_with(reference__label=""), "reference.label", "non-empty string"),
    (_with(reference__probabilities=["p0"]), "reference.probabilities", "expected 2 column names"),
    (_with(reference__probabilities="p0"), "reference.probabilities", "list of column names"),
    (_with(window__length="5 minutes"), "window.length", "expected a duration like"),
    (_with(window__bucket="500ms"), "window.bucket", "whole seconds"),
    (_with(window__length="65s"), "window", "whole multiple of bucket 10s"),
    (_with(window__length="5s"), "window", "whole multiple"),
    (_with(window__length="7d"), "window", "60480 buckets; at most 1000"),
    (_with(window__size="5m"), "window.size", "unknown field"),
    (_with(performance="5 minutes"), "performance.window", "expected a duration like"),
    (_with(performance={"bucket": "1.5s"}), "performance.bucket", "whole seconds"),
    (_with(performance={"window": "2d", "bucket": "3d"}), "performance.bucket", "shorter than"),
    (
        _with(performance={"window": "1d", "bucket": "7m"}),
        "performance.bucket",
        "the performance window 1d must be a whole multiple of bucket 7m",
    ),
    (
        _with(performance={"bucket": "7s"}),
        "performance.bucket",
        "the performance window 5m (window.length) must be a whole multiple of bucket 7s",
    ),
    (
        _with(performance={"window": "30d", "bucket": "10s"}),
        "performance.bucket",
        "gives 259200 buckets; at most 1000: use a longer bucket",
    ),
    (
        _with(performance="5s"),
        "performance.window",
        "shorter than its default bucket 10s (window.bucket); set performance.bucket",
    ),
    (_with(performance=True), "performance", "expected a mapping with keys window, bucket"),
    (_with(performance={"length": "2d"}), "performance.length", "unknown field"),
    (_with(min_samples=0), "min_samples", "whole number from 1"),
    (_with(min_samples="100"), "min_samples", "whole number"),
    (_with(min_samples=True), "min_samples", "whole number"),
    (_with(drift={"bins": 1}), "drift.bins", "from 2 to 100"),
    (_with(drift={"fdr": 0}), "drift.fdr", "strictly between 0 and 1"),
    (
        _with(thresholds__accuracy=0.8),
        "thresholds.accuracy",
        "unknown field; expected one of accuracy_warning",
    ),
    (_with(thresholds__accuracy_warning=80), "thresholds.accuracy_warning", "from 0 to 1, got 80"),
    (_with(thresholds__error_rate=-1), "thresholds.error_rate", "from 0 to inf"),
    (_with(thresholds__cpu_ratio="high"), "thresholds.cpu_ratio", "got 'high'"),
    (
        _with(thresholds__accuracy_critical=0.9),
        "thresholds.accuracy_critical",
        "above accuracy_warning",
    ),
    (_with(model="x"), "model", "unknown field"),
]


@pytest.mark.parametrize(
    ("document", "path", "message"), ERROR_CASES, ids=[c[1] + ":" + c[2][:20] for c in ERROR_CASES]
)
def test_every_error_names_its_field_path(
    document: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(json.dumps(document))
    assert info.value.path == path
    assert (path, info.value.problems[0][1]) == info.value.problems[0]
    assert message in info.value.problems[0][1]
    assert str(info.value).count(f"{path}: ") >= 1
    assert isinstance(info.value, ValueError)


def test_regression_specific_errors() -> None:
    data = {
        "task": "regression",
        "classes": [0, 1],
        "positive_class": 1,
        "features": [{"name": "x", "type": "numeric"}],
        "reference": {"score": "s", "probabilities": ["a"]},
    }
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert [p for p, _ in info.value.problems] == [
        "classes",
        "positive_class",
        "reference.probabilities",
        "reference.score",
    ]


def test_multiclass_has_no_positive_class_or_score() -> None:
    data = _with(
        task="multiclass", classes=["a", "b", "c"], positive_class="a", reference__score="s"
    )
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert [p for p, _ in info.value.problems] == ["positive_class", "reference.score"]


def test_several_problems_are_reported_at_once() -> None:
    data = _with(task="binary", features__1__type="float", min_samples=-1, window__bucket="x")
    with pytest.raises(SpecError) as info:
        load_spec(data)
    paths = [p for p, _ in info.value.problems]
    assert paths == ["features[1].type", "window.bucket", "min_samples"]
    assert str(info.value).startswith("3 problems: features[1].type: expected")
    assert info.value.path == "features[1].type"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty document"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("task: [binary\n", "not valid YAML or JSON"),
        ('{"task": "binary",}', "not valid JSON"),
        (b"task: \xff\xfe", "not UTF-8"),
    ],
)
def test_unparseable_documents(text: str | bytes, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_spec(text)
    assert info.value.path == "spec"


def test_unreadable_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read") as info:
        load_spec(tmp_path / "missing.yaml")
    assert info.value.path == "spec"


def test_spec_error_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        SpecError([])


# --------------------------------------------------------------------------- reference data


def test_binary_example_reference_matches_the_csv() -> None:
    spec = load_spec(EXAMPLES / "binary-spec.yaml")
    reference = load_reference(spec)
    assert isinstance(reference, ReferenceData)
    frame = pd.read_csv(EXAMPLES / "binary-reference.csv")
    assert set(reference.features) == set(spec.feature_names)
    for name in spec.feature_names:
        np.testing.assert_array_equal(reference.features[name], frame[name].to_numpy(np.float64))
    assert list(reference.predictions) == frame["prediction"].tolist()
    assert list(reference.labels) == frame["label"].tolist()
    assert reference.scores is not None
    np.testing.assert_array_equal(reference.scores, frame["score"].to_numpy(np.float64))


def test_multiclass_example_has_probability_matrix() -> None:
    spec = load_spec(EXAMPLES / "multiclass-spec.yaml")
    reference = load_reference(spec)
    frame = pd.read_csv(EXAMPLES / "multiclass-reference.csv")
    assert reference.scores is not None
    assert reference.scores.shape == (len(frame), 3)
    np.testing.assert_array_equal(
        reference.scores, frame[["p_class_0", "p_class_1", "p_class_2"]].to_numpy(np.float64)
    )


def test_regression_example_reads_categorical_as_strings() -> None:
    spec = load_spec(EXAMPLES / "regression-spec.yaml")
    reference = load_reference(spec)
    assert reference.scores is None
    assert reference.predictions.dtype == np.float64
    assert set(reference.features["sex"]) == {"1", "2"}
    assert spec.features[1] == Feature("sex", "categorical", categories=("1", "2"))


@pytest.mark.parametrize("example", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_examples_fit_an_engine_monitor(example: Path) -> None:
    spec = load_spec(example)
    monitor = ModelMonitor(spec.monitor_config(), load_reference(spec))
    assert monitor.snapshot(0.0).window_predictions == 0


def _binary_frame() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "binary-reference.csv", dtype={"prediction": str, "label": str})


def _assert_same_reference(a: ReferenceData, b: ReferenceData) -> None:
    assert a.features.keys() == b.features.keys()
    for name in a.features:
        np.testing.assert_array_equal(a.features[name], b.features[name])
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.scores is not None and b.scores is not None
    np.testing.assert_array_equal(a.scores, b.scores)


def test_parquet_path_bytes_and_gzip_csv_equal_the_csv(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "binary-spec.yaml")
    from_csv = load_reference(spec)
    frame = _binary_frame()
    frame.to_parquet(tmp_path / "binary-reference.csv")  # the content decides the format
    _assert_same_reference(from_csv, load_reference(spec, base_dir=tmp_path))
    frame.to_parquet(tmp_path / "ref.parquet")
    data = {**spec.to_dict(), "reference": {"path": "ref.parquet"}}
    (tmp_path / "spec.json").write_text(json.dumps(data))
    _assert_same_reference(from_csv, load_reference(load_spec(tmp_path / "spec.json")))
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    _assert_same_reference(from_csv, load_reference(spec, data=buffer.getvalue()))
    csv_bytes = (EXAMPLES / "binary-reference.csv").read_bytes()
    _assert_same_reference(from_csv, load_reference(spec, data=csv_bytes))
    _assert_same_reference(from_csv, load_reference(spec, data=gzip.compress(csv_bytes)))


def test_parquet_typed_columns_become_class_strings() -> None:
    spec = load_spec(
        {
            "task": "binary",
            "classes": [0, 1],
            "features": [{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical"}],
        }
    )
    rng = np.random.default_rng(7)
    n = 60
    frame = pd.DataFrame(
        {
            "x": rng.integers(0, 10, n),  # int column for a numeric feature
            "c": pd.array(rng.integers(1, 4, n).astype(float), dtype="Float64"),
            "prediction": rng.integers(0, 2, n),
            "label": rng.integers(0, 2, n).astype(float),
        }
    )
    frame.loc[3, "c"] = pd.NA
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    reference = load_reference(spec, data=buffer.getvalue())
    assert reference.features["x"].dtype == np.float64
    assert reference.features["c"][3] is None
    assert set(reference.features["c"]) - {None} <= {"1", "2", "3"}
    assert set(reference.labels) <= {"0", "1"} and set(reference.predictions) <= {"0", "1"}
    assert reference.scores is None  # no score column and none named


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _ref_error(frame_or_bytes: pd.DataFrame | bytes, spec: ModelSpec | None = None) -> SpecError:
    spec = spec or load_spec(EXAMPLES / "binary-spec.yaml")
    data = frame_or_bytes if isinstance(frame_or_bytes, bytes) else _csv(frame_or_bytes)
    with pytest.raises(SpecError) as info:
        load_reference(spec, data=data)
    return info.value


def test_missing_columns_are_named() -> None:
    frame = _binary_frame().drop(columns=["mean_area", "label"])
    error = _ref_error(frame)
    assert error.problems == (
        ("features[3]", "column 'mean_area' not found in binary-reference.csv"),
        ("reference.label", "column 'label' not found in binary-reference.csv"),
    )


def test_named_score_column_must_exist() -> None:
    error = _ref_error(_binary_frame().drop(columns=["score"]))
    assert error.problems == (
        ("reference.score", "column 'score' not found in binary-reference.csv"),
    )


def test_non_numeric_values_name_column_and_row() -> None:
    frame = _binary_frame()
    frame["mean_texture"] = frame["mean_texture"].astype(object)
    frame.loc[4, "mean_texture"] = "n/a"
    frame.loc[9, "mean_texture"] = "abc"
    error = _ref_error(frame)
    assert error.path == "features[1]"
    assert str(error) == (
        "features[1]: binary-reference.csv column 'mean_texture': expected numbers; "
        "2 rows, first row 5 is 'n/a'"
    )


def test_missing_and_nan_numeric_values_are_allowed() -> None:
    frame = _binary_frame()
    frame["mean_texture"] = frame["mean_texture"].astype(object)
    frame.loc[0, "mean_texture"] = None
    frame.loc[1, "mean_texture"] = "NaN"
    reference = load_reference(load_spec(EXAMPLES / "binary-spec.yaml"), data=_csv(frame))
    assert np.isnan(reference.features["mean_texture"][:2]).all()


def test_infinite_and_all_missing_numeric_columns() -> None:
    frame = _binary_frame()
    frame.loc[2, "mean_radius"] = np.inf
    frame["mean_area"] = np.nan
    error = _ref_error(frame)
    assert [p for p, _ in error.problems] == ["features[0]", "features[3]"]
    assert "row 3 is infinite" in error.problems[0][1]
    assert "has no values" in error.problems[1][1]


def test_labels_and_predictions_must_be_classes() -> None:
    frame = _binary_frame()
    frame.loc[7, "label"] = "cancer"
    frame.loc[8, "prediction"] = None
    error = _ref_error(frame)
    assert error.problems == (
        ("reference.prediction", "binary-reference.csv column 'prediction': row 9 is empty"),
        (
            "reference.label",
            "binary-reference.csv column 'label': row 8 is 'cancer', not one of the classes "
            "['benign', 'malignant']",
        ),
    )


def test_regression_outputs_must_be_numbers() -> None:
    spec = load_spec(EXAMPLES / "regression-spec.yaml")
    frame = pd.read_csv(EXAMPLES / "regression-reference.csv")
    frame["label"] = frame["label"].astype(object)
    frame.loc[0, "label"] = "high"
    frame.loc[1, "prediction"] = np.nan
    error = _ref_error(frame, spec)
    assert [p for p, _ in error.problems] == ["reference.prediction", "reference.label"]
    assert "row 2 is empty" in error.problems[0][1]
    assert "row 1 is 'high'" in error.problems[1][1]


def test_scores_must_be_probabilities() -> None:
    frame = _binary_frame()
    frame.loc[0, "score"] = 1.5
    frame.loc[1, "score"] = np.nan
    error = _ref_error(frame)
    assert [p for p, _ in error.problems] == ["reference.score", "reference.score"]
    assert "row 2 is empty" in error.problems[0][1]
    assert "row 1 is outside [0, 1]" in error.problems[1][1]


def test_probability_rows_must_sum_to_one() -> None:
    spec = load_spec(EXAMPLES / "multiclass-spec.yaml")
    frame = pd.read_csv(EXAMPLES / "multiclass-reference.csv")
    frame.loc[5, "p_class_0"] = 0.9
    frame.loc[5, "p_class_1"] = 0.9
    error = _ref_error(frame, spec)
    assert error.path == "reference.probabilities"
    assert "row 6 sums to" in str(error)


def test_binary_score_from_the_positive_probability_column() -> None:
    frame = _binary_frame().drop(columns=["score"])
    frame["p_malignant"] = _binary_frame()["score"]
    frame["p_benign"] = 1 - frame["p_malignant"]
    data = yaml.safe_load((EXAMPLES / "binary-spec.yaml").read_text())
    data["reference"] = {"probabilities": ["p_benign", "p_malignant"]}
    reference = load_reference(load_spec(data), data=_csv(frame))
    assert reference.scores is not None
    np.testing.assert_allclose(reference.scores, _binary_frame()["score"].to_numpy())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty; expected a CSV with a header row"),
        (b"mean_radius,label\n", "column 'mean_texture' not found"),
        (b"PAR1 not really", "not a readable Parquet file"),
    ],
)
def test_broken_files(data: bytes, message: str) -> None:
    error = _ref_error(data)
    assert message in str(error)


def test_empty_and_short_references() -> None:
    frame = _binary_frame()
    assert "has no rows" in str(_ref_error(frame.iloc[:0]))
    short = _ref_error(frame.iloc[: MIN_REFERENCE_ROWS - 1])
    assert short.path == "reference"
    assert f"has {MIN_REFERENCE_ROWS - 1} rows; at least {MIN_REFERENCE_ROWS}" in str(short)


def test_reference_path_problems(tmp_path: Path) -> None:
    spec = load_spec({"task": "regression", "features": [{"name": "x", "type": "numeric"}]})
    with pytest.raises(SpecError, match="no reference data") as info:
        load_reference(spec)
    assert info.value.path == "reference.path"
    spec = load_spec(
        {
            "task": "regression",
            "features": [{"name": "x", "type": "numeric"}],
            "reference": {"path": "../r.csv"},
        },
        base_dir=tmp_path / "specs",
    )
    with pytest.raises(SpecError, match="cannot read"):
        load_reference(spec)
    with pytest.raises(SpecError, match="must be inside"):
        load_reference(spec, confine=True)


# --------------------------------------------------------------------------- check-spec


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    spec_cli.configure(parser)
    return spec_cli.run(parser.parse_args(list(argv)))


@pytest.mark.parametrize("example", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_check_spec_accepts_the_examples(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(str(example)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{example}: OK\n")
    assert "rows" in out


def test_check_spec_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(str(EXAMPLES / "binary-spec.yaml")) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [
        "  task        binary, classes 'benign', 'malignant' (positive 'malignant')",
        "  features    10 (10 numeric, 0 categorical)",
        "  reference   binary-reference.csv: 228 rows",
        "  window      5m in 30 buckets of 10s; min_samples 100",
        "  performance 5m in 30 buckets of 10s (realized figures, by label arrival)",
        "  thresholds  accuracy_warning=0.9, accuracy_critical=0.8, latency_p95_seconds=0.25",
    ]


def test_check_spec_json_and_no_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(str(EXAMPLES / "regression-spec.yaml"), "--json", "--no-reference") == 0
    printed = json.loads(capsys.readouterr().out)
    assert load_spec(printed) == load_spec(EXAMPLES / "regression-spec.yaml")


def test_check_spec_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(features__1__type="float", min_samples=0)))
    assert _run_cli(str(path)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: 2 problem(s)"
    assert err[1] == "  features[1].type: expected 'numeric' or 'categorical', got 'float'"
    assert err[2].startswith("  min_samples: expected a whole number from 1")


def test_check_spec_with_other_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "short.csv"
    _binary_frame().iloc[:10].to_csv(bad, index=False)
    assert _run_cli(str(EXAMPLES / "binary-spec.yaml"), "--reference", str(bad)) == 1
    assert "has 10 rows" in capsys.readouterr().err
    assert _run_cli(str(EXAMPLES / "binary-spec.yaml"), "--reference", str(tmp_path / "nope")) == 1
    assert "cannot read" in capsys.readouterr().err
    good = tmp_path / "other.parquet"
    _binary_frame().to_parquet(good)
    assert _run_cli(str(EXAMPLES / "binary-spec.yaml"), "--reference", str(good)) == 0
    assert f"  reference   {good}: 228 rows" in capsys.readouterr().out.splitlines()


def test_check_spec_without_a_reference_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(
        json.dumps({"task": "regression", "features": [{"name": "x", "type": "numeric"}]})
    )
    assert _run_cli(str(path)) == 1
    assert "reference.path: not set" in capsys.readouterr().err
    assert _run_cli(str(path), "--no-reference") == 0


@pytest.mark.parametrize(
    "text",
    [
        "min_samples: " + "1" * 5000,  # beyond Python's int-to-str digit limit
        '{"min_samples": ' + "1" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,  # nesting deeper than the recursion limit
    ],
    ids=["yaml-digits", "json-digits", "deep-nesting"],
)
def test_hostile_documents_give_a_spec_error(text: str) -> None:
    with pytest.raises(SpecError, match="not a usable") as info:
        load_spec(text)
    assert info.value.path == "spec"


def test_huge_numbers_are_rejected_by_field() -> None:
    huge = 10**400
    data = _with(min_samples=huge, window__length=huge, thresholds__memory_bytes=huge)
    data["features"][0]["range"] = [0, huge]
    with pytest.raises(SpecError) as info:
        load_spec(data)
    assert [p for p, _ in info.value.problems] == [
        "features[0].range",
        "window.length",
        "min_samples",
        "thresholds.memory_bytes",
    ]
    assert "a number too large" in str(info.value)
    assert len(str(info.value)) < 1000


# --------------------------------------------------------------------------- segments


def test_segments_parse_round_trip_and_reach_the_monitor_config() -> None:
    doc = base() | {"segments": ["station"]}
    spec = load_spec(json.dumps(doc))
    assert spec.segments == ("station",)
    assert spec.monitor_config().segments == ("station",)
    assert load_spec(json.dumps(spec.to_dict())) == spec
    assert "segments" not in load_spec(json.dumps(base())).to_dict()  # as before segments


@pytest.mark.parametrize(
    ("segments", "path", "message"),
    [
        ("station", "segments", "expected a list of 1 to 3"),
        ([], "segments", "expected a list of 1 to 3"),
        (["a", "b", "c", "d"], "segments", "expected a list of 1 to 3"),
        (["temperature"], "segments[0]", "categorical feature ['station']"),
        (["nope"], "segments[0]", "categorical feature"),
        (["station", "station"], "segments[1]", "duplicate segment 'station'"),
    ],
)
def test_bad_segments_name_their_field(segments: Any, path: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(json.dumps(base() | {"segments": segments}))
    assert [p for p, _ in info.value.problems] == [path]
    assert message in info.value.problems[0][1]


def test_a_segment_has_at_most_20_values_from_spec_or_reference() -> None:
    from modelmeter.engine.segments import MAX_SEGMENT_VALUES, MAX_SEGMENTS
    from modelmeter.spec import MAX_SEGMENT_VALUES as SPEC_VALUES
    from modelmeter.spec import MAX_SEGMENTS as SPEC_SEGMENTS

    assert (SPEC_VALUES, SPEC_SEGMENTS) == (MAX_SEGMENT_VALUES, MAX_SEGMENTS) == (20, 3)
    doc = base() | {"segments": ["station"]}
    doc["features"][1]["categories"] = [f"s{i}" for i in range(21)]
    with pytest.raises(SpecError) as info:
        load_spec(json.dumps(doc))
    assert info.value.problems[0][0] == "segments[0]"
    assert "21 categories" in info.value.problems[0][1]
    # without categories, the reference's distinct values are counted
    doc = base() | {"segments": ["station"]}
    del doc["features"][1]["categories"]
    spec = load_spec(json.dumps(doc))
    rows = 60
    frame = pd.DataFrame(
        {
            "temperature": np.linspace(-10, 10, rows),
            "station": [f"s{i % 25}" for i in range(rows)],
            "prediction": ["0", "1"] * (rows // 2),
            "label": ["1", "0"] * (rows // 2),
        }
    )
    error = _ref_error(frame, spec)
    assert error.problems[0][0] == "segments[0]"
    assert "25 distinct values" in error.problems[0][1]
    frame["station"] = [f"s{i % 20}" for i in range(rows)]
    reference = load_reference(spec, data=_csv(frame))
    monitor = ModelMonitor(spec.monitor_config(), reference)
    assert monitor.segment_codes({"station": np.array(["s3", "zz"], dtype=object)}).tolist() == [
        [13],  # sorted vocabulary: s0, s1, s10, ..., s19, s2, s3
        [20],  # other
    ]


@pytest.mark.parametrize(
    ("window", "bucket"), [("10m", 15.0), ("30m", 40.0), ("1h30m", 120.0), ("25h", 1875.0)]
)
def test_the_default_performance_bucket_divides_the_performance_window(
    window: str, bucket: float
) -> None:
    spec = load_spec(json.dumps(_with(performance=window)).encode())
    assert spec.performance_bucket_seconds == bucket
    assert spec.performance_window_seconds % bucket == 0
    assert spec.performance_window_seconds / bucket <= 48
