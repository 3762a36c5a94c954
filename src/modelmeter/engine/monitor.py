"""ModelMonitor: one model version's sliding-window and cumulative statistics.

The monitor composes the engine's parts and counts the operations (predictions, errors,
labels, latency, label delay) itself:

* :class:`~modelmeter.engine.checks.BatchChecker`: validation of every batch;
* :class:`~modelmeter.engine.features.Features`: feature drift and data quality;
* :class:`~modelmeter.engine.output.ModelOutput`: prediction drift, estimated, realized and
  reference performance;
* :class:`~modelmeter.engine.multivariate.ReconstructionDrift`: multivariate drift;
* :class:`~modelmeter.engine.loss.LossEstimator`: estimated regression performance (DLE);
* :class:`~modelmeter.engine.segments.Segments`: figures per segment value;
* :class:`~modelmeter.engine.state.MonitorState`: the counts and their checkpoint.

Realized performance has a window of its own, the performance window
(``MonitorConfig.performance_window_seconds``, the window's length unless set): labels count
in the bucket of their arrival, so a longer one gives figures between the batches of labels
that come once a day. Everything else uses the window.

Estimated performance (CBPE, classification with reference scores) comes with a confidence
band (:mod:`modelmeter.engine.bands`), and its calibration can be swapped for a shift-aware
one (:mod:`modelmeter.engine.shift`): :meth:`ModelMonitor.shift_fit` fits it (pure, off the
lock), :meth:`ModelMonitor.use_calibration` puts it in use (under the lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from modelmeter.engine.batch import LabelBatch, PredictionBatch
from modelmeter.engine.checks import BatchChecker, CheckedLabels, CheckedPredictions, ClassCodes
from modelmeter.engine.config import MonitorConfig, ReferenceData
from modelmeter.engine.drift import benjamini_hochberg
from modelmeter.engine.features import Features
from modelmeter.engine.loss import LossEstimator
from modelmeter.engine.multivariate import STATISTIC, ReconstructionDrift
from modelmeter.engine.output import ModelOutput
from modelmeter.engine.segments import Segments
from modelmeter.engine.shift import ShiftFit, ShiftSettings, fit_shift_aware
from modelmeter.engine.snapshot import DriftFigures, Snapshot
from modelmeter.engine.state import MonitorState, StateTooLarge

__all__ = ["ModelMonitor", "StateTooLarge"]

NAN = float("nan")

# Operations counters: [predictions, errors, labeled (by prediction time), labels (by arrival)]
PREDICTIONS, ERRORS, LABELED, LABELS = 0, 1, 2, 3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ModelMonitor:
    """Streaming monitor of one model version: performance, drift, quality, operations.

    Feed it prediction batches with :meth:`observe` and label batches with :meth:`label`;
    read everything with :meth:`snapshot`. State is additive counts in a ring of time buckets
    plus cumulative totals; :meth:`to_checkpoint` saves it as plain JSON-able data.

    Not thread-safe: callers serialise calls (the collector holds a lock per monitor).

    ``observe`` and ``label`` take an optional ``now`` (Unix seconds): the newest bucket moves
    to it and later timestamps are counted in that bucket. Without ``now`` the newest bucket
    moves to the batch's latest timestamp, so a caller with a clock (the collector) should
    pass it, or a far-future timestamp would expire the window.

    Examples
    --------
    >>> import numpy as np
    >>> from modelmeter.engine import (
    ...     FeatureSpec, LabelBatch, ModelMonitor, MonitorConfig, PredictionBatch, ReferenceData)
    >>> rng = np.random.default_rng(7)
    >>> config = MonitorConfig(task="binary", classes=("no", "yes"),
    ...                        features=(FeatureSpec("x", "numeric"),), min_samples=50)
    >>> x = rng.normal(size=2000)
    >>> score = 1 / (1 + np.exp(-3 * x))
    >>> label = np.where(rng.random(2000) < score, "yes", "no").astype(object)
    >>> prediction = np.where(score > 0.5, "yes", "no").astype(object)
    >>> monitor = ModelMonitor(config, ReferenceData({"x": x}, prediction, label, score))
    >>> t = np.full(500, 1_000.0)
    >>> xs = rng.normal(1.0, 1.0, size=500)  # the inputs drift
    >>> ps = 1 / (1 + np.exp(-3 * xs))
    >>> predicted = np.where(ps > 0.5, "yes", "no").astype(object)
    >>> monitor.observe(PredictionBatch(t, {"x": xs}, predicted, scores=ps))
    >>> actual = np.where(rng.random(500) < ps, "yes", "no").astype(object)
    >>> monitor.label(LabelBatch(t + 5, t, predicted, actual))
    >>> snap = monitor.snapshot(now=1_010.0)
    >>> snap.window_predictions, snap.window_labeled, snap.label_coverage
    (500, 500, 1.0)
    >>> snap.drift["x"].drifted, snap.drift_detected
    (True, True)
    >>> abs(snap.estimated.accuracy - snap.realized.accuracy) < 0.05
    True

    Realized performance covers the performance window, by default the window itself:

    >>> snap.performance_window_seconds, snap.performance_labels
    (300.0, 500)
    >>> sum(snap.performance_confusion.values())
    500.0

    The model's performance on its reference data, computed once from the reference's
    predictions and labels, is in every snapshot (whatever the window holds):

    >>> snap.reference.accuracy == float(np.mean(prediction == label))
    True
    >>> monitor.snapshot(now=5_000.0).reference == snap.reference
    True

    The estimate comes with its 95 % band (the realized figures should lie in it while the
    calibration holds):

    >>> low, high = snap.estimated_lower.accuracy, snap.estimated_upper.accuracy
    >>> bool(low < snap.estimated.accuracy < high), bool(low <= snap.realized.accuracy <= high)
    (True, True)

    Calibration can follow a covariate shift: :meth:`shift_fit` reweights the reference to
    look like recent inputs and refits it (pure: call it outside the lock), and
    :meth:`use_calibration` puts the refit in use for the predictions that follow, or keeps
    plain CBPE when it fell back (here: the reference's ``P(label | score)`` is the same
    everywhere, so plain CBPE already follows the shift and there is little to correct):

    >>> monitor.can_shift
    True
    >>> fit = monitor.shift_fit({"x": rng.normal(1.0, 1.0, size=1000)}, seed=1)
    >>> fit.applied, bool(fit.auc > 0.6)
    (True, True)
    >>> monitor.use_calibration(fit)
    >>> monitor.snapshot(now=1_010.0).estimation_shift_aware
    True
    >>> monitor.use_calibration(None)  # plain CBPE again
    >>> monitor.snapshot(now=1_010.0).estimation_shift_aware
    False
    """

    def __init__(
        self, config: MonitorConfig, reference: ReferenceData, max_state_bytes: int | None = None
    ) -> None:
        self.config = config
        scored = config.is_classification and reference.scores is not None
        #: the reference, kept for :meth:`shift_fit` when it can refit (never changed)
        self._reference = reference if scored and config.features else None
        #: the shift-aware fit in use (None: plain CBPE), the reason the last one fell back
        self._fit: ShiftFit | None = None
        self._fit_reason: str | None = None
        self._features = Features.fit(config, reference)
        self._numeric = self._features.numeric
        self._categorical = self._features.categorical
        binnings = self._features.categorical_binnings()
        self._segments = (
            Segments([(name, binnings[name]) for name in config.segments])
            if config.segments
            else None
        )
        classes = ClassCodes(config.classes)
        self._checker = BatchChecker(config, classes, self._segments)
        self._output = ModelOutput(config, reference, classes)
        settings = config.multivariate
        self._multivariate = (
            ReconstructionDrift.fit_reference(self._features, reference.features, settings)
            if settings is not None and len(config.features) >= 2
            else None
        )
        self._loss = (
            None
            if config.is_classification
            else LossEstimator.fit_reference(self._features, reference)
        )
        self._state = MonitorState(
            config.n_buckets,
            config.bucket_seconds,
            self._shapes(),
            self._total_shapes(),
            max_state_bytes,
            performance_shapes=self._performance_shapes(),
            performance_buckets=(config.performance_n_buckets, config.performance_bucket),
        )
        #: bytes of the rings and totals (float64), known before they are allocated
        self.state_bytes = self._state.nbytes

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """The ring statistics, in the order checkpoints have always listed them."""
        output = self._output.shapes()
        shapes: dict[str, tuple[int, ...]] = {"ops": (4,), **self._features.shapes()}
        shapes["output"] = output.pop("output")
        if self._multivariate is not None:
            shapes.update(self._multivariate.shapes())
        shapes.update(output)
        if self._loss is not None:
            shapes.update(self._loss.shapes())
        if self._segments is not None:
            k = self._output.k if self.config.is_classification else None
            expected = self._output.calibrator is not None
            shapes.update(self._segments.shapes(k, expected, self._loss is not None))
        return shapes

    def _performance_shapes(self) -> dict[str, tuple[int, ...]]:
        """The performance ring's statistics: realized performance, by label arrival."""
        shapes = self._output.performance_shapes()
        if self._segments is not None:
            k = self._output.k if self.config.is_classification else None
            shapes.update(self._segments.performance_shapes(k))
        return shapes

    def _total_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {
            "ops": (4,),
            "unknown_features": (1,),
            **self._features.total_shapes(),
            **self._output.total_shapes(),
        }
        if self._multivariate is not None:
            shapes.update(self._multivariate.shapes())
        return shapes

    # ------------------------------------------------------------------ counting

    @overload
    def check(
        self, batch: PredictionBatch | CheckedPredictions, now: float | None = None
    ) -> CheckedPredictions: ...

    @overload
    def check(
        self, batch: LabelBatch | CheckedLabels, now: float | None = None
    ) -> CheckedLabels: ...

    def check(
        self,
        batch: PredictionBatch | LabelBatch | CheckedPredictions | CheckedLabels,
        now: float | None = None,
    ) -> CheckedPredictions | CheckedLabels:
        """Raise the ValueError that ``observe`` / ``label`` would raise for ``batch``, without
        counting anything (a caller that must acknowledge only what the engine accepts checks
        first, then commits, then applies).

        Returns the checked batch: ``observe`` / ``label`` of it count it without validating
        it again (its columns must not change in between).

        >>> from modelmeter.engine.config import MonitorConfig, ReferenceData
        >>> config = MonitorConfig(task="binary", features=(), classes=("0", "1"), min_samples=1)
        >>> ref = ReferenceData({}, np.array(["0", "1"] * 30, dtype=object),
        ...                     np.array(["0", "1"] * 30, dtype=object))
        >>> ModelMonitor(config, ref).check(LabelBatch(
        ...     np.array([1.0]), np.array([1.0]), np.array(["2"], dtype=object),
        ...     np.array(["1"], dtype=object)))
        Traceback (most recent call last):
        ...
        ValueError: column 'predictions': value '2' at index 0 is not one of the classes ...
        """
        if isinstance(batch, PredictionBatch | CheckedPredictions):
            return self._checker.predictions(batch, now)
        return self._checker.labels(batch, now)

    def observe(
        self, batch: PredictionBatch | CheckedPredictions, now: float | None = None
    ) -> None:
        """Count a batch of prediction events (validated first, unless it is this monitor's
        :meth:`check` of it; a bad batch changes nothing).

        Raises ValueError naming the column on a wrong length or shape, a non-finite
        timestamp, an unknown class, a score outside [0, 1] or a negative latency.
        """
        checked = self._checker.predictions(batch, now)
        raw = checked.batch
        state = self._state
        ring, totals = state.ring, state.totals
        if raw.unknown_features:
            totals["unknown_features"][0] += int(raw.unknown_features)
        if checked.n == 0:
            if now is not None:
                state.advance(now)
            return
        state.advance(float(checked.timestamps.max()) if now is None else now)
        slots = ring.slots(checked.timestamps)
        totals["ops"] += ring.add("ops", slots, PREDICTIONS)
        if checked.errors is not None and checked.errors.any():
            totals["ops"] += ring.add("ops", slots[checked.errors], ERRORS)
        multivariate = self._multivariate
        index = self._features.count(ring, raw, slots, checked.n, totals, multivariate is not None)
        if multivariate is not None:
            multivariate.observe(ring, self._features, raw, slots, index, totals[STATISTIC])
        expected = self._output.observe(ring, checked, slots, totals)
        losses = None
        if self._loss is not None:
            predicted = np.asarray(checked.predicted, dtype=np.float64)
            losses = self._loss.count(
                ring, slots, raw.features, raw.wrong_type, predicted, checked.valid
            )
        if self._segments is not None:
            self._segments.observe(ring, raw.features, slots, checked.valid, losses, expected)
        if checked.latency is not None:
            state.latency.add(checked.latency)

    def segment_codes(self, features: Mapping[str, npt.NDArray[np.generic]]) -> IntArray | None:
        """(n, segments) value codes of events with these feature columns, as
        :class:`LabelBatch` ``segments`` takes them (None: the model has no segments)."""
        return None if self._segments is None else self._segments.codes(features)

    def label(self, batch: LabelBatch | CheckedLabels, now: float | None = None) -> None:
        """Count a batch of labels joined to their predictions (validated first, unless it is
        this monitor's :meth:`check` of it).

        Realized performance counts a label in the bucket of its arrival, in the performance
        window; label coverage counts it in the bucket of its prediction, if that is still in
        the window.
        """
        checked = self._checker.labels(batch, now)
        arrived, made = checked.arrived, checked.made
        state = self._state
        ring, performance = state.ring, state.performance
        if arrived.shape[0] == 0:
            if now is not None:
                state.advance(now)
            return
        state.advance(float(arrived.max()) if now is None else now)
        label_slots = ring.slots(arrived)
        performance_slots = performance.slots(arrived)
        made_slots = ring.slots(made)
        ops = state.totals["ops"]
        ops += ring.add("ops", label_slots, LABELS)
        ops += ring.add("ops", made_slots, LABELED)
        state.label_delay.add(np.maximum(arrived - made, 0.0))
        outcome = self._output.label(performance, checked, performance_slots)
        if outcome.confusion_counts is not None:
            state.totals["confusion"] += outcome.confusion_counts
        if checked.segments is not None and self._segments is not None:
            confusion = None if outcome.confusion is None else (outcome.confusion, self._output.k)
            self._segments.label(
                ring,
                performance,
                checked.segments,
                label_slots,
                performance_slots,
                made_slots,
                checked.valid,
                confusion,
                outcome.terms,
            )

    # ------------------------------------------------------------------ calibration

    @property
    def can_shift(self) -> bool:
        """True when :meth:`shift_fit` applies: a classifier with reference scores (and at
        least one feature to tell reference from live rows)."""
        return self._reference is not None

    def shift_fit(
        self,
        live: Mapping[str, npt.NDArray[np.generic]],
        seed: int = 0,
        settings: ShiftSettings | None = None,
    ) -> ShiftFit:
        """The shift-aware calibration for the ``live`` rows (feature name -> column, the
        features of recent predictions, as in a :class:`PredictionBatch`), or the reason to
        keep plain CBPE (:func:`~modelmeter.engine.shift.fit_shift_aware`; deterministic for
        a ``seed``).

        Pure: it reads only the configuration and the reference (neither changes after
        construction) and changes nothing, so a caller may run it outside its lock (in a
        worker thread) and then pass the fit to :meth:`use_calibration` under the lock.
        ValueError when the monitor cannot refit (:attr:`can_shift`: regression, or a
        reference without scores or features) or a feature is missing from ``live``.
        """
        reference = self._reference
        if reference is None:
            if not self.config.is_classification:
                raise ValueError("shift-aware calibration applies to classification tasks")
            if not self.config.features:
                raise ValueError("shift-aware calibration needs at least one feature")
            raise ValueError("shift-aware calibration needs reference scores")
        return fit_shift_aware(self.config, reference, live, seed, settings)

    def use_calibration(self, fit: ShiftFit | None) -> None:
        """Put a :meth:`shift_fit` in use (the caller holds its lock).

        A fit that is ``applied`` replaces the calibrator of the predictions observed from
        now on; the window turns over to it: the predictions already counted keep the
        expected counts (and band terms) of the calibrator they were counted with, so for up
        to a window the estimate mixes both (the band's calibration term uses the fit's
        effective rows for all of them). None, or a fit that fell back, restores the
        reference's calibrator (plain CBPE) and records the fit's reason
        (``Snapshot.estimation_reason``; None for None).

        The shift-aware calibrator is not checkpointed: a monitor loaded from a checkpoint
        uses plain CBPE until the next refit.

        ValueError when the fit's calibrator does not fit the model (other classes), or the
        monitor has no calibration (:attr:`can_shift` False) and the fit was applied.
        """
        output = self._output
        if fit is None or not fit.applied:
            output.use_calibrator(None)
            self._fit = None
            self._fit_reason = None if fit is None else fit.reason
            return
        if self._reference is None:
            raise ValueError("this monitor cannot use a shift-aware calibration (can_shift)")
        output.use_calibrator(fit.calibrator, fit.effective_size)
        self._fit = fit
        self._fit_reason = None

    # ------------------------------------------------------------------ reading

    def snapshot(self, now: float) -> Snapshot:
        """All figures at time ``now``; buckets older than ``now - window`` (``now -
        performance window`` for realized performance) are expired first."""
        state = self._state
        ring, performance = state.ring, state.performance
        state.advance(now)
        config = self.config
        minimum = config.min_samples
        output = self._output
        ops = ring.window("ops")
        predictions = int(ops[PREDICTIONS])
        realized, bands, regression = output.figures(ring, performance, minimum)
        fit = self._fit
        performance_labels, performance_confusion = output.performance_window(performance)
        drift, prediction_drift, detected = self._drift()
        names = [spec.name for spec in config.features]
        features = self._features
        quality = features.quality(
            ring.window("numeric_quality"), ring.window("categorical_quality"), names
        )
        ratio = {
            name: {issue: count / predictions if predictions else NAN for issue, count in c.items()}
            for name, c in quality.items()
        }
        totals = state.totals
        return Snapshot(
            time=float(now),
            window_seconds=config.window_seconds,
            min_samples=minimum,
            window_predictions=predictions,
            window_errors=int(ops[ERRORS]),
            window_labeled=int(ops[LABELS]),
            label_coverage=min(float(ops[LABELED]) / predictions, 1.0) if predictions else NAN,
            realized=realized,
            estimated=None if bands is None else bands.estimate,
            regression=regression,
            drift=drift,
            prediction_drift=prediction_drift,
            drift_detected=detected,
            quality_window=quality,
            quality_window_ratio=ratio,
            predictions_total=int(totals["ops"][PREDICTIONS]),
            errors_total=int(totals["ops"][ERRORS]),
            unknown_features_total=int(totals["unknown_features"][0]),
            confusion_total=output.confusion_total(totals.get("confusion")),
            quality_total=features.quality(
                totals["numeric_quality"], totals["categorical_quality"], names
            ),
            latency=state.latency.value(),
            label_delay=state.label_delay.value(),
            reference=output.reference_figures,
            reference_regression=output.reference_regression,
            multivariate=None
            if self._multivariate is None
            else self._multivariate.window_figures(ring, minimum, totals[STATISTIC]),
            estimated_regression=None
            if self._loss is None
            else self._loss.window_figures(ring, minimum),
            segments={}
            if self._segments is None
            else self._segments.figures(
                ring, performance, output.classes, output.positive, minimum
            ),
            feature_bins=features.bins(totals, names),
            prediction_bins=output.bins(totals["output"]),
            expected_total=output.expected_total(totals.get("expected")),
            performance_window_seconds=config.performance_window,
            performance_labels=performance_labels,
            performance_confusion=performance_confusion,
            estimated_lower=None if bands is None else bands.lower,
            estimated_upper=None if bands is None else bands.upper,
            estimation_shift_aware=fit is not None,
            estimation_auc=NAN if fit is None else fit.auc,
            estimation_effective_rows=NAN if fit is None else fit.effective_size,
            estimation_reason=self._fit_reason,
        )

    def _drift(self) -> tuple[dict[str, DriftFigures], DriftFigures, bool]:
        """Drift of every feature and of the output; which drifted (Benjamini-Hochberg)."""
        ring = self._state.ring
        minimum = self.config.min_samples
        raw = self._features.drift(ring, minimum)
        output = self._output.drift(ring, minimum)
        names = [spec.name for spec in self.config.features]
        pvalues = [raw[name][5] for name in names] + [output[5]]
        flags = benjamini_hochberg(pvalues, self.config.drift_fdr)
        drift = {name: DriftFigures(*raw[name], drifted=flags[i]) for i, name in enumerate(names)}
        return drift, DriftFigures(*output, drifted=flags[-1]), any(flags)

    # ------------------------------------------------------------------ checkpoints

    def to_checkpoint(self) -> dict[str, Any]:
        """All state as plain JSON-able data (dicts, lists, numbers, strings)."""
        return self._state.to_checkpoint()

    @classmethod
    def from_checkpoint(
        cls, config: MonitorConfig, reference: ReferenceData, data: Mapping[str, Any]
    ) -> ModelMonitor:
        """A monitor for ``config``/``reference`` with the state saved by :meth:`to_checkpoint`.

        Raises ValueError when the checkpoint does not fit the configuration (other features,
        classes, bins, window or performance window): start a fresh monitor in that case.
        The calibration in use is not in a checkpoint: the monitor starts with plain CBPE
        (see :meth:`use_calibration`).
        """
        monitor = cls(config, reference)
        monitor._state.load(data)
        return monitor
