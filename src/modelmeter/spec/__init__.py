"""Model specs: what a monitored model looks like, loaded from YAML or JSON.

A spec names the task, the classes, each feature with its type and expected range or
categories, the reference data (CSV or Parquet), the window and the alert thresholds.
:func:`load_spec` parses and validates it into a frozen :class:`ModelSpec`;
:func:`load_reference` reads and validates the reference data into the engine's
``ReferenceData``. Every problem is reported at once in one :class:`SpecError` whose
message names the field path (``features[3].type``) and what was expected.

The document is described once, by the pydantic models of :mod:`modelmeter.spec.schema`
(:class:`SpecDocument`): they validate it and give the HTTP API its JSON Schema.

==========================  ===============================================================
:mod:`~.schema`             the document models, :data:`DEFAULT_THRESHOLDS`
:mod:`~.fields`             value types (durations, names, numbers) and their limits
:mod:`~.checks`             checks across fields (classes and task, window, segments...)
:mod:`~.errors`             :class:`SpecError`, pydantic errors as ``(path, message)`` pairs
:mod:`~.model`              the validated :class:`ModelSpec`, :class:`Feature`...
:mod:`~.load`               :func:`load_spec`: text, file or mapping -> :class:`ModelSpec`
:mod:`~.reference`          :func:`load_reference`: CSV/Parquet -> ``ReferenceData``
==========================  ===============================================================

Example:

>>> spec = load_spec('''
... task: binary
... classes: [0, 1]
... positive_class: 1
... features:
...   - {name: age, type: numeric, range: [0, 120]}
...   - {name: station, type: categorical, categories: [a, b]}
... window: {length: 5m, bucket: 10s}
... thresholds: {accuracy_warning: 0.9}
... ''')
>>> spec.classes, spec.positive_class, spec.window_seconds, spec.bucket_seconds
(('0', '1'), '1', 300.0, 10.0)
>>> spec.thresholds["accuracy_warning"], spec.thresholds["accuracy_critical"]
(0.9, 0.7)
>>> load_spec("task: binary\\nclasses: [0, 1]\\nfeatures: [{name: x, type: float}]")
Traceback (most recent call last):
...
modelmeter.spec.SpecError: features[0].type: expected 'numeric' or 'categorical', got 'float'
"""

from __future__ import annotations

from modelmeter.spec.errors import SpecError
from modelmeter.spec.fields import (
    MAX_BUCKETS,
    MAX_CLASSES,
    MAX_FEATURES,
    MAX_SEGMENT_VALUES,
    MAX_SEGMENTS,
    MIN_REFERENCE_ROWS,
)
from modelmeter.spec.load import load_spec
from modelmeter.spec.model import Feature, ModelSpec, ReferenceColumns
from modelmeter.spec.reference import load_reference, read_reference_frame
from modelmeter.spec.schema import DEFAULT_THRESHOLDS, SpecDocument

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_BUCKETS",
    "MAX_CLASSES",
    "MAX_FEATURES",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_VALUES",
    "MIN_REFERENCE_ROWS",
    "Feature",
    "ModelSpec",
    "ReferenceColumns",
    "SpecDocument",
    "SpecError",
    "load_reference",
    "load_spec",
    "read_reference_frame",
]
