"""The streaming engine: pure numpy/scipy statistics over a sliding window, no I/O, no clock.

>>> from modelmeter.engine import FeatureSpec, MonitorConfig
>>> MonitorConfig(task="regression", features=(FeatureSpec("x", "numeric"),)).n_buckets
30
"""

from modelmeter.engine.batch import LabelBatch, PredictionBatch
from modelmeter.engine.checks import CheckedLabels, CheckedPredictions
from modelmeter.engine.config import FeatureSpec, MonitorConfig, MultivariateConfig, ReferenceData
from modelmeter.engine.drift import PSI_EPSILON
from modelmeter.engine.monitor import ModelMonitor, StateTooLarge
from modelmeter.engine.operations import LABEL_DELAY_BOUNDS, LATENCY_BOUNDS
from modelmeter.engine.quality import ISSUES
from modelmeter.engine.shift import ShiftFit, ShiftSettings
from modelmeter.engine.snapshot import (
    ClassFigures,
    ClassificationFigures,
    DriftFigures,
    Histogram,
    MultivariateFigures,
    RegressionFigures,
    SegmentFigures,
    Snapshot,
)
from modelmeter.engine.windows import BucketRing

__all__ = [
    "ISSUES",
    "LABEL_DELAY_BOUNDS",
    "LATENCY_BOUNDS",
    "PSI_EPSILON",
    "BucketRing",
    "CheckedLabels",
    "CheckedPredictions",
    "ClassFigures",
    "ClassificationFigures",
    "DriftFigures",
    "FeatureSpec",
    "Histogram",
    "LabelBatch",
    "ModelMonitor",
    "MonitorConfig",
    "MultivariateConfig",
    "MultivariateFigures",
    "PredictionBatch",
    "ReferenceData",
    "RegressionFigures",
    "SegmentFigures",
    "ShiftFit",
    "ShiftSettings",
    "Snapshot",
    "StateTooLarge",
]
