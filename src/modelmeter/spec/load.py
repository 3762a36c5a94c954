"""Reading a spec: YAML or JSON text, a file or a mapping, into a :class:`ModelSpec`.

``SpecDocument`` validates it; :func:`to_spec` fills in the defaults.

>>> load_spec("task: regression\\nfeatures: [{name: x, type: numeric}]\\nwindow: 1h").window_seconds
3600.0
>>> load_spec("task: [binary")
Traceback (most recent call last):
...
modelmeter.spec.SpecError: spec: not valid YAML or JSON: expected ',' or ']', but got ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import ValidationError

from modelmeter.spec.errors import SpecError, show, spec_error
from modelmeter.spec.model import Feature, ModelSpec, ReferenceColumns
from modelmeter.spec.schema import (
    DriftDocument,
    MultivariateDocument,
    SpecDocument,
    Thresholds,
    WindowDocument,
)

__all__ = ["build_spec", "load_spec"]


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_document(source: str | bytes) -> Any:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [("spec", f"not UTF-8 text (byte {exc.start}); save it as UTF-8")]
            ) from None
    text = source.lstrip("\ufeff")
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                [("spec", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
            ) from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit number, deep nesting
            raise SpecError([("spec", f"not a usable JSON document: {_short(exc)}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1} column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise SpecError([("spec", f"not valid YAML or JSON: {problem}{where}")]) from None
    except (ValueError, RecursionError) as exc:
        raise SpecError([("spec", f"not a usable YAML document: {_short(exc)}")]) from None


def load_spec(
    source: str | bytes | os.PathLike[str] | Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> ModelSpec:
    """Parse and validate a model spec.

    Parameters
    ----------
    source
        The spec: YAML or JSON text (``str`` or ``bytes``), a path to a spec file
        (``pathlib.Path``; ``str`` is always text), or an already parsed mapping.
    base_dir
        The folder a relative ``reference.path`` is resolved against; defaults to the
        spec file's folder when ``source`` is a path.

    Raises :class:`SpecError` naming every bad field. The reference data is not read
    here: see :func:`load_reference`.

    >>> load_spec('{"task": "regression", "features": [{"name": "x", "type": "numeric"}]}').task
    'regression'
    """
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SpecError([("spec", f"cannot read {str(path)!r}: {exc.strerror}")]) from None
        document = _parse_document(data)
        if base_dir is None:
            base_dir = path.parent
    elif isinstance(source, Mapping):
        document = source
    else:
        document = _parse_document(source)
    spec = build_spec(document)
    if base_dir is not None:
        object.__setattr__(spec, "base_dir", Path(base_dir))
    return spec


def build_spec(document: Any) -> ModelSpec:
    """Validate a parsed document (a mapping) into a :class:`ModelSpec`."""
    if document is None:
        raise SpecError([("spec", "empty document; expected a mapping with task and features")])
    if not isinstance(document, Mapping):
        raise SpecError(
            [("spec", f"expected a mapping with task and features; got {show(document)}")]
        )
    try:
        doc = SpecDocument.model_validate(dict(document))
    except ValidationError as exc:
        raise spec_error(exc, SpecDocument) from None
    return to_spec(doc)


def to_spec(doc: SpecDocument) -> ModelSpec:
    """The :class:`ModelSpec` of a valid document: defaults filled in, values normalized."""
    classes = tuple(doc.classes or ()) if doc.task != "regression" else ()
    positive = (doc.positive_class or classes[1]) if doc.task == "binary" else None
    ref = doc.reference
    window = doc.window or WindowDocument()
    drift = doc.drift or DriftDocument()
    multivariate = drift.multivariate
    settings = multivariate or MultivariateDocument()
    thresholds = doc.thresholds or Thresholds()
    return ModelSpec(
        task=doc.task,
        features=tuple(
            Feature(
                f.name,
                f.type,
                f.range[0] if f.range else None,
                f.range[1] if f.range else None,
                tuple(f.categories) if f.categories is not None else None,
            )
            for f in doc.features
        ),
        classes=classes,
        positive_class=positive,
        reference=ReferenceColumns()
        if ref is None
        else ReferenceColumns(
            path=ref.path,
            prediction=ref.prediction,
            label=ref.label,
            score=ref.score,
            probabilities=tuple(ref.probabilities) if ref.probabilities is not None else None,
        ),
        window_seconds=window.length,
        bucket_seconds=window.bucket,
        min_samples=doc.min_samples,
        drift_bins=drift.bins,
        drift_fdr=drift.fdr,
        multivariate=multivariate is not None,
        multivariate_variance=settings.variance,
        multivariate_z=settings.z,
        segments=tuple(doc.segments or ()),
        thresholds=MappingProxyType(thresholds.model_dump()),
        performance_window=doc.performance.window if doc.performance else None,
        performance_bucket=doc.performance.bucket if doc.performance else None,
    )
