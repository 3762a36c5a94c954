"""Shift-aware calibration: the reference reweighted to look like the live inputs.

Plain CBPE (:mod:`modelmeter.engine.estimation`) calibrates the scores on the reference. When
``P(label | score)`` depends on where in input space a row lies (the score ignores a feature
that moves the outcome), a covariate shift into another region moves the live curve away from
the reference's and the estimate drifts. Under covariate shift ``P(label | x)`` is unchanged,
so weighting each reference row by the density ratio ``w(x) = p_live(x) / p_ref(x)`` turns the
reference into a sample of the live distribution, and the weighted isotonic fit is the live
calibration curve.

The ratio comes from a classifier that tells reference rows (0) from live rows (1): with its
probability ``q(x) = P(live | x)``, ``w(x) = q / (1 - q) * n_ref / n_live`` (the odds corrected
for the class sizes it was fitted on). The steps of :func:`fit_shift_aware`:

1. At most ``max_reference_rows`` reference and ``max_live_rows`` live rows, drawn at random
   (seeded); numeric features as they are (NaN: missing), categorical ones as codes of the
   reference vocabulary (as the drift bins, at most 254 values plus ``other``; None: missing).
2. The classifier (:data:`METHODS`; default a logistic regression on :class:`LogisticDesign`)
   is cross-fitted over ``folds`` stratified folds: every sampled row's ``q`` comes from the
   model that did not see it, so the weights are not overfit; reference rows outside the
   sample get the mean of the fold models' ``q`` (none of them saw those rows). It runs on
   one thread (threadpoolctl).
3. The cross-validated AUC of those out-of-fold ``q`` tells how separable the two samples
   are. Below ``min_auc`` (0.55) the shift is too small to matter (or to be estimated): plain
   CBPE stays. So it does with fewer than ``min_live_rows`` (500) live rows.
4. The weights are truncated so that, normalised to mean 1, none exceeds ``clip``: by default
   ``sqrt(n)`` for ``n`` scored reference rows (truncated importance sampling, Ionides 2008:
   the truncation that keeps the weighted mean's mean squared error falling at the best rate
   when the ratio has heavy tails). Where the live inputs leave the reference's support the
   ratio is both huge and badly estimated (the classifier's ``q`` near 1 is where it is
   least reliable), and a few such rows would otherwise make the whole curve; the price is a
   bias towards the reference there, where no reweighting can recover what the reference
   never saw anyway. The effective sample size is then at least ``sqrt(n)``.
5. The effective sample size of the weights (Kish: ``(sum w)^2 / sum w^2``) over the scored
   reference rows: below ``min_effective_size`` (200) the weighted curve would rest on too few
   rows, and plain CBPE stays. (It is the number of rows the refitted curve rests on: the
   calibration term of a confidence band, :mod:`modelmeter.engine.bands`, should use it.)
6. Balance: reweighted, the reference should look like the live rows. For every numeric
   feature (and its missing share), every category of a categorical one and, when the live
   scores are given, every score column, the standardised mean difference between the live
   rows and the reweighted reference (difference over the pooled standard deviation) must
   stay below ``max_imbalance`` (0.2), or below 4 of its own standard errors
   (``sqrt(1 / n_live + 1 / effective size)``) when that is larger. Larger: the classifier
   has not found the ratio (the live rows lie where the reference has no support, or the
   ratio has a shape the classifier cannot take), and plain CBPE stays.
7. :meth:`~modelmeter.engine.estimation.Calibrator.fit` with ``sample_weight`` refits the
   calibration on every scored reference row.

Deterministic given ``seed``. Pure (numpy, scikit-learn), no I/O; meant to run off the request
path on a bounded sample of recent live rows.

>>> import numpy as np
>>> from modelmeter.engine.config import FeatureSpec, MonitorConfig, ReferenceData
>>> rng = np.random.default_rng(0)
>>> config = MonitorConfig(task="binary", classes=("0", "1"),
...                        features=(FeatureSpec("x", "numeric"),))
>>> x = rng.normal(size=4000)
>>> score = 1 / (1 + np.exp(-x))
>>> label = np.where(rng.random(4000) < score, "1", "0").astype(object)
>>> reference = ReferenceData({"x": x}, np.where(score > 0.5, "1", "0"), label, score)
>>> same = fit_shift_aware(config, reference, {"x": rng.normal(size=2000)}, seed=1)
>>> same.calibrator is None, same.reason.startswith("no shift")
(True, True)
>>> moved = fit_shift_aware(config, reference, {"x": rng.normal(1.0, 1.0, 2000)}, seed=1)
>>> moved.calibrator is not None, bool(moved.auc > 0.65), bool(moved.effective_size > 1000)
(True, True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from modelmeter.engine.columns import numeric_values
from modelmeter.engine.config import MonitorConfig, ReferenceData
from modelmeter.engine.drift import CategoricalBinning
from modelmeter.engine.estimation import Calibrator

__all__ = [
    "METHODS",
    "ShiftFit",
    "ShiftSettings",
    "density_ratio",
    "effective_size",
    "encode",
    "fit_shift_aware",
    "imbalance",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Domain classifiers: logistic regression on :class:`LogisticDesign` (the default: 0.1-0.3 s
#: a refit on 5,000 + 5,000 rows, one thread) or gradient boosting (native categorical
#: support, sees interactions; measured (bench/estimation.py) a little more accurate where the
#: shift is well inside the reference's support, worse on the demo's weather, and 4-10 times
#: slower: about 1 s a refit).
METHODS = ("boosting", "logistic")
#: HistGradientBoosting takes at most 255 bins, so at most 254 categories plus ``other``.
MAX_CODES = 254


@dataclass(frozen=True)
class ShiftSettings:
    """Sample sizes, the domain classifier and the fall-back thresholds of a refit.

    ``clip`` None: ``sqrt`` of the number of scored reference rows.

    >>> ShiftSettings().min_auc, ShiftSettings(clip=10.0).clip
    (0.55, 10.0)
    """

    max_reference_rows: int = 5_000
    max_live_rows: int = 5_000
    min_live_rows: int = 500
    min_auc: float = 0.55
    min_effective_size: float = 200.0
    clip: float | None = None
    folds: int = 5
    method: Literal["boosting", "logistic"] = "logistic"
    max_imbalance: float = 0.2

    def __post_init__(self) -> None:
        for name in ("max_reference_rows", "max_live_rows", "min_live_rows"):
            value = getattr(self, name)
            if int(value) != value or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value}")
        if int(self.folds) != self.folds or not 2 <= self.folds <= 20:
            raise ValueError(f"folds must be an integer in 2..20, got {self.folds}")
        if not 0 <= self.min_auc < 1:
            raise ValueError(f"min_auc must be in [0, 1), got {self.min_auc}")
        if self.clip is not None and not (self.clip > 1 and math.isfinite(self.clip)):
            raise ValueError(f"clip must be a finite number > 1 or None, got {self.clip}")
        if not self.min_effective_size >= 0:
            raise ValueError(f"min_effective_size must be >= 0, got {self.min_effective_size}")
        if not self.max_imbalance > 0:
            raise ValueError(f"max_imbalance must be > 0, got {self.max_imbalance}")
        if self.method not in METHODS:
            raise ValueError(f"invalid method {self.method!r}; valid methods are {METHODS}")


@dataclass(frozen=True)
class ShiftFit:
    """The outcome of one refit.

    ``calibrator`` is the shift-aware calibrator, or None when the fit fell back to plain
    CBPE; ``reason`` then says why. ``auc`` is the cross-validated AUC of the domain
    classifier (NaN when it was not fitted), ``effective_size`` the Kish effective sample
    size of the weights over the scored reference rows, ``clip`` the largest weight allowed,
    ``imbalance`` the largest absolute standardised mean difference left after weighting
    (step 6; NaN when not reached),
    ``weights`` the weight of every reference row (mean 1 over the scored ones, 0 for rows
    without scores; None when not computed).
    """

    calibrator: Calibrator | None
    auc: float
    effective_size: float
    reference_rows: int
    live_rows: int
    seconds: float
    reason: str | None = None
    clip: float = math.nan
    imbalance: float = math.nan
    weights: FloatArray | None = None

    @property
    def applied(self) -> bool:
        """True when the shift-aware calibrator should replace the plain one."""
        return self.calibrator is not None


# ---------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Encoding:
    """Feature matrices of reference and live rows and which columns are categorical."""

    reference: FloatArray  # (n_ref, d), NaN = missing
    live: FloatArray  # (n_live, d)
    categorical: BoolArray  # (d,)


def encode(
    config: MonitorConfig,
    reference: Mapping[str, npt.NDArray[np.generic]],
    live: Mapping[str, npt.NDArray[np.generic]],
) -> Encoding:
    """Reference and live features as float matrices: numeric values (NaN: missing, and
    values of the wrong type), categorical codes of the reference vocabulary (``other`` for
    unseen values, NaN for None).

    >>> from modelmeter.engine.config import FeatureSpec
    >>> config = MonitorConfig(task="binary", classes=("0", "1"), features=(
    ...     FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical")))
    >>> obj = lambda *v: np.array(v, dtype=object)
    >>> e = encode(config, {"x": np.array([1.0, 2.0]), "c": obj("a", "b")},
    ...            {"x": np.array([3.0]), "c": obj("z")})
    >>> e.reference.tolist(), e.live.tolist(), e.categorical.tolist()
    ([[1.0, 0.0], [2.0, 1.0]], [[3.0, 2.0]], [False, True])
    """
    columns_ref: list[FloatArray] = []
    columns_live: list[FloatArray] = []
    kinds: list[bool] = []
    n_ref = _length(reference, config, "reference")
    n_live = _length(live, config, "live")
    for spec in config.features:
        ref_values, live_values = reference[spec.name], live[spec.name]
        if spec.kind == "numeric":
            columns_ref.append(numeric_values(np.asarray(ref_values), spec.name, n_ref)[0])
            columns_live.append(numeric_values(np.asarray(live_values), spec.name, n_live)[0])
            kinds.append(False)
            continue
        binning = CategoricalBinning.fit(
            np.asarray(ref_values, dtype=object),
            spec.categories[:MAX_CODES] if spec.categories is not None else None,
            min(config.max_categories, MAX_CODES),
        )
        for values, out in ((ref_values, columns_ref), (live_values, columns_live)):
            codes = binning.index(np.asarray(values, dtype=object)).astype(np.float64)
            codes[codes == binning.missing] = np.nan
            out.append(codes)
        kinds.append(True)
    return Encoding(
        _matrix(columns_ref, n_ref), _matrix(columns_live, n_live), np.array(kinds, dtype=bool)
    )


def _length(
    columns: Mapping[str, npt.NDArray[np.generic]], config: MonitorConfig, what: str
) -> int:
    missing = [spec.name for spec in config.features if spec.name not in columns]
    if missing:
        raise ValueError(f"{what} features lack {missing}")
    if not config.features:
        raise ValueError("shift-aware calibration needs at least one feature")
    return int(np.shape(columns[config.features[0].name])[0])


def _matrix(columns: list[FloatArray], n: int) -> FloatArray:
    out = np.empty((n, len(columns)))
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


# ---------------------------------------------------------------------------- classifier


class LogisticDesign:
    """The logistic classifier's inputs: numeric features standardised (on the training
    rows), their squares (a Gaussian's log density ratio is quadratic: shifts of location and
    of spread), a missing-value indicator (0 as the value), and one indicator per category
    code seen in training (missing: none of them).

    >>> x = np.array([[1.0, 0.0], [3.0, 1.0], [np.nan, 1.0]])
    >>> LogisticDesign(x, np.array([False, True])).transform(x).round(2).tolist()
    [[-1.0, 1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0, 1.0]]
    """

    def __init__(self, x: FloatArray, categorical: BoolArray) -> None:
        self.numeric = np.flatnonzero(~categorical)
        self.nominal = np.flatnonzero(categorical)
        values = x[:, self.numeric]
        self.missing = np.isnan(values).any(axis=0)
        with np.errstate(all="ignore"):  # an all-missing column: mean NaN, made 0 below
            mean = np.nanmean(values, axis=0) if values.shape[0] else np.zeros(0)
            sd = np.nanstd(values, axis=0) if values.shape[0] else np.ones(0)
        self.mean = np.nan_to_num(mean)
        self.sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        self.codes = [np.unique(c[~np.isnan(c)]) for c in x[:, self.nominal].T]

    def transform(self, x: FloatArray) -> FloatArray:
        """The design matrix of rows ``x`` (encoded as by :func:`encode`)."""
        z = (x[:, self.numeric] - self.mean) / self.sd
        missing = np.isnan(z)
        z = np.clip(np.where(missing, 0.0, z), -5.0, 5.0)  # bounded leverage of outliers
        blocks = [z, np.square(z), missing[:, self.missing].astype(np.float64)]
        for j, codes in zip(self.nominal, self.codes, strict=True):
            blocks.append((x[:, j][:, None] == codes[None, :]).astype(np.float64))
        return np.concatenate(blocks, axis=1)


class _Logistic:
    def __init__(self, categorical: BoolArray) -> None:
        self.categorical = categorical

    def fit(self, x: FloatArray, y: IntArray) -> _Logistic:
        from sklearn.linear_model import LogisticRegression

        self.design = LogisticDesign(x, self.categorical)
        self.model = LogisticRegression(C=1.0, max_iter=500)
        self.model.fit(self.design.transform(x), y)
        return self

    def predict_proba(self, x: FloatArray) -> FloatArray:
        p: FloatArray = self.model.predict_proba(self.design.transform(x))
        return p


def _classifier(method: str, categorical: BoolArray, seed: int) -> Any:
    if method == "logistic":
        return _Logistic(categorical)
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=50,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=50,
        l2_regularization=1.0,
        early_stopping=False,
        categorical_features=categorical if categorical.any() else None,
        random_state=seed,
    )


def _cross_fit(
    x: FloatArray,
    y: IntArray,
    outside: FloatArray,
    categorical: BoolArray,
    settings: ShiftSettings,
    rng: np.random.Generator,
    seed: int,
) -> tuple[FloatArray, FloatArray]:
    """Out-of-fold ``P(live | x)`` of the sample rows, and the fold models' mean on
    ``outside`` rows (seen by none of them)."""
    folds = np.empty(y.shape[0], dtype=np.int64)
    for value in (0, 1):  # stratified: each fold has its share of both samples
        rows = np.flatnonzero(y == value)
        folds[rows[rng.permutation(rows.size)]] = np.arange(rows.size) % settings.folds
    oof = np.empty(y.shape[0])
    mean_outside = np.zeros(outside.shape[0])
    for fold in range(settings.folds):
        held = folds == fold
        model = _classifier(settings.method, categorical, seed + fold)
        model.fit(x[~held], y[~held])
        oof[held] = model.predict_proba(x[held])[:, 1]
        if outside.shape[0]:
            mean_outside += model.predict_proba(outside)[:, 1]
    return oof, mean_outside / settings.folds


def density_ratio(q: FloatArray, n_reference: int, n_live: int, clip: float) -> FloatArray:
    """Weights from ``q = P(live | x)`` of a classifier fitted on ``n_reference`` and
    ``n_live`` rows: the odds times ``n_reference / n_live``, truncated at the level ``t``
    after which the weights, normalised to mean 1, are at most ``clip`` (``t`` solved
    exactly: the largest ones become ``clip``, the rest keep their proportions).

    >>> density_ratio(np.array([0.5, 0.5, 0.75, 0.999]), 4, 4, clip=2.0).round(3).tolist()
    [0.4, 0.4, 1.2, 2.0]
    """
    q = np.clip(np.asarray(q, np.float64), 1e-9, 1.0 - 1e-9)
    ratio = q / (1.0 - q) * (n_reference / n_live)
    n = ratio.shape[0]
    ordered = np.sort(ratio)
    smallest = np.concatenate([[0.0], np.cumsum(ordered)])  # sums of the j smallest
    clipped = np.arange(n)  # m: how many of the largest are truncated to t
    room = n - clip * clipped
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(room > 0, clip * smallest[n - clipped] / room, np.inf)
    above = ordered[n - clipped - 1]  # the largest one kept: must be <= t
    below = np.concatenate([[np.inf], ordered[::-1][: n - 1]])  # the smallest cut: >= t
    fits = (room > 0) & (level >= above) & (level <= below)
    if fits.any():
        ratio = np.minimum(ratio, level[int(np.argmax(fits))])
    weights: FloatArray = ratio / ratio.mean()
    return weights


def effective_size(weights: FloatArray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``.

    >>> effective_size(np.ones(10)), effective_size(np.array([1.0, 0.0, 0.0, 0.0]))
    (10.0, 1.0)
    """
    total = float(weights.sum())
    squares = float(np.square(weights).sum())
    return total * total / squares if squares > 0 else 0.0


def _columns(
    encoding: Encoding,
    names: list[str],
    reference_scores: FloatArray | None,
    live_scores: FloatArray | None,
) -> list[tuple[str, FloatArray, FloatArray]]:
    """The balance columns: (name, reference values, live values), NaN = missing."""
    out: list[tuple[str, FloatArray, FloatArray]] = []
    for j, name in enumerate(names):
        ref, live = encoding.reference[:, j], encoding.live[:, j]
        if not encoding.categorical[j]:
            out.append((name, ref, live))
            if np.isnan(ref).any() or np.isnan(live).any():
                out.append((f"{name} missing", np.isnan(ref) * 1.0, np.isnan(live) * 1.0))
            continue
        for code in np.unique(np.concatenate([ref[~np.isnan(ref)], live[~np.isnan(live)]])):
            out.append((f"{name} code {int(code)}", (ref == code) * 1.0, (live == code) * 1.0))
    if reference_scores is not None and live_scores is not None:
        ref_scores = reference_scores.reshape(reference_scores.shape[0], -1)
        live_matrix = live_scores.reshape(live_scores.shape[0], -1)
        for j in range(ref_scores.shape[1]):
            out.append((f"score {j}", ref_scores[:, j], live_matrix[:, j]))
    return out


def imbalance(
    columns: list[tuple[str, FloatArray, FloatArray]], weights: FloatArray
) -> tuple[float, str]:
    """The largest absolute standardised mean difference between the live values and the
    ``weights``-weighted reference values of ``columns``, and the column's name.

    >>> ref, live = np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, 3.0])
    >>> round(imbalance([("x", ref, live)], np.ones(4))[0], 3)
    1.155
    >>> imbalance([("x", ref, live)], np.array([0.0, 0.0, 1.0, 1.0]))
    (0.0, '')
    """
    worst, name = 0.0, ""
    for column, ref, live in columns:
        r_ok, l_ok = ~np.isnan(ref), ~np.isnan(live)
        w = weights[r_ok]
        if not l_ok.any() or w.sum() <= 0:
            continue
        pooled = math.sqrt((float(np.var(ref[r_ok])) + float(np.var(live[l_ok]))) / 2.0)
        difference = abs(float(live[l_ok].mean()) - float(np.average(ref[r_ok], weights=w)))
        if difference == 0:
            continue
        value = math.inf if pooled == 0 else difference / pooled
        if value > worst:
            worst, name = value, column
    return worst, name


# ---------------------------------------------------------------------------- entry point


def fit_shift_aware(
    config: MonitorConfig,
    reference: ReferenceData,
    live: Mapping[str, npt.NDArray[np.generic]],
    seed: int = 0,
    settings: ShiftSettings | None = None,
    live_scores: FloatArray | None = None,
) -> ShiftFit:
    """The shift-aware calibrator of ``config``'s classifier for the ``live`` rows (name ->
    column, the features of recent predictions, as in a PredictionBatch), or the reason to
    keep plain CBPE. ``live_scores`` (optional, the model's scores of those rows, shaped as
    the reference's; NaN: not given) add the scores to the balance check.

    ValueError when the task is not classification, the reference has no scores, or a
    feature is missing.
    """
    started = time.perf_counter()
    settings = settings or ShiftSettings()
    if not config.is_classification:
        raise ValueError("shift-aware calibration applies to classification tasks")
    if reference.scores is None:
        raise ValueError("shift-aware calibration needs reference scores")
    scores = np.asarray(reference.scores, np.float64)
    scored = ~np.isnan(scores) if scores.ndim == 1 else ~np.isnan(scores).any(axis=1)
    encoding = encode(config, reference.features, live)
    n_ref, n_live = encoding.reference.shape[0], encoding.live.shape[0]

    def fallback(
        reason: str, auc: float = math.nan, ess: float = math.nan, clip: float = math.nan
    ) -> ShiftFit:
        seconds = time.perf_counter() - started
        return ShiftFit(None, auc, ess, n_ref, n_live, seconds, reason=reason, clip=clip)

    if n_live < settings.min_live_rows:
        return fallback(f"too few live rows: {n_live} < {settings.min_live_rows}")
    rng = np.random.default_rng(seed)
    ref_rows = _sample(rng, n_ref, settings.max_reference_rows)
    live_rows = _sample(rng, n_live, settings.max_live_rows)
    x = np.concatenate([encoding.reference[ref_rows], encoding.live[live_rows]])
    y = np.concatenate([np.zeros(ref_rows.size, np.int64), np.ones(live_rows.size, np.int64)])
    outside = np.ones(n_ref, dtype=bool)
    outside[ref_rows] = False
    with threadpool_limits(limits=1):  # off the request path: one core, no oversubscription
        oof, q_outside = _cross_fit(
            x, y, encoding.reference[outside], encoding.categorical, settings, rng, seed
        )
    auc = float(roc_auc_score(y, oof))
    if auc < settings.min_auc:
        return fallback(f"no shift to correct: AUC {auc:.3f} < {settings.min_auc}", auc)
    q = np.empty(n_ref)
    q[ref_rows] = oof[: ref_rows.size]
    q[outside] = q_outside
    weights = np.zeros(n_ref)
    n_scored = int(scored.sum())
    clip = settings.clip if settings.clip is not None else max(2.0, math.sqrt(n_scored))
    weights[scored] = density_ratio(q[scored], ref_rows.size, live_rows.size, clip)
    ess = effective_size(weights[scored])
    if ess < settings.min_effective_size:
        return fallback(
            f"too few effective reference rows: {ess:.0f} < {settings.min_effective_size:.0f}",
            auc,
            ess,
            clip,
        )
    live_score_array = None
    if live_scores is not None:
        live_score_array = np.asarray(live_scores, np.float64)
        if live_score_array.shape[1:] != scores.shape[1:] or live_score_array.shape[0] != n_live:
            raise ValueError(
                f"live scores have shape {live_score_array.shape}, expected "
                f"{(n_live, *scores.shape[1:])}"
            )
    names = [spec.name for spec in config.features]
    worst, column = imbalance(_columns(encoding, names, scores, live_score_array), weights)
    limit = max(settings.max_imbalance, 4.0 * math.sqrt(1.0 / n_live + 1.0 / ess))
    if worst > limit:
        fit = fallback(
            f"the weights leave the inputs imbalanced: |SMD| {worst:.2f} of {column!r} > "
            f"{limit:.2f}",
            auc,
            ess,
            clip,
        )
        return replace(fit, imbalance=worst)
    positive = config.positive_class if config.task == "binary" else None
    calibrator = Calibrator.fit(
        scores, np.asarray(reference.labels, dtype=object), config.classes, positive, weights
    )
    return ShiftFit(
        calibrator,
        auc,
        ess,
        n_ref,
        n_live,
        time.perf_counter() - started,
        clip=clip,
        imbalance=worst,
        weights=weights,
    )


def _sample(rng: np.random.Generator, n: int, most: int) -> IntArray:
    if n <= most:
        return np.arange(n, dtype=np.int64)
    rows: IntArray = np.sort(rng.choice(n, most, replace=False)).astype(np.int64)
    return rows
