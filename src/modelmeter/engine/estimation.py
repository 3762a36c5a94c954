"""Confidence-based performance estimation: expected confusion counts from calibrated scores.

On the reference data an isotonic regression (scikit-learn) maps each score to the observed
frequency of the class (binary: of the positive class; multiclass: one-vs-rest per class, the
calibrated rows renormalised to sum to 1). In the stream, an event predicted ``k`` with
calibrated probabilities ``P`` adds ``P[j]`` to the expected count of (predicted ``k``, actual
``j``): for a binary model, expected TP = sum of ``p`` over predicted-positive events, expected
FP = sum of ``1 - p`` over them, and so on. The usual metrics of that expected matrix are the
estimate.

The estimate is right while the scores stay calibrated. Covariate shift preserves that only
when ``P(label | score)`` is the same everywhere in input space; when it differs between
regions (the score ignores a feature that moves the outcome), a shift into one region moves
the live ``P(label | score)`` away from the reference's. ``sample_weight`` refits the curves
with each reference row weighted by its density ratio live/reference
(:mod:`modelmeter.engine.shift` estimates it), which gives the live curve under covariate
shift. No calibration sees concept drift (the relation between inputs and labels changing),
because the scores do not change when the labels do.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> scores = rng.random(2000)
>>> labels = np.where(rng.random(2000) < scores, "1", "0").astype(object)
>>> calibrator = Calibrator.fit(scores, labels, ("0", "1"), positive="1")
>>> probabilities = calibrator.probabilities(np.array([0.05, 0.95]))
>>> bool(probabilities[0, 1] < 0.2 and probabilities[1, 1] > 0.8)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression

__all__ = ["Calibrator"]

FloatArray = npt.NDArray[np.float64]


class Calibrator:
    """Isotonic calibration curves (one per class, or one for the positive class).

    The fitted curves are kept as their breakpoints and applied with ``np.interp``, which is
    what ``IsotonicRegression(out_of_bounds="clip").predict`` computes.
    """

    def __init__(
        self,
        thresholds: Sequence[tuple[FloatArray, FloatArray]],
        n_classes: int,
        positive: int | None,
    ) -> None:
        self._curves = [
            (np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in thresholds
        ]
        self.n_classes = n_classes
        self.positive = positive

    @classmethod
    def fit(
        cls,
        scores: FloatArray,
        labels: npt.NDArray[np.generic],
        classes: tuple[str, ...],
        positive: str | None,
        sample_weight: FloatArray | None = None,
    ) -> Calibrator:
        """Fit on reference ``scores`` ((n,) binary, (n, k) multiclass) and class ``labels``.

        ``sample_weight`` ((n,), finite, >= 0) weights the rows of every curve exactly as
        ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, y, sample_weight)``
        does (rows of weight 0 are left out); None: every row weighs 1.

        >>> x = np.array([0.1, 0.2, 0.3, 0.4])
        >>> y = np.array(["0", "1", "0", "1"], dtype=object)
        >>> plain = Calibrator.fit(x, y, ("0", "1"), "1").probabilities(x)[:, 1]
        >>> weighted = Calibrator.fit(x, y, ("0", "1"), "1", np.array([1.0, 1, 3, 1]))
        >>> plain.tolist(), weighted.probabilities(x)[:, 1].tolist()
        ([0.0, 0.5, 0.5, 1.0], [0.0, 0.25, 0.25, 1.0])
        """
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=object)
        binary = positive is not None
        expected_shape: tuple[int, ...] = (
            (labels.shape[0],) if binary else (labels.shape[0], len(classes))
        )
        if scores.shape != expected_shape:
            raise ValueError(
                f"reference scores have shape {scores.shape}, expected {expected_shape} "
                "(binary: P(positive) per row; multiclass: one column per class)"
            )
        rows = ~np.isnan(scores) if binary else ~np.isnan(scores).any(axis=1)
        weights = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=np.float64)
            if weights.shape != (labels.shape[0],):
                raise ValueError(
                    f"sample_weight has shape {weights.shape}, expected ({labels.shape[0]},)"
                )
            if not np.all(np.isfinite(weights) & (weights >= 0)):
                raise ValueError("sample_weight must be finite and >= 0")
            rows &= weights > 0
        if int(rows.sum()) < 2:
            raise ValueError(
                "reference scores need at least 2 rows without NaN (and with weight > 0) to "
                "calibrate"
            )
        if np.any((scores[rows] < 0) | (scores[rows] > 1)):
            raise ValueError("reference scores must be probabilities in [0, 1]")
        columns = [scores[rows]] if binary else [scores[rows, k] for k in range(len(classes))]
        targets = [positive] if binary else list(classes)
        curves = []
        for column, target in zip(columns, targets, strict=True):
            outcome = (labels[rows] == target).astype(np.float64)
            model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            model.fit(column, outcome, None if weights is None else weights[rows])
            curves.append((model.X_thresholds_, model.y_thresholds_))
        positive_index = classes.index(positive) if positive is not None else None
        return cls(curves, len(classes), positive_index)

    def probabilities(self, scores: FloatArray) -> FloatArray:
        """Calibrated class probabilities (n, k) of rows of scores without NaN."""
        if self.positive is not None:
            x, y = self._curves[0]
            p = np.interp(scores, x, y)
            out = np.empty((scores.shape[0], 2))
            out[:, self.positive] = p
            out[:, 1 - self.positive] = 1.0 - p
            return out
        out = np.empty((scores.shape[0], self.n_classes))
        for k, (x, y) in enumerate(self._curves):
            out[:, k] = np.interp(scores[:, k], x, y)
        totals = out.sum(axis=1, keepdims=True)
        uniform = totals[:, 0] <= 0
        out[uniform] = 1.0
        totals[uniform] = float(self.n_classes)
        normalised: FloatArray = out / totals
        return normalised
