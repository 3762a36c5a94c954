"""Reference data: the CSV or Parquet file a spec names, read and checked for the engine.

:func:`read_reference_frame` reads the columns the spec needs (the format is taken from the
content); :func:`load_reference` checks every value and returns the engine's
``ReferenceData``. A ``reference.path`` from a request is confined to its folder by
:func:`modelmeter.paths.confine`. Every problem is a :class:`~modelmeter.spec.SpecError`
naming the field path of the column (``features[3]``, ``reference.label``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelmeter.spec.errors import SpecError, show
from modelmeter.spec.fields import MAX_SEGMENT_VALUES, MIN_REFERENCE_ROWS
from modelmeter.spec.model import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from modelmeter.engine import ReferenceData

__all__ = ["load_reference", "read_reference_frame"]

_PROBABILITY_SUM_TOLERANCE = 0.01


class _Found:
    """Collects ``(path, message)`` pairs while the reference data is checked."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def _class_str(value: Any) -> str:
    """A reference value as a class or category string: whole floats (from a column that
    pandas widened to float) lose their ``.0``; everything else is ``str(value)``, as the
    collector does for JSON values."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _resolve_reference_path(
    spec: ModelSpec, base_dir: str | os.PathLike[str] | None, confine: bool
) -> Path:
    if spec.reference.path is None:
        raise SpecError(
            [("reference.path", "no reference data: set reference.path or upload the file")]
        )
    base = Path(base_dir) if base_dir is not None else spec.base_dir
    path = Path(spec.reference.path)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if confine:  # the collector's confinement rule
        from modelmeter.paths import confine as confined

        root = (base or Path.cwd()).resolve()
        inside = confined(root, path)
        if inside is None:
            raise SpecError(
                [
                    (
                        "reference.path",
                        f"must be inside {str(root)!r} and exist; upload the file instead",
                    )
                ]
            )
        return inside
    return path


def read_reference_frame(
    spec: ModelSpec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    data: bytes | None = None,
    confine: bool = False,
) -> tuple[pd.DataFrame, str]:
    """Read the reference file into a DataFrame of the columns the spec needs.

    Returns ``(frame, name)`` where ``name`` is what error messages call the file.
    The format is detected from the content: Parquet (``PAR1`` magic), else CSV (gzip
    allowed). Columns are read as text (CSV) so that values are checked, not guessed.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if data is None:
        path = _resolve_reference_path(spec, base_dir, confine)
        name = spec.reference.path or str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SpecError(
                [("reference.path", f"cannot read {str(path)!r}: {exc.strerror}")]
            ) from None
    else:
        name = spec.reference.path or "the uploaded reference"
    wanted = set(_reference_columns(spec))
    if data[:4] == b"PAR1":
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            present = [c for c in parquet.schema_arrow.names if c in wanted]
            frame = parquet.read(columns=present).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise SpecError(
                [("reference.path", f"{name}: not a readable Parquet file: {exc}")]
            ) from None
    else:
        compression: Literal["gzip"] | None = "gzip" if data[:2] == b"\x1f\x8b" else None
        try:
            frame = pd.read_csv(
                io.BytesIO(data),
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                usecols=lambda c: c in wanted,
                compression=compression,
            )
        except pd.errors.EmptyDataError:
            raise SpecError(
                [("reference.path", f"{name} is empty; expected a CSV with a header row")]
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
            raise SpecError(
                [("reference.path", f"{name}: not a readable CSV file: {exc}")]
            ) from None
    return frame, name


def _reference_columns(spec: ModelSpec) -> Iterator[str]:
    yield from spec.feature_names
    ref = spec.reference
    yield ref.prediction
    yield ref.label
    if spec.task == "binary":
        yield ref.score or "score"
    if spec.task != "regression":
        yield from ref.probabilities or [f"p_{c}" for c in spec.classes]


def load_reference(
    spec: ModelSpec,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    data: bytes | None = None,
    confine: bool = False,
) -> ReferenceData:
    """Read and validate the spec's reference data into the engine's ``ReferenceData``.

    Parameters
    ----------
    spec
        A spec from :func:`load_spec`.
    base_dir
        Folder for a relative ``reference.path`` (default: ``spec.base_dir``, else the
        working directory).
    data
        The bytes of an uploaded CSV or Parquet file; ``reference.path`` is then ignored.
    confine
        Refuse a ``reference.path`` outside ``base_dir`` (use it for paths from a request).

    Raises :class:`SpecError` naming each missing column, non-numeric value, unknown class,
    bad probability row, and an empty or too short reference.
    """
    from modelmeter.engine import ReferenceData

    frame, name = read_reference_frame(spec, base_dir=base_dir, data=data, confine=confine)
    arrays = _validate_reference(spec, frame, name)
    return ReferenceData(
        features=arrays.features,
        predictions=arrays.predictions,
        labels=arrays.labels,
        scores=arrays.scores,
    )


@dataclass(frozen=True)
class _ReferenceArrays:
    features: Mapping[str, np.ndarray]
    predictions: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None


def _rows(mask: np.ndarray) -> str:
    """'row 5' / '3 rows, first row 5' for a boolean mask (1-based data rows)."""
    bad = np.flatnonzero(mask)
    first = int(bad[0]) + 1
    return f"row {first}" if len(bad) == 1 else f"{len(bad)} rows, first row {first}"


def _numeric(series: pd.Series, what: str, path: str, problems: _Found) -> np.ndarray:
    """float64 values of a column; NaN for missing. Non-numbers and infinities are problems."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        problems.add(path, f"{what}: expected numbers, got true/false values")
        return np.full(len(series), np.nan)
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        missing = series.isna().to_numpy()
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text = series.astype(object)
        nan_words = text.map(lambda v: isinstance(v, str) and v.strip().lower() == "nan")
        bad = np.isnan(values) & ~missing & ~nan_words.to_numpy(dtype=bool)
        if bad.any():
            first = text.iloc[int(np.flatnonzero(bad)[0])]
            problems.add(path, f"{what}: expected numbers; {_rows(bad)} is {show(first)}")
    infinite = np.isinf(values)
    if infinite.any():
        problems.add(path, f"{what}: {_rows(infinite)} is infinite; use a finite number or empty")
    return values


def _strings(series: pd.Series) -> np.ndarray:
    """An object array of str (ints and whole floats without '.0'), None for missing."""
    missing = series.isna().to_numpy(dtype=bool)
    out = np.empty(len(series), dtype=object)
    for i, value in enumerate(series.astype(object).tolist()):
        if missing[i]:
            out[i] = None
        elif isinstance(value, np.generic):
            out[i] = _class_str(value.item())
        else:
            out[i] = _class_str(value)
    return out


def _validate_reference(spec: ModelSpec, frame: pd.DataFrame, name: str) -> _ReferenceArrays:
    problems = _Found()
    ref = spec.reference
    columns = set(frame.columns)
    named = [(f"features[{i}]", f.name) for i, f in enumerate(spec.features)]
    named += [("reference.prediction", ref.prediction), ("reference.label", ref.label)]
    if ref.score is not None:
        named.append(("reference.score", ref.score))
    named += [(f"reference.probabilities[{i}]", c) for i, c in enumerate(ref.probabilities or ())]
    for path, column in named:
        if column not in columns:
            problems.add(path, f"column {column!r} not found in {name}")
    problems.raise_if_any()
    n = len(frame)
    if n == 0:
        raise SpecError(
            [("reference", f"{name} has no rows; it needs at least {MIN_REFERENCE_ROWS}")]
        )
    if n < MIN_REFERENCE_ROWS:
        raise SpecError(
            [
                (
                    "reference",
                    f"{name} has {n} rows; at least {MIN_REFERENCE_ROWS} are needed to fit "
                    "drift bins and the calibrator",
                )
            ]
        )

    features: dict[str, np.ndarray] = {}
    for i, feature in enumerate(spec.features):
        series = frame[feature.name]
        path = f"features[{i}]"
        what = f"{name} column {feature.name!r}"
        if feature.kind == "numeric":
            values = _numeric(series, what, path, problems)
            if np.isnan(values).all():
                problems.add(path, f"{what} has no values; drift bins need some")
        else:
            values = _strings(series)
            if feature.name in spec.segments and feature.categories is None:
                seen = {v for v in values.tolist() if v is not None}
                if len(seen) > MAX_SEGMENT_VALUES:
                    problems.add(
                        f"segments[{spec.segments.index(feature.name)}]",
                        f"{what} has {len(seen)} distinct values; a segment may have at most "
                        f"{MAX_SEGMENT_VALUES}: set the feature's categories (other values "
                        "count under 'other') or choose another feature",
                    )
        features[feature.name] = values

    outputs = {}
    for key in ("prediction", "label"):
        column = getattr(ref, key)
        what = f"{name} column {column!r}"
        path = f"reference.{key}"
        if spec.task == "regression":
            values = _numeric(frame[column], what, path, problems)
            empty = frame[column].isna().to_numpy(dtype=bool)
            if empty.any():
                problems.add(path, f"{what}: {_rows(empty)} is empty")
        else:
            values = _strings(frame[column])
            empty = np.array([v is None for v in values], dtype=bool)
            known = set(spec.classes)
            unknown = np.array([v is not None and v not in known for v in values], dtype=bool)
            if empty.any():
                problems.add(path, f"{what}: {_rows(empty)} is empty")
            if unknown.any():
                first = values[int(np.flatnonzero(unknown)[0])]
                problems.add(
                    path,
                    f"{what}: {_rows(unknown)} is {show(first)}, not one of the classes "
                    f"{list(spec.classes)}",
                )
        outputs[key] = values

    scores = _reference_scores(spec, frame, name, problems)
    problems.raise_if_any()
    return _ReferenceArrays(features, outputs["prediction"], outputs["label"], scores)


def _reference_scores(
    spec: ModelSpec, frame: pd.DataFrame, name: str, problems: _Found
) -> np.ndarray | None:
    """Binary: P(positive) from the score column (or the positive class's probability
    column); multiclass: the (n, k) probability matrix. ``None`` when the spec names no
    such columns and the default ones are absent (estimation is then off)."""
    ref = spec.reference
    if spec.task == "regression":
        return None
    columns = set(frame.columns)
    if spec.task == "binary":
        score_column = ref.score or "score"
        if ref.score is not None or (ref.probabilities is None and score_column in columns):
            what = f"{name} column {score_column!r}"
            return _probability(frame[score_column], what, "reference.score", problems)
    prob_columns = ref.probabilities or tuple(f"p_{c}" for c in spec.classes)
    if not all(c in columns for c in prob_columns):
        return None
    matrix = np.column_stack(
        [
            _probability(
                frame[c], f"{name} column {c!r}", f"reference.probabilities[{i}]", problems
            )
            for i, c in enumerate(prob_columns)
        ]
    )
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > _PROBABILITY_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        problems.add(
            "reference.probabilities",
            f"{name}: probabilities must sum to 1 per row; {_rows(off)} sums to {sums[row]:.4g}",
        )
    if spec.task == "binary":
        assert spec.positive_class is not None
        return np.ascontiguousarray(matrix[:, spec.classes.index(spec.positive_class)])
    return matrix


def _probability(series: pd.Series, what: str, path: str, problems: _Found) -> np.ndarray:
    values = _numeric(series, what, path, problems)
    empty = series.isna().to_numpy(dtype=bool)
    if empty.any():
        problems.add(path, f"{what}: {_rows(empty)} is empty; every reference row needs a score")
    outside = (values < 0) | (values > 1)
    if outside.any():
        problems.add(path, f"{what}: {_rows(outside)} is outside [0, 1]")
    return values
