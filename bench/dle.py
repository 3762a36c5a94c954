"""Regression performance before labels: modelmeter's loss model against NannyML's DLE.

    .venv/bin/python bench/dle.py                  # tables on stdout
    .venv/bin/python bench/dle.py --write-results  # also the bench/RESULTS.md section

Two regression data sets with covariate shift, each cut into analysis windows; per window the
realized MAE and RMSE (from the labels), modelmeter's estimate (the real ModelMonitor, each
window alone in the sliding window, no labels) and NannyML's ``DLE`` on the same chunks
(LightGBM loss models, ``tune_hyperparameters=False``), and the mean |estimated - realized|:

- ``synthetic``: seeded. 5 numeric features and a categorical one; the noise grows with
  ``x1`` (sd 0.3 + 0.7 x1^2) and is 1.5 times larger in region "c"; the model is a linear
  regression fitted on other rows. Reference 60,000 rows; the live stream (60,000 rows, 12
  windows of 5,000) moves ``x1`` from mean 0 to mean 1.5, into the noisy region.
- ``diabetes``: scikit-learn's bundled diabetes data (442 rows), a ridge model fitted on a
  third; the rows sorted by ``bmi``: the lower half is the reference, the upper half 4
  windows (covariate shift by construction; small, so noisy for every method).

Also measured: the loss model's fit on 60,000 rows, and ``observe`` throughput of the
synthetic regression monitor with and without the loss model (batches of 100 and 10,000).
NannyML runs in bench/.venv-peers (it pins plotly<6) as a subprocess of this script
(``--nannyml DATA.npz``, JSON on stdout), like bench/peers.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
T0 = 1_000_000.0
WINDOW = 60.0


def synthetic(seed: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)

    def rows(n: int, shift: np.ndarray) -> dict[str, np.ndarray]:
        x = rng.normal(size=(n, 5))
        x[:, 0] += shift
        region = np.array(["a", "b", "c"], dtype=object)[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
        signal = x @ np.array([1.0, -0.5, 0.8, 0.0, 0.3]) + 0.4 * x[:, 1] ** 2
        noise = (0.3 + 0.7 * x[:, 0] ** 2) * np.where(region == "c", 1.5, 1.0)
        y = signal + rng.normal(size=n) * noise
        return {"x": x, "region": region, "y": y}

    train = rows(20_000, np.zeros(20_000))
    coef, *_ = np.linalg.lstsq(np.column_stack([train["x"], np.ones(20_000)]), train["y"])

    def predict(data: dict[str, np.ndarray]) -> np.ndarray:
        out: np.ndarray = np.column_stack([data["x"], np.ones(len(data["y"]))]) @ coef
        return out

    reference = rows(60_000, np.zeros(60_000))
    live = rows(60_000, np.linspace(0.0, 1.5, 60_000))
    return _pack(reference, live, predict, [f"x{i + 1}" for i in range(5)], 5_000)


def diabetes() -> dict[str, Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes()
    x, y = data.data, data.target
    names = list(data.feature_names)
    order = np.argsort(x[:, names.index("bmi")], kind="stable")
    x, y = x[order], y[order]
    rng = np.random.default_rng(5)
    fit_rows = rng.random(len(y)) < 1 / 3
    model = Ridge(alpha=0.1).fit(x[fit_rows], y[fit_rows])
    half = len(y) // 2
    region = np.where(x[:, names.index("sex")] > 0, "m", "f").astype(object)
    numeric = [n for n in names if n != "sex"]
    columns = [names.index(n) for n in numeric]

    def part(sl: slice) -> dict[str, np.ndarray]:
        return {"x": x[sl][:, columns], "region": region[sl], "y": y[sl], "full": x[sl]}

    def predict(d: dict[str, np.ndarray]) -> np.ndarray:
        out: np.ndarray = model.predict(d["full"])
        return out

    return _pack(part(slice(0, half)), part(slice(half, None)), predict, numeric, 55)


def _pack(
    reference: dict[str, np.ndarray],
    live: dict[str, np.ndarray],
    predict: Any,
    numeric: list[str],
    chunk: int,
) -> dict[str, Any]:
    return {
        "numeric": numeric,
        "chunk": chunk,
        "ref_x": reference["x"],
        "ref_region": reference["region"].astype(str),
        "ref_pred": predict(reference),
        "ref_y": reference["y"],
        "x": live["x"],
        "region": live["region"].astype(str),
        "pred": predict(live),
        "y": live["y"],
    }


def chunks(n: int, size: int) -> list[slice]:
    return [slice(s, s + size) for s in range(0, n - size + 1, size)]


def realized(data: dict[str, Any]) -> list[tuple[float, float]]:
    out = []
    for sl in chunks(len(data["y"]), data["chunk"]):
        error = data["pred"][sl] - data["y"][sl]
        out.append((float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))))
    return out


def monitor_for(data: dict[str, Any], loss: bool = True) -> Any:
    from modelmeter.engine import FeatureSpec, ModelMonitor, MonitorConfig, ReferenceData

    features = tuple(FeatureSpec(n, "numeric") for n in data["numeric"])
    config = MonitorConfig(
        task="regression",
        features=(*features, FeatureSpec("region", "categorical")),
        window_seconds=WINDOW,
        bucket_seconds=WINDOW,
        min_samples=min(100, data["chunk"]),
        multivariate=None,
    )
    columns = {n: data["ref_x"][:, j] for j, n in enumerate(data["numeric"])}
    columns["region"] = data["ref_region"].astype(object)
    reference = ReferenceData(columns, data["ref_pred"], data["ref_y"])
    if loss:
        return ModelMonitor(config, reference)
    original = ModelMonitor._fit_loss
    ModelMonitor._fit_loss = lambda self, ref: None  # type: ignore[method-assign]
    try:
        return ModelMonitor(config, reference)
    finally:
        ModelMonitor._fit_loss = original  # type: ignore[method-assign]


def batch_of(data: dict[str, Any], sl: slice, t: float) -> Any:
    from modelmeter.engine import PredictionBatch

    columns = {n: np.ascontiguousarray(data["x"][sl, j]) for j, n in enumerate(data["numeric"])}
    columns["region"] = data["region"][sl].astype(object)
    n = len(data["y"][sl])
    return PredictionBatch(np.full(n, t), columns, data["pred"][sl])


def ours(data: dict[str, Any]) -> tuple[list[tuple[float, float]], float]:
    """Per window (mae, rmse) estimated by the monitor, and the construction time."""
    start = time.perf_counter()
    monitor = monitor_for(data)
    fit_seconds = time.perf_counter() - start
    out = []
    for k, sl in enumerate(chunks(len(data["y"]), data["chunk"])):
        t = T0 + 10 * WINDOW * k  # each window alone: the previous one has expired
        monitor.observe(batch_of(data, sl, t), now=t)
        figures = monitor.snapshot(t).estimated_regression
        out.append((figures.mae, figures.rmse))
    return out, fit_seconds


def nannyml(data: dict[str, Any]) -> dict[str, Any]:
    if not PEERS_PYTHON.exists():
        print("creating bench/.venv-peers (NannyML, Evidently; a few minutes) ...", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEERS_PYTHON.parent.parent)], check=True)
        subprocess.run(
            [
                str(PEERS_PYTHON),
                "-m",
                "pip",
                "install",
                "-r",
                str(BENCH / "requirements-peers.txt"),
            ],
            check=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **{k: v for k, v in data.items() if isinstance(v, np.ndarray)},
                 numeric=np.array(data["numeric"]), chunk=np.array(data["chunk"]))  # fmt: skip
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        run = subprocess.run(
            [str(PEERS_PYTHON), __file__, "--nannyml", str(path)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def run_nannyml(path: str) -> None:
    """Inside bench/.venv-peers: NannyML's DLE on the chunks; one JSON line on stdout."""
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import logging

    logging.disable(logging.WARNING)
    from importlib.metadata import version

    import nannyml as nml
    import pandas as pd

    data = np.load(path, allow_pickle=False)
    numeric = [str(n) for n in data["numeric"]]
    chunk = int(data["chunk"])

    def frame(prefix: str, labels: bool) -> pd.DataFrame:
        df = pd.DataFrame(data[f"{prefix}x"], columns=numeric)
        df["region"] = pd.Categorical(data[f"{prefix}region"])
        df["y_pred"] = data[f"{prefix}pred"]
        if labels:
            df["y_true"] = data[f"{prefix}y"]
        return df

    reference, analysis = frame("ref_", True), frame("", False)
    analysis = analysis.iloc[: len(analysis) // chunk * chunk]
    estimator = nml.DLE(
        feature_column_names=[*numeric, "region"],
        y_pred="y_pred",
        y_true="y_true",
        metrics=["mae", "rmse"],
        chunk_size=chunk,
        tune_hyperparameters=False,
    )
    start = time.perf_counter()
    estimator.fit(reference)
    fit_seconds = time.perf_counter() - start
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    out = {
        "version": version("nannyml"),
        "fit_seconds": fit_seconds,
        "mae": result[("mae", "value")].tolist(),
        "rmse": result[("rmse", "value")].tolist(),
    }
    print(json.dumps(out), flush=True)


def throughput(data: dict[str, Any]) -> dict[str, dict[int, float]]:
    """observe() rows per CPU second with and without the loss model."""
    out: dict[str, dict[int, float]] = {}
    n = 60_000
    for name, loss in (("with loss model", True), ("without", False)):
        monitor = monitor_for(data, loss=loss)
        out[name] = {}
        for size in (100, 10_000):
            batches = [batch_of(data, slice(s, s + size), T0) for s in range(0, n, size)]
            best = float("inf")
            for _ in range(3):
                cpu = time.process_time()
                for b in batches:
                    monitor.observe(b, now=T0)
                best = min(best, time.process_time() - cpu)
            out[name][size] = n / best
    return out


def machine() -> str:
    memory = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.split("\n")[1]
    total = memory.split()[1]
    return (
        f"{platform.platform()}, Python {platform.python_version()}, nproc {os.cpu_count()}, "
        f"{total} GiB RAM (free -g), {datetime.date.today().isoformat()}"
    )


def report(write: bool) -> None:
    from modelmeter.engine.loss import MAX_ITER, MAX_ROWS

    lines = ["## Regression performance before labels (DLE)", ""]
    lines += [
        "`.venv/bin/python bench/dle.py --write-results` (NannyML in bench/.venv-peers). "
        f"Machine: {machine()}.",
        "",
        "Per window: realized MAE/RMSE (labels), modelmeter's estimate (the real ModelMonitor, "
        "each window alone, no labels) and NannyML's `DLE` (LightGBM, "
        "`tune_hyperparameters=False`) on the same chunks. Our loss model: "
        f"HistGradientBoostingRegressor, Poisson loss, no interactions, {MAX_ITER} rounds, "
        f"at most {MAX_ROWS:,} reference rows.",
        "",
    ]
    summary = []
    for name, data in (("synthetic", synthetic()), ("diabetes", diabetes())):
        truth = realized(data)
        mine, fit_seconds = ours(data)
        peer = nannyml(data)
        lines += [
            f"### {name}: {len(data['ref_y']):,} reference rows, {len(truth)} windows of "
            f"{data['chunk']:,}",
            "",
            "| window | realized MAE | ours | NannyML | realized RMSE | ours | NannyML |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        errors = {key: [] for key in ("mae ours", "mae nml", "rmse ours", "rmse nml")}
        for k, ((mae, rmse), (our_mae, our_rmse), nml_mae, nml_rmse) in enumerate(
            zip(truth, mine, peer["mae"], peer["rmse"], strict=True)
        ):
            errors["mae ours"].append(abs(our_mae - mae))
            errors["mae nml"].append(abs(nml_mae - mae))
            errors["rmse ours"].append(abs(our_rmse - rmse))
            errors["rmse nml"].append(abs(nml_rmse - rmse))
            lines.append(
                f"| {k} | {mae:.4f} | {our_mae:.4f} | {nml_mae:.4f} | {rmse:.4f} | "
                f"{our_rmse:.4f} | {nml_rmse:.4f} |"
            )
        mean = {key: float(np.mean(v)) for key, v in errors.items()}
        lines += [
            "",
            f"Mean |estimated − realized|: MAE ours {mean['mae ours']:.4f}, NannyML "
            f"{mean['mae nml']:.4f}; RMSE ours {mean['rmse ours']:.4f}, NannyML "
            f"{mean['rmse nml']:.4f}. Fit: ours {fit_seconds:.2f} s (the whole monitor), "
            f"NannyML {peer['fit_seconds']:.2f} s (NannyML {peer['version']}).",
            "",
        ]
        summary.append((name, mean))
        print("\n".join(lines[-(len(truth) + 6) :]), flush=True)
    rates = throughput(synthetic())
    lines += [
        "### observe() cost of the loss model (synthetic: 5 numeric + 1 categorical feature)",
        "",
        "| batch | with loss model (rows/CPU-s) | without (rows/CPU-s) |",
        "| ---: | ---: | ---: |",
    ]
    for size in (100, 10_000):
        lines.append(
            f"| {size:,} | {rates['with loss model'][size]:,.0f} | {rates['without'][size]:,.0f} |"
        )
    lines.append("")
    print("\n".join(lines[-6:]))
    if write:
        path = BENCH / "RESULTS.md"
        text = path.read_text()
        marker = "## Regression performance before labels (DLE)"
        section = "\n".join(lines)
        if marker in text:  # replace this section only, keep the ones after it
            start = text.index(marker)
            end = text.find("\n## ", start + len(marker))
            rest = "" if end < 0 else text[end:]
            text = text[:start] + section.rstrip() + "\n" + rest
        else:
            text = text.rstrip() + "\n\n" + section
        path.write_text(text.rstrip() + "\n")
        print(f"wrote {path}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--nannyml", metavar="DATA.npz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.nannyml:
        run_nannyml(args.nannyml)
        return 0
    report(args.write_results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
