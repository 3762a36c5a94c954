"""The demo model: a scikit-learn gradient-boosting classifier trained on the early rows.

>>> from modelmeter.demo.data import load
>>> data = load("rainfall")
>>> model = train(data)
>>> reference = reference_frame(model, data)
>>> list(reference.columns)[-3:], len(reference)
(['prediction', 'score', 'label'], 1500)
>>> 0.74 < float((reference["prediction"] == reference["label"]).mean()) < 0.84
True
"""

from __future__ import annotations

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from modelmeter.demo.data import DemoData

__all__ = ["reference_frame", "train"]


def train(data: DemoData) -> HistGradientBoostingClassifier:
    """Fit the classifier on ``data.train_rows`` (deterministic: fixed random state)."""
    start, stop = data.train_rows
    model = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.05, max_depth=3, random_state=0
    )
    model.fit(data.frame.iloc[start:stop], data.labels[start:stop])
    return model


def reference_frame(model: HistGradientBoostingClassifier, data: DemoData) -> pd.DataFrame:
    """The reference rows: features, the model's prediction and score, and the true label."""
    start, stop = data.reference_rows
    features = data.frame.iloc[start:stop].reset_index(drop=True)
    scores = model.predict_proba(features)[:, list(model.classes_).index(1)]
    out = features.copy()
    out["prediction"] = model.predict(features)
    out["score"] = scores
    out["label"] = data.labels[start:stop]
    return out
