"""The loss model of direct loss estimation: gradient-boosted regressors as lookup tables.

The regressors are scikit-learn's ``HistGradientBoostingRegressor`` with
``interaction_cst="no_interactions"``: every tree splits on one input only, so the fitted
function is ``exp(base + sum_j g_j(x_j))`` (Poisson loss, log link: non-negative, and a mean
estimator for any non-negative target) with ``g_j`` a step function of input ``j``. After
the fit the steps are read off the trees into lookup tables and the stream is scored with one
``searchsorted`` and one ``take`` per input, in numpy: that is why sklearn is needed at fit
time only, and this module is the engine's only user of the gradient-boosting code. A fitted
model is checked against ``predict`` on its training rows (relative 1e-9) before it is used.

Fit bound: at most :data:`MAX_ROWS` reference rows (a seeded sample beyond that), at most
:data:`MAX_ITER` boosting rounds per target, one OpenMP thread (the result does not depend on
the machine's thread count, and a busy collector is not oversubscribed). Fitting is
deterministic: the same reference gives the same tables, so a restored monitor refits and
only its window sums come from the checkpoint. Fitted models are memoised by a digest of
their training data (a collector builds several monitors from one reference).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(0, 2, 2000)
>>> label = x + rng.normal(0, 0.1 + x, 2000)  # the noise grows with x
>>> model = LossModel.fit(np.column_stack([x, x]), (None, None), x, label)
>>> low, high = model.predict(np.array([[0.1, 0.1], [1.9, 1.9]]))[:, 0]  # mean |error|
>>> bool(low < 0.3 < 1.2 < high)
True
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

__all__ = ["MAX_ITER", "MAX_ROWS", "MIN_ROWS", "SEED", "LossModel", "regressor"]

FloatArray = npt.NDArray[np.float64]

MAX_ROWS = 50_000
"""Most reference rows a loss model is fitted on (a seeded sample of larger references)."""
MAX_ITER = 100
"""Boosting rounds per target (no early stopping: a fixed, deterministic amount of work)."""
SEED = 0
"""Seed of the row sample and of the regressors."""
MIN_ROWS = 20
"""Fewer reference rows with a prediction and a label than this: no loss model."""
_CACHE_SIZE = 16


def regressor(categories: Sequence[int | None]) -> HistGradientBoostingRegressor:
    """The scikit-learn regressor of one target, as :meth:`LossModel.fit` configures it
    (``categories``: per input, None if numeric, else its number of codes)."""
    categorical = [c is not None for c in categories]
    return HistGradientBoostingRegressor(
        loss="poisson",
        max_iter=MAX_ITER,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        interaction_cst="no_interactions",
        categorical_features=np.array(categorical, dtype=bool) if any(categorical) else None,
        early_stopping=False,
        random_state=SEED,
    )


class LossModel:
    """Predicted absolute and squared error of rows of inputs (features, then the prediction).

    Parameters
    ----------
    edges
        Per input: the sorted split points of a numeric input (value ``<=`` edge ``k`` is in
        step ``k``), or None for a categorical input (its codes index the table directly).
    tables
        Per target (absolute, squared) and input: the step values in log space; the last
        entry is the step of a missing value (NaN).
    base
        Per target: the log-space prediction of a row with every input missing.
    estimators
        The fitted regressors, used by :meth:`predict` instead of the tables only if the
        tables could not be read off them (a scikit-learn whose tree internals changed):
        slower, never wrong.
    """

    def __init__(
        self,
        edges: Sequence[FloatArray | None],
        tables: Sequence[Sequence[FloatArray]],
        base: Sequence[float],
        estimators: Sequence[HistGradientBoostingRegressor | None] | None = None,
    ) -> None:
        self.estimators = None if estimators is None else tuple(estimators)
        self.edges = tuple(edges)
        self.tables = tuple(tuple(t) for t in tables)
        self.base = tuple(float(b) for b in base)
        self.n_inputs = len(self.edges)
        #: column of the inputs that each table reads (categorical inputs come first)
        self.order = np.arange(self.n_inputs, dtype=np.int64)
        # both targets' steps side by side: one take per input and batch
        self._stacked = [
            np.column_stack([a, b]) for a, b in zip(self.tables[0], self.tables[1], strict=True)
        ]

    @classmethod
    def fit(
        cls,
        inputs: FloatArray,
        categories: Sequence[int | None],
        predictions: FloatArray,
        labels: FloatArray,
    ) -> LossModel:
        """Fit on reference ``inputs`` (n, p) and ``predictions`` and ``labels`` (n,), finite.

        ``categories`` gives per input None (numeric: values, NaN = missing) or its number of
        codes ``c`` (categorical: codes ``0..c-1`` as floats, NaN = missing; ``c`` at most 255).

        Raises ValueError with fewer than :data:`MIN_ROWS` rows.
        """
        inputs = np.asarray(inputs, dtype=np.float64)
        n = inputs.shape[0]
        if n < MIN_ROWS:
            raise ValueError(f"a loss model needs at least {MIN_ROWS} rows, got {n}")
        if n > MAX_ROWS:
            rows = np.sort(np.random.default_rng(SEED).choice(n, MAX_ROWS, replace=False))
            inputs, predictions, labels = inputs[rows], predictions[rows], labels[rows]
        error = np.asarray(predictions, np.float64) - np.asarray(labels, np.float64)
        targets = (np.abs(error), np.square(error))
        categories = tuple(None if c is None else int(c) for c in categories)
        key = _digest(inputs, categories, targets)
        with _LOCK:
            found = _CACHE.get(key)
            if found is not None:
                _CACHE.move_to_end(key)
                return found
        # Categorical inputs first: scikit-learn moves them to the front internally, and the
        # trees' feature indices count in that order (the tables are checked in _fit anyway).
        order = [j for j, c in enumerate(categories) if c is not None]
        order += [j for j, c in enumerate(categories) if c is None]
        model = cls._fit(inputs[:, order], tuple(categories[j] for j in order), targets)
        model.order = np.array(order, dtype=np.int64)
        with _LOCK:
            _CACHE[key] = model
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return model

    @classmethod
    def _fit(
        cls,
        inputs: FloatArray,
        categories: tuple[int | None, ...],
        targets: tuple[FloatArray, ...],
    ) -> LossModel:
        fitted: list[HistGradientBoostingRegressor | None] = []
        with threadpool_limits(limits=1, user_api="openmp"):
            for target in targets:
                estimator = regressor(categories)
                if not float(target.sum()) > 0:  # a perfect reference: every loss is 0
                    fitted.append(None)
                    continue
                estimator.fit(inputs, target)
                fitted.append(estimator)
            try:
                model = cls._tables(fitted, inputs, categories)
            except Exception:  # tree internals of another scikit-learn: predict() instead
                p = inputs.shape[1]
                empty = [[np.zeros(1) for _ in range(p)] for _ in targets]
                model = cls([None] * p, empty, [0.0] * len(targets), fitted)
        return model

    @classmethod
    def _tables(
        cls,
        fitted: list[HistGradientBoostingRegressor | None],
        inputs: FloatArray,
        categories: tuple[int | None, ...],
    ) -> LossModel:
        """The step tables read off ``fitted`` (private tree arrays), checked against it."""
        p = inputs.shape[1]
        edges: list[FloatArray | None] = []
        for j in range(p):
            if categories[j] is not None:
                edges.append(None)
                continue
            splits = [
                nodes["num_threshold"][(nodes["is_leaf"] == 0) & (nodes["feature_idx"] == j)]
                for estimator in fitted
                if estimator is not None
                for nodes in (tree[0].nodes for tree in estimator._predictors)
            ]
            edges.append(np.unique(np.concatenate([np.empty(0), *splits])))
        probes = [_probes(e, c) for e, c in zip(edges, categories, strict=True)]
        tables: list[list[FloatArray]] = []
        base: list[float] = []
        for estimator in fitted:
            if estimator is None:
                tables.append([np.zeros(len(probe) + 1) for probe in probes])
                base.append(-np.inf)
                continue
            missing = np.full((1, p), np.nan)
            zero = float(np.log(estimator.predict(missing))[0])
            per_input = []
            for j, probe in enumerate(probes):
                rows = np.full((probe.shape[0], p), np.nan)
                rows[:, j] = probe
                raw = np.log(estimator.predict(rows)) - zero
                per_input.append(np.append(raw, 0.0))
            tables.append(per_input)
            base.append(zero)
        model = cls(edges, tables, base)
        model._check(fitted, inputs)
        return model

    def _check(
        self, fitted: list[HistGradientBoostingRegressor | None], inputs: FloatArray
    ) -> None:
        """ValueError unless the tables reproduce the regressors on (a sample of) ``inputs``."""
        sample = inputs[:: max(1, inputs.shape[0] // 2000)]
        ours = self.predict(sample)
        for t, estimator in enumerate(fitted):
            if estimator is None:
                continue
            theirs = estimator.predict(sample)
            if not np.allclose(ours[:, t], theirs, rtol=1e-9, atol=0.0):
                raise ValueError("the loss model's lookup tables do not reproduce its trees")

    def predict(self, inputs: FloatArray) -> FloatArray:
        """(n, 2): predicted absolute and squared error of rows ``inputs`` (n, p).

        >>> model = LossModel([np.array([0.0])], [[np.array([0.0, 1.0, 0.5])]] * 2, [0.0, 0.0])
        >>> model.predict(np.array([[-1.0], [2.0], [np.nan]])).round(3).tolist()
        [[1.0, 1.0], [2.718, 2.718], [1.649, 1.649]]
        """
        if self.estimators is not None:
            columns = inputs[:, self.order]
            return np.column_stack(
                [
                    np.zeros(inputs.shape[0]) if e is None else e.predict(columns)
                    for e in self.estimators
                ]
            ).astype(np.float64)
        raw = np.empty((inputs.shape[0], 2))
        raw[:] = self.base
        for j, edges in enumerate(self.edges):
            column = inputs[:, self.order[j]]
            missing = np.isnan(column)
            if edges is None:
                steps = np.where(missing, -1, column).astype(np.int64)
            else:
                steps = np.searchsorted(edges, column, side="left")
            if missing.any():
                steps[missing] = -1  # the missing-value step is each table's last entry
            raw += self._stacked[j][steps]
        out: FloatArray = np.exp(raw, out=raw)
        return out


def _probes(edges: FloatArray | None, codes: int | None) -> FloatArray:
    """One value inside each step of an input: each edge (values ``<=`` it go left) and one
    value above the last; a categorical input's codes ``0..c-1``."""
    if edges is None:
        return np.arange(codes or 0, dtype=np.float64)
    top = np.nextafter(edges[-1], np.inf) if edges.size else 0.0
    return np.append(edges, top)


def _digest(
    inputs: FloatArray, categories: tuple[int | None, ...], targets: tuple[FloatArray, ...]
) -> bytes:
    digest = hashlib.sha256()
    digest.update(repr((inputs.shape, categories, MAX_ITER)).encode())
    for array in (inputs, *targets):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.digest()


_LOCK = threading.Lock()
_CACHE: OrderedDict[bytes, LossModel] = OrderedDict()
