"""Label-free accuracy under covariate shift: plain CBPE, shift-aware CBPE and NannyML's CBPE.

    .venv/bin/python bench/estimation.py              # tables on stdout (about 2 minutes)
    .venv/bin/python bench/estimation.py --quick      # fewer windows (about 1 minute)
    .venv/bin/python bench/estimation.py --no-peers   # without NannyML
    .venv/bin/python bench/estimation.py --method boosting   # the other domain classifier

Streams with a known covariate shift and their labels, all seeded and offline; each is cut into
windows, and per window every method estimates the accuracy without labels:

- ``synthetic``: x1, x2 ~ N(0, 1) and a categorical ``region`` (a, b, c); P(y = 1) =
  sigmoid(1.8 x1 + 1.5 x2 + region effect - 0.2). The model (logistic regression on x1 and
  region, fitted on 20,000 other rows) ignores x2, so P(y | score) depends on x2. Reference
  20,000 rows; live windows of 2,000 rows, first unshifted, then with the mean of x2 moved
  by 0.25 to 1.5.
- ``multiclass``: the same design with 3 classes (softmax of x1, x2, region effects; the
  model, multinomial logistic regression, ignores x2).
- ``weather``: the demo's data and model (modelmeter.demo: NOAA daily weather of Bellevue,
  Nebraska, HistGradientBoostingClassifier fitted on rows 0-2,499, reference rows
  2,500-3,999), the stream from row 4,000 in the demo's window (2,400 rows) every 1,200 rows.
  Visibility shifts from about row 5,000 (covariate shift), the weather/rain relation changes
  from about row 12,000 (concept drift, which no label-free estimate sees): the errors are
  given for windows ending by row 12,000 and for windows starting after it.
- ``agrawal``: River's Agrawal generator (classification function 2: the label depends on
  age and salary; perturbation 0.05). The model (the demo's HistGradientBoostingClassifier
  settings) is fitted without ``age``, which the monitor watches; reference 20,000 rows;
  live windows of 2,000 rows, first unshifted, then drawn with P(keep) = exp(s (a - 1)),
  a = (age - 20) / 60, s = 1 to 4: older people.

Methods, per window: ``realized`` (labels); ``plain CBPE`` (modelmeter's isotonic calibration
on the reference, the monitor's estimate, computed here with the same functions); ``shift-aware``
(modelmeter.engine.shift.fit_shift_aware with its default settings: the calibration refitted
with density-ratio weights estimated from the window's own rows and scores, or plain CBPE when
the fit falls back); ``shift-aware, lagged`` (the calibrator fitted on the previous window,
applied to this one: what a service refitting on a schedule sees while the shift moves);
``NannyML CBPE`` (bench/.venv-peers, the windows as chunks). The bands are
modelmeter.engine.bands at z = 1.96, from sampling only (``coverage``) and with the
calibration's own error (``+ calibration``: the scored reference rows, or the weights'
effective size; NannyML: 1.96 of its ``sampling_error``); coverage is the share of windows
whose realized accuracy lies inside the band. The last two columns of each window compare the
window's share of the last class (from its labels) with the reweighted reference's: under a
pure covariate shift they agree. Last: the time of one refit on the largest sample (5,000
reference and 5,000 live rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
Z = 1.96
GOAL_SHIFTED = 0.5  # shift-aware error at most half of plain CBPE's under shift
GOAL_COVERAGE = 0.90


@dataclass
class Stream:
    """Reference and live rows of one model, and the live windows."""

    name: str
    about: str
    config: Any  # MonitorConfig
    reference: Any  # ReferenceData
    features: dict[str, np.ndarray]  # live features
    scores: np.ndarray  # (n,) or (n, k)
    predicted: np.ndarray  # class codes
    actual: np.ndarray  # class codes
    windows: list[tuple[int, int, str]]  # start, stop, phase ("unshifted", "shifted", ...)
    shift: list[float] = field(default_factory=list)  # the shift of each window (for the table)


# ---------------------------------------------------------------------------- streams


REGIONS = np.array(["a", "b", "c"], dtype=object)


def _synthetic_rows(rng: np.random.Generator, n: int, x2_mean: float, classes: int) -> tuple[
    dict[str, np.ndarray], np.ndarray
]:  # fmt: skip
    x1 = rng.normal(size=n)
    x2 = rng.normal(x2_mean, 1.0, n)
    region = REGIONS[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    effect = np.select([region == "b", region == "c"], [0.5, -0.5], 0.0)
    if classes == 2:
        logit = 1.8 * x1 + 1.5 * x2 + effect - 0.2
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    else:
        logits = np.column_stack([1.8 * x1, 1.5 * x2 + effect, -1.8 * x1 - effect])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1).astype(np.int64)
    return {"x1": x1, "x2": x2, "region": region}, y


def synthetic(quick: bool, classes: int = 2, seed: int = 1) -> Stream:
    from sklearn.linear_model import LogisticRegression

    from modelmeter.engine import FeatureSpec, MonitorConfig

    rng = np.random.default_rng(seed)

    def design(f: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([f["x1"], f["region"] == "b", f["region"] == "c"]).astype(float)

    train, y_train = _synthetic_rows(rng, 20_000, 0.0, classes)
    model = LogisticRegression(max_iter=1000).fit(design(train), y_train)

    def score(f: dict[str, np.ndarray]) -> np.ndarray:
        p: np.ndarray = model.predict_proba(design(f))
        return p[:, 1] if classes == 2 else p

    names = tuple(str(c) for c in range(classes))
    config = MonitorConfig(
        task="binary" if classes == 2 else "multiclass",
        classes=names,
        features=(
            FeatureSpec("x1", "numeric"),
            FeatureSpec("x2", "numeric"),
            FeatureSpec("region", "categorical"),
        ),
    )
    reference, y_ref = _synthetic_rows(rng, 20_000, 0.0, classes)
    levels = [0.0] * (10 if quick else 30)
    levels += [m for m in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5) for _ in range(1 if quick else 3)]
    parts = [_synthetic_rows(rng, 2_000, m, classes) for m in levels]
    live = {name: np.concatenate([p[0][name] for p in parts]) for name in reference}
    y = np.concatenate([p[1] for p in parts])
    about = "x2 mean 0 (unshifted), then 0.25-1.5; the model ignores x2"
    return _stream(
        "synthetic" if classes == 2 else "multiclass", about, config, reference,
        score(reference), y_ref, live, score(live), y, 2_000, levels,
    )  # fmt: skip


def weather(quick: bool) -> Stream:
    from modelmeter.demo.data import load
    from modelmeter.demo.model import reference_frame, train
    from modelmeter.engine import FeatureSpec, MonitorConfig

    data = load("rainfall")
    model = train(data)
    ref = reference_frame(model, data)
    columns = [str(c) for c in data.frame.columns]
    config = MonitorConfig(
        task="binary",
        classes=("0", "1"),
        positive_class="1",
        features=tuple(FeatureSpec(c, "numeric") for c in columns),
    )
    start = data.replay_start
    frame = data.frame.iloc[start:]
    live = {c: frame[c].to_numpy(np.float64) for c in columns}
    scores = model.predict_proba(frame)[:, list(model.classes_).index(1)]
    reference = {c: ref[c].to_numpy(np.float64) for c in columns}
    window, step = 2_400, 1_200
    n = len(frame)
    windows = []
    for end in range(window, n + 1, step):
        first, last = start + end - window, start + end
        phase = "covariate" if last <= 12_000 else "concept" if first >= 12_000 else "mixed"
        windows.append((end - window, end, phase))
    if quick:
        windows = windows[::2]
    stream = _stream(
        "weather", "the demo's NOAA stream from row 4,000; windows of 2,400 every 1,200 rows",
        config, reference, ref["score"].to_numpy(np.float64), ref["label"].to_numpy(np.int64),
        live, scores, data.labels[start:], 0, [],
    )  # fmt: skip
    stream.windows = windows
    stream.shift = [float(start + w[1]) for w in windows]  # the window's last row
    return stream


AGRAWAL_NUMERIC = ["salary", "commission", "age", "hvalue", "hyears", "loan"]
AGRAWAL_CATEGORICAL = ["elevel", "car", "zipcode"]


def agrawal(quick: bool, seed: int = 7) -> Stream:
    from river.datasets import synth
    from sklearn.ensemble import HistGradientBoostingClassifier

    from modelmeter.engine import FeatureSpec, MonitorConfig

    rows = list(
        synth.Agrawal(classification_function=2, seed=seed, perturbation=0.05).take(250_000)
    )
    pool = {c: np.array([r[0][c] for r in rows], np.float64) for c in AGRAWAL_NUMERIC}
    for c in AGRAWAL_CATEGORICAL:
        pool[c] = np.array([str(r[0][c]) for r in rows], dtype=object)
    labels = np.array([int(r[1]) for r in rows], np.int64)
    used = [c for c in AGRAWAL_NUMERIC if c != "age"] + AGRAWAL_CATEGORICAL

    def design(f: dict[str, np.ndarray], sl: Any) -> np.ndarray:
        return np.column_stack([np.asarray(f[c][sl], np.float64) for c in used])

    model = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.05, max_depth=3, random_state=0,
        categorical_features=[used.index(c) for c in AGRAWAL_CATEGORICAL],
    )  # fmt: skip
    model.fit(design(pool, slice(0, 20_000)), labels[:20_000])
    reference = {c: v[20_000:40_000] for c, v in pool.items()}
    ref_scores = model.predict_proba(design(pool, slice(20_000, 40_000)))[:, 1]
    rng = np.random.default_rng(seed)
    strengths = [0.0] * (8 if quick else 20)
    strengths += [s for s in (1.0, 2.0, 3.0, 4.0) for _ in range(1 if quick else 3)]
    age = (pool["age"] - 20.0) / 60.0
    keep_rows: list[np.ndarray] = []
    cursor = 40_000
    for s in strengths:  # each window from fresh rows of the stream, kept with P(keep)
        chosen: list[int] = []
        while len(chosen) < 2_000:
            block = np.arange(cursor, min(cursor + 2_000, len(labels)))
            assert block.size, "the Agrawal pool is too small"
            kept = block[rng.random(block.size) < np.exp(s * (age[block] - 1.0))]
            chosen.extend(kept[: 2_000 - len(chosen)].tolist())
            cursor = chosen[-1] + 1 if len(chosen) == 2_000 else block[-1] + 1
        keep_rows.append(np.array(chosen))
    rows_live = np.concatenate(keep_rows)
    live = {c: v[rows_live] for c, v in pool.items()}
    scores = model.predict_proba(design(pool, rows_live))[:, 1]
    config = MonitorConfig(
        task="binary",
        classes=("0", "1"),
        positive_class="1",
        features=tuple(FeatureSpec(c, "numeric") for c in AGRAWAL_NUMERIC)
        + tuple(FeatureSpec(c, "categorical") for c in AGRAWAL_CATEGORICAL),
    )
    about = "classification function 2, model without age; live windows kept by age"
    return _stream(
        "agrawal", about, config, reference, ref_scores, labels[20_000:40_000], live, scores,
        labels[rows_live], 2_000, strengths,
    )  # fmt: skip


def _stream(
    name: str,
    about: str,
    config: Any,
    reference: dict[str, np.ndarray],
    ref_scores: np.ndarray,
    ref_y: np.ndarray,
    live: dict[str, np.ndarray],
    scores: np.ndarray,
    y: np.ndarray,
    window: int,
    shift: list[float],
) -> Stream:
    from modelmeter.engine import ReferenceData

    classes = config.classes

    def predict(s: np.ndarray) -> np.ndarray:
        codes: np.ndarray = (s >= 0.5).astype(np.int64) if s.ndim == 1 else s.argmax(axis=1)
        return codes

    names = np.array(classes, dtype=object)
    ref = ReferenceData(reference, names[predict(ref_scores)], names[ref_y], ref_scores)
    windows = [
        (k * window, (k + 1) * window, "unshifted" if m == 0 else "shifted")
        for k, m in enumerate(shift)
    ]
    return Stream(name, about, config, ref, live, scores, predict(scores), y, windows, shift)


# ---------------------------------------------------------------------------- ours


def _accuracy_band(
    calibrator: Any, stream: Stream, rows: slice, reference_rows: float
) -> tuple[float, float, float, float, float]:
    """Estimated accuracy; its band from sampling only; its band with the calibration's
    error (``reference_rows``: the scored reference rows, or the weights' effective size)."""
    from modelmeter.engine.bands import band_terms, classification_bands, expected_counts

    k = len(stream.config.classes)
    probabilities = calibrator.probabilities(stream.scores[rows])
    predicted = stream.predicted[rows]
    positive = 1 if k == 2 else None
    expected = expected_counts(probabilities, predicted, k)
    terms = band_terms(probabilities, predicted, k)
    sampling = classification_bands(expected, terms, stream.config.classes, positive, 1, Z)
    both = classification_bands(
        expected, terms, stream.config.classes, positive, 1, Z, reference_rows=reference_rows
    )
    return (
        sampling.estimate.accuracy,
        sampling.lower.accuracy,
        sampling.upper.accuracy,
        both.lower.accuracy,
        both.upper.accuracy,
    )


def run_ours(stream: Stream, settings: Any) -> dict[str, Any]:
    from modelmeter.engine.estimation import Calibrator
    from modelmeter.engine.shift import fit_shift_aware

    reference = stream.reference
    config = stream.config
    plain = Calibrator.fit(
        np.asarray(reference.scores, np.float64),
        np.asarray(reference.labels, dtype=object),
        config.classes,
        config.positive_class if config.task == "binary" else None,
    )
    out: dict[str, Any] = {key: [] for key in ("realized", "plain", "shift", "lagged")}
    out.update({"auc": [], "ess": [], "applied": [], "seconds": [], "reason": []})
    out.update({"rate": [], "weighted_rate": []})
    reference_codes = np.searchsorted(
        np.array(config.classes, dtype=object), np.asarray(reference.labels, dtype=object)
    )
    scores = np.asarray(reference.scores, np.float64)
    n_scored = float(np.sum(~np.isnan(scores if scores.ndim == 1 else scores.sum(axis=1))))
    previous, previous_rows = plain, n_scored
    for index, (start, stop, _) in enumerate(stream.windows):
        rows = slice(start, stop)
        out["realized"].append(float(np.mean(stream.predicted[rows] == stream.actual[rows])))
        out["plain"].append(_accuracy_band(plain, stream, rows, n_scored))
        live = {name: column[rows] for name, column in stream.features.items()}
        fit = fit_shift_aware(
            config, reference, live, index, settings, live_scores=stream.scores[rows]
        )
        calibrator, rows_behind = plain, n_scored
        if fit.calibrator is not None:
            calibrator, rows_behind = fit.calibrator, fit.effective_size
        out["shift"].append(_accuracy_band(calibrator, stream, rows, rows_behind))
        out["lagged"].append(_accuracy_band(previous, stream, rows, previous_rows))
        previous, previous_rows = calibrator, rows_behind
        out["auc"].append(fit.auc)
        out["ess"].append(fit.effective_size)
        out["applied"].append(fit.applied)
        out["seconds"].append(fit.seconds)
        out["reason"].append(fit.reason)
        # Covariate shift keeps P(label | x): then the reweighted reference's class shares
        # match the window's (known here from its labels). Off-diagonal: the inputs moved
        # *and* the relation changed, which no reweighting follows.
        weights = fit.weights if fit.weights is not None else np.ones(len(reference_codes))
        last = len(config.classes) - 1
        out["rate"].append(float(np.mean(stream.actual[rows] == last)))
        out["weighted_rate"].append(
            float(np.sum(weights * (reference_codes == last)) / np.sum(weights))
        )
    return out


# ---------------------------------------------------------------------------- NannyML


def run_nannyml(path: str) -> None:
    """Inside bench/.venv-peers: NannyML's CBPE on each stream's windows (as chunks, laid end
    to end); one JSON line per stream on stdout."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import logging

    logging.disable(logging.WARNING)
    from importlib.metadata import version

    import nannyml as nml
    import pandas as pd

    data = np.load(path, allow_pickle=False)
    print(json.dumps({"version": version("nannyml")}), flush=True)
    for name in [str(s) for s in data["streams"]]:
        classes = [str(c) for c in data[f"{name}_classes"]]
        size = int(data[f"{name}_window"])

        def frame(prefix: str, labels: bool, classes: list[str] = classes) -> pd.DataFrame:
            scores = data[f"{prefix}_scores"]
            df = pd.DataFrame({"y_pred": data[f"{prefix}_predicted"].astype(str)})
            if len(classes) == 2:
                df["score"] = scores
            else:
                for j, c in enumerate(classes):
                    df[f"score_{c}"] = scores[:, j]
            if labels:
                df["y_true"] = data[f"{prefix}_actual"].astype(str)
            return df

        reference = frame(f"{name}_reference", True)
        analysis = frame(f"{name}_analysis", False)
        binary = len(classes) == 2
        estimator = nml.CBPE(
            y_pred_proba="score" if binary else {c: f"score_{c}" for c in classes},
            y_pred="y_pred",
            y_true="y_true",
            problem_type="classification_binary" if binary else "classification_multiclass",
            metrics=["accuracy"],
            chunk_size=size,
        )
        if binary:  # NannyML's binary y_pred must be 0/1 integers
            reference["y_pred"] = reference["y_pred"].astype(int)
            reference["y_true"] = reference["y_true"].astype(int)
            analysis["y_pred"] = analysis["y_pred"].astype(int)
        start = time.perf_counter()
        estimator.fit(reference)
        fit_seconds = time.perf_counter() - start
        result = estimator.estimate(analysis).filter(period="analysis").to_df()
        out = {
            "stream": name,
            "fit_seconds": fit_seconds,
            "accuracy": result[("accuracy", "value")].tolist(),
            "sampling_error": result[("accuracy", "sampling_error")].tolist(),
        }
        print(json.dumps(out), flush=True)


def nannyml(streams: list[Stream]) -> tuple[dict[str, dict[str, Any]], str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "streams.npz"
        arrays: dict[str, np.ndarray] = {"streams": np.array([s.name for s in streams])}
        for s in streams:
            size = s.windows[0][1] - s.windows[0][0]
            rows = np.concatenate([np.arange(a, b) for a, b, _ in s.windows])
            codes = {c: i for i, c in enumerate(s.config.classes)}
            arrays[f"{s.name}_classes"] = np.array(s.config.classes)
            arrays[f"{s.name}_window"] = np.array(size)
            arrays[f"{s.name}_reference_scores"] = np.asarray(s.reference.scores)
            arrays[f"{s.name}_reference_predicted"] = np.array(
                [codes[v] for v in s.reference.predictions]
            )
            arrays[f"{s.name}_reference_actual"] = np.array([codes[v] for v in s.reference.labels])
            arrays[f"{s.name}_analysis_scores"] = s.scores[rows]
            arrays[f"{s.name}_analysis_predicted"] = s.predicted[rows]
        np.savez(path, **arrays)  # type: ignore[arg-type]
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        run = subprocess.run(
            [str(PEERS_PYTHON), __file__, "--nannyml", str(path)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    out: dict[str, dict[str, Any]] = {}
    version = "?"
    for line in run.stdout.splitlines():
        if not line.strip().startswith("{"):
            continue
        record = json.loads(line)
        if "version" in record:
            version = record["version"]
        else:
            out[record.pop("stream")] = record
    return out, version


# ---------------------------------------------------------------------------- report


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def report(stream: Stream, ours: dict[str, Any], peer: dict[str, Any] | None) -> dict[str, Any]:
    realized = np.array(ours["realized"])
    phases = [w[2] for w in stream.windows]
    methods: dict[str, tuple[np.ndarray, ...]] = {}
    for key in ("plain", "shift", "lagged"):
        values = np.array(ours[key])
        methods[key] = tuple(values[:, j] for j in range(5))
    if peer is not None:
        value = np.array(peer["accuracy"])
        spread = Z * np.array(peer["sampling_error"])
        nan = np.full(value.shape, np.nan)
        methods["nannyml"] = (value, value - spread, value + spread, nan, nan)
    labels = {
        "plain": "plain CBPE",
        "shift": "shift-aware CBPE",
        "lagged": "shift-aware, lagged",
        "nannyml": "NannyML CBPE",
    }
    print(f"\n### {stream.name}: {stream.about}\n")
    head = ["window", "shift" if stream.name != "weather" else "last row", "phase", "realized"]
    last = stream.config.classes[-1]
    head += [labels[m] for m in methods] + ["AUC", "ESS", "refit s"]
    head += [f"share of {last!r}: window", "reweighted reference"]
    print("| " + " | ".join(head) + " |")
    print("|" + " ---: |" * len(head))
    for i, (shift, phase) in enumerate(zip(stream.shift, phases, strict=True)):
        row = [str(i), f"{shift:g}", phase, f"{realized[i]:.4f}"]
        row += [f"{methods[m][0][i]:.4f}" for m in methods]
        row += [_fmt(ours["auc"][i], 3), _fmt(ours["ess"][i], 0), f"{ours['seconds'][i]:.2f}"]
        row += [f"{ours['rate'][i]:.3f}", f"{ours['weighted_rate'][i]:.3f}"]
        print("| " + " | ".join(row) + " |")
    summary: dict[str, Any] = {"stream": stream.name, "methods": {}}
    order = [p for p in ("unshifted", "shifted", "covariate", "mixed", "concept") if p in phases]
    print()
    head = ["method"]
    for p in order:
        head += [f"MAE {p}", f"max err {p}", f"coverage {p}", f"+ calibration {p}"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" + " ---: |" * (len(head) - 1))
    for m, (value, low, high, low_c, high_c) in methods.items():
        row = [labels[m]]
        summary["methods"][m] = {}
        for p in order:
            rows = np.array([ph == p for ph in phases])
            error = np.abs(value[rows] - realized[rows])
            inside = (low[rows] <= realized[rows]) & (realized[rows] <= high[rows])
            inside_c = (low_c[rows] <= realized[rows]) & (realized[rows] <= high_c[rows])
            figures = {
                "mae": float(error.mean()),
                "max": float(error.max()),
                "coverage": float(inside.mean()),
                "coverage_calibration": float(inside_c.mean()),
                "windows": int(rows.sum()),
            }
            summary["methods"][m][p] = figures
            row += [
                f"{figures['mae']:.4f}",
                f"{figures['max']:.4f}",
                f"{figures['coverage']:.0%} of {figures['windows']}",
                "-" if m == "nannyml" else f"{figures['coverage_calibration']:.0%}",
            ]
        print("| " + " | ".join(row) + " |")
    seconds = ours["seconds"]
    applied = sum(ours["applied"])
    reasons = sorted({r.split(":")[0] for r in ours["reason"] if r})
    print(
        f"\nshift-aware refits: {applied} of {len(seconds)} windows applied "
        f"(fell back: {', '.join(reasons) or 'never'}); refit time median "
        f"{statistics.median(seconds):.2f} s, max {max(seconds):.2f} s"
        + (f"; NannyML CBPE fit {peer['fit_seconds']:.2f} s" if peer else "")
    )
    summary["refit_median"] = statistics.median(seconds)
    summary["refit_max"] = max(seconds)
    return summary


def refit_timing(stream: Stream, settings: Any) -> str:
    """One refit on the largest sample: every reference row (at most ``max_reference_rows``
    of them in the domain classifier) and the stream's last ``max_live_rows`` rows; best of 3
    (wall and CPU seconds, one thread)."""
    from modelmeter.engine.shift import fit_shift_aware

    n = len(stream.predicted)
    rows = slice(max(0, n - settings.max_live_rows), n)
    live = {name: column[rows] for name, column in stream.features.items()}
    best_wall = best_cpu = float("inf")
    fit = None
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        fit = fit_shift_aware(
            stream.config, stream.reference, live, 0, settings, live_scores=stream.scores[rows]
        )
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    assert fit is not None
    n_ref = len(stream.reference.labels)
    return (
        f"- {stream.name}: {min(n_ref, settings.max_reference_rows):,} of {n_ref:,} reference "
        f"rows + {rows.stop - rows.start:,} live rows, {len(stream.config.features)} features: "
        f"{best_wall:.2f} s wall, {best_cpu:.2f} s CPU (AUC {fit.auc:.3f}, "
        f"{'applied' if fit.applied else fit.reason})"
    )


def goals(summaries: list[dict[str, Any]]) -> None:
    print("\n### Goals\n")
    for s in summaries:
        m = s["methods"]
        shifted = "shifted" if "shifted" in m["plain"] else "covariate"
        plain, shift = m["plain"][shifted]["mae"], m["shift"][shifted]["mae"]
        line = (
            f"- {s['stream']}: under shift ({shifted}) shift-aware MAE {shift:.4f} vs plain "
            f"{plain:.4f} (ratio {shift / plain:.2f}, goal <= {GOAL_SHIFTED}: "
            f"{'met' if shift <= GOAL_SHIFTED * plain else 'NOT met'})"
        )
        if "unshifted" in m["plain"]:
            p0, s0 = m["plain"]["unshifted"]["mae"], m["shift"]["unshifted"]["mae"]
            c_plain = m["plain"]["unshifted"]["coverage_calibration"]
            c_shift = m["shift"]["unshifted"]["coverage_calibration"]
            line += (
                f"; unshifted MAE {s0:.4f} vs plain {p0:.4f} "
                f"({'met' if s0 <= p0 + 1e-4 else 'NOT met'}: no worse); band coverage "
                f"(with the calibration's error) unshifted plain {c_plain:.0%}, "
                f"shift-aware {c_shift:.0%} (goal >= {GOAL_COVERAGE:.0%}: "
                f"{'met' if min(c_plain, c_shift) >= GOAL_COVERAGE else 'NOT met'})"
            )
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows")
    parser.add_argument("--no-peers", action="store_true", help="without NannyML")
    parser.add_argument("--streams", nargs="+", default=["synthetic", "multiclass", "weather",
                        "agrawal"], help="which streams")  # fmt: skip
    parser.add_argument("--method", default=None, help="domain classifier (default: ours)")
    parser.add_argument("--nannyml", metavar="DATA.npz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nannyml:
        run_nannyml(args.nannyml)
        return 0
    from modelmeter.engine.shift import ShiftSettings

    settings = ShiftSettings() if args.method is None else ShiftSettings(method=args.method)
    started = time.perf_counter()
    builders = {
        "synthetic": lambda: synthetic(args.quick),
        "multiclass": lambda: synthetic(args.quick, classes=3),
        "weather": lambda: weather(args.quick),
        "agrawal": lambda: agrawal(args.quick),
    }
    print("estimation: building streams ...", file=sys.stderr, flush=True)
    streams = [builders[name]() for name in args.streams]
    peers: dict[str, dict[str, Any]] = {}
    version = None
    if not args.no_peers:
        if not PEERS_PYTHON.exists():
            print("bench/.venv-peers is missing (or use --no-peers)", file=sys.stderr)
            return 2
        print("estimation: NannyML CBPE ...", file=sys.stderr, flush=True)
        peers, version = nannyml(streams)
    print(
        f"Shift-aware settings: {settings}; NannyML {version or 'not run'}; "
        f"{'--quick' if args.quick else 'full'} run, seeded."
    )
    summaries = []
    for stream in streams:
        print(f"estimation: modelmeter on {stream.name} ...", file=sys.stderr, flush=True)
        ours = run_ours(stream, settings)
        summaries.append(report(stream, ours, peers.get(stream.name)))
    goals(summaries)
    print("\n### One refit at the largest sample (best of 3)\n")
    for stream in streams:
        print(refit_timing(stream, settings))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\nnproc {os.cpu_count()}, load average {load}")
    print(f"\nwhole script {time.perf_counter() - started:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
