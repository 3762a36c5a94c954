"""``monitor(estimator, client)``: a scikit-learn style estimator that reports every call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from modelmeter.sdk.client import Client


class MonitoredEstimator:
    """An estimator whose ``predict``/``predict_proba`` report every row to modelmeter.

    Made by ``monitor``; every other attribute is the wrapped estimator's. ``last_ids``
    holds the prediction ids of the latest call (give them to ``log_label``). Inputs may be
    pandas DataFrames, numpy arrays or plain lists of rows; outputs are the estimator's own.

    >>> class Threshold:  # any object with predict and/or predict_proba
    ...     classes_ = [0, 1]
    ...     def predict(self, X):
    ...         return [int(row[0] >= 1) for row in X]
    ...     def predict_proba(self, X):
    ...         return [[0.2, 0.8] if row[0] >= 1 else [0.9, 0.1] for row in X]
    >>> client = Client("http://127.0.0.1:9", model="m", flush_interval=60)
    >>> wrapped = MonitoredEstimator(Threshold(), client, feature_names=["x"])
    >>> wrapped.classes_  # passed through
    [0, 1]
    >>> client.close(timeout=0)
    True
    """

    def __init__(
        self, estimator: Any, client: Client, feature_names: Sequence[str] | None = None
    ) -> None:
        if not hasattr(estimator, "predict") and not hasattr(estimator, "predict_proba"):
            raise TypeError(f"{type(estimator).__name__} has neither predict nor predict_proba")
        self.estimator = estimator
        self.client = client
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.last_ids: list[str] = []
        self._classes_source: Any = None
        self._classes_list: list[Any] | None = None

    def __repr__(self) -> str:
        return f"monitor({self.estimator!r}, {self.client!r})"

    def __getattr__(self, name: str) -> Any:
        if name == "estimator":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.estimator, name)

    def predict(self, X: Any, *, return_ids: bool = False) -> Any:
        """``estimator.predict(X)``, reported; with ``return_ids`` also the prediction ids.

        For a classifier with ``predict_proba`` the probabilities are computed too (they feed
        the estimated performance); call ``predict_proba`` instead to run the model once.

        >>> class Constant:
        ...     def predict(self, X):
        ...         return ["ok"] * len(X)
        >>> client = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> wrapped = monitor(Constant(), client, feature_names=["a", "b"])
        >>> wrapped.predict([[1, 2], [3, 4]])
        ['ok', 'ok']
        >>> len(wrapped.last_ids), client.stats["queued"]
        (2, 2)
        >>> client.close(timeout=0)
        False
        """
        return self._call(X, proba=False, return_ids=return_ids)

    def predict_proba(self, X: Any, *, return_ids: bool = False) -> Any:
        """``estimator.predict_proba(X)``, reported with the predicted class of each row.

        >>> class Coin:
        ...     classes_ = ["heads", "tails"]
        ...     def predict_proba(self, X):
        ...         return [[0.7, 0.3] for _ in X]
        >>> client = Client("http://127.0.0.1:9", model="m", flush_interval=60)
        >>> proba, ids = monitor(Coin(), client).predict_proba([{"x": 1.0}], return_ids=True)
        >>> proba, len(ids)
        ([[0.7, 0.3]], 1)
        >>> client.close(timeout=0)
        False
        """
        return self._call(X, proba=True, return_ids=return_ids)

    def _names(self, X: Any) -> Sequence[str] | None:
        if self.feature_names is not None:
            return self.feature_names
        if hasattr(X, "columns"):
            return None  # feature_rows reads the DataFrame columns
        names = getattr(self.estimator, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else None

    def _classes(self) -> list[Any] | None:
        classes = getattr(self.estimator, "classes_", None)
        if classes is not self._classes_source:  # refitted (or first call)
            self._classes_source = classes
            self._classes_list = None if classes is None else list(classes)
        return self._classes_list

    def _call(self, X: Any, proba: bool, return_ids: bool) -> Any:
        est = self.estimator
        classes = self._classes()
        start = time.perf_counter()
        try:
            if proba:
                result = probabilities = est.predict_proba(X)
                latency = time.perf_counter() - start
                predictions = None
            else:
                result = predictions = est.predict(X)
                latency = time.perf_counter() - start
                probabilities = None
                if classes is not None and hasattr(est, "predict_proba"):
                    probabilities = est.predict_proba(X)  # feeds the estimated performance
        except Exception as exc:
            self.last_ids = self.client.log_predictions(
                X,
                None,
                latency_seconds=time.perf_counter() - start,
                error=f"{type(exc).__name__}: {exc}"[:500],
                feature_names=self._names(X),
            )
            raise
        self.last_ids = self.client.log_predictions(
            X,
            predictions,  # None for predict_proba: the argmax class, found off-thread
            probabilities=probabilities,
            classes=classes,
            latency_seconds=latency,
            feature_names=self._names(X),
        )
        return (result, self.last_ids) if return_ids else result


def monitor(
    estimator: Any, client: Client, feature_names: Sequence[str] | None = None
) -> MonitoredEstimator:
    """Wrap ``estimator`` so that its predictions are reported through ``client``.

    Each ``predict``/``predict_proba`` call is timed; every row is logged with its features,
    prediction and class probabilities; an exception is logged as one error event per row and
    re-raised. Feature names come from ``feature_names``, the DataFrame's columns or
    ``estimator.feature_names_in_``. The estimator may be anything with ``predict`` and/or
    ``predict_proba`` (and ``classes_`` for a classifier); scikit-learn is not needed.

    Examples
    --------
    >>> class Threshold:
    ...     classes_ = [0, 1]
    ...     def predict(self, X):
    ...         return [int(row[0] >= 1) for row in X]
    ...     def predict_proba(self, X):
    ...         return [[0.2, 0.8] if row[0] >= 1 else [0.9, 0.1] for row in X]
    >>> client = Client("http://127.0.0.1:9", model="m", flush_interval=60)
    >>> wrapped = monitor(Threshold(), client, feature_names=["x"])
    >>> predictions, ids = wrapped.predict([[0.5], [2.5]], return_ids=True)
    >>> predictions, len(ids), client.stats["queued"]
    ([0, 1], 2, 2)
    >>> client.close(timeout=0)
    False
    """
    return MonitoredEstimator(estimator, client, feature_names)
