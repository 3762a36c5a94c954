"""Regenerate the example reference files from scikit-learn's bundled data sets.

Each example trains a seeded model on 60 % of a real data set and writes the other 40 %
(features, the model's prediction, the true label and its scores) as the reference CSV
that the matching ``*-spec.yaml`` names:

- ``binary-reference.csv``: breast cancer (malignant vs benign), logistic regression.
- ``multiclass-reference.csv``: wine cultivars, logistic regression.
- ``regression-reference.csv``: diabetes progression, ridge regression.

Run ``python examples/make_references.py`` from anywhere; it writes next to itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
SEED = 20261126


def _snake(name: str) -> str:
    return name.replace(" ", "_").replace("/", "_")


def binary() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=_snake)
    features = [_snake(n) for n in data.feature_names[:10]]  # the ten "mean_*" measurements
    names = np.asarray(data.target_names)  # ['malignant', 'benign']
    x_train, x_ref, y_train, y_ref = train_test_split(
        frame[features],
        names[frame["target"]],
        test_size=0.4,
        random_state=SEED,
        stratify=frame["target"],
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED))
    model.fit(x_train, y_train)
    out: pd.DataFrame = pd.DataFrame(x_ref).copy()
    out["prediction"] = model.predict(x_ref)
    out["label"] = y_ref
    out["score"] = model.predict_proba(x_ref)[:, list(model.classes_).index("malignant")]
    return out


def multiclass() -> pd.DataFrame:
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns=_snake)
    features = [
        "alcohol",
        "malic_acid",
        "ash",
        "magnesium",
        "flavanoids",
        "color_intensity",
        "proline",
    ]
    names = np.asarray(data.target_names)  # ['class_0', 'class_1', 'class_2']
    x_train, x_ref, y_train, y_ref = train_test_split(
        frame[features],
        names[frame["target"]],
        test_size=0.4,
        random_state=SEED,
        stratify=frame["target"],
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=SEED))
    model.fit(x_train, y_train)
    out: pd.DataFrame = pd.DataFrame(x_ref).copy()
    out["prediction"] = model.predict(x_ref)
    out["label"] = y_ref
    probabilities = model.predict_proba(x_ref)
    for i, cls in enumerate(model.classes_):
        out[f"p_{cls}"] = probabilities[:, i]
    return out


def regression() -> pd.DataFrame:
    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.frame.copy()
    frame["sex"] = frame["sex"].astype(int)  # 1 or 2: a categorical feature
    features = list(data.feature_names)
    x_train, x_ref, y_train, y_ref = train_test_split(
        frame[features], frame["target"], test_size=0.4, random_state=SEED
    )
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    model.fit(x_train, y_train)
    out: pd.DataFrame = pd.DataFrame(x_ref).copy()
    out["prediction"] = model.predict(x_ref)
    out["label"] = y_ref
    return out


def main() -> None:
    for name, build in (("binary", binary), ("multiclass", multiclass), ("regression", regression)):
        path = HERE / f"{name}-reference.csv"
        build().to_csv(path, index=False, float_format="%.6g")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
