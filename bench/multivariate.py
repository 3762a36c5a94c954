"""Multivariate drift pinned against NannyML's DataReconstructionDriftCalculator.

    .venv/bin/python bench/multivariate.py                  # table on stdout
    .venv/bin/python bench/multivariate.py --write-results  # also bench/RESULTS.md section

Seeded data: 4 numeric features (two pairs correlated +0.8, 2 % missing values in one) and
2 categorical ones (one tied to a numeric feature, 1 % missing), a reference of 20,000 rows
and 10 analysis chunks of 2,000 rows; the correlation of the first pair flips to -0.8 from
chunk 5 on (marginals unchanged). NannyML runs in bench/.venv-peers (it pins plotly<6), this
script calls it as a subprocess (``--nannyml DATA.npz``, one JSON line on stdout), as
bench/peers.py does. Ours is the real ModelMonitor: each chunk alone in a window.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
NUMERIC = ["a", "b", "c", "d"]
CATEGORICAL = ["s", "t"]
VOCABULARY = np.array(["p", "q", "r", "s"])
REFERENCE_ROWS, CHUNK, CHUNKS, FLIP_AT = 20_000, 2_000, 10, 5
WINDOW = 60.0


def generate(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def rows(n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
        ab = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
        cd = rng.multivariate_normal([5, -1], [[4, 1.6], [1.6, 1]], n)
        numeric = np.column_stack([ab, cd])
        numeric[rng.random(n) < 0.02, 2] = np.nan
        tied = np.clip(np.digitize(ab[:, 0] + 0.5 * rng.normal(size=n), [-0.8, 0, 0.8]), 0, 3)
        other = rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05])
        categorical = VOCABULARY[np.column_stack([tied, other])].astype(object)
        categorical[rng.random(n) < 0.01, 0] = None
        return numeric, categorical

    ref_numeric, ref_categorical = rows(REFERENCE_ROWS, 0.8)
    parts = [rows(CHUNK, 0.8 if i < FLIP_AT else -0.8) for i in range(CHUNKS)]
    return {
        "reference_numeric": ref_numeric,
        "reference_categorical": ref_categorical,
        "analysis_numeric": np.concatenate([p[0] for p in parts]),
        "analysis_categorical": np.concatenate([p[1] for p in parts]),
    }


def run_nannyml(path: str) -> dict[str, Any]:
    """Inside bench/.venv-peers: NannyML's values per analysis chunk and its thresholds."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import warnings

    import nannyml as nml
    import pandas as pd

    warnings.filterwarnings("ignore")
    data = np.load(path, allow_pickle=True)

    def frame(prefix: str) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for j, name in enumerate(NUMERIC):
            columns[name] = data[f"{prefix}_numeric"][:, j]
        for j, name in enumerate(CATEGORICAL):
            # NaN, not None: SimpleImputer(missing_values=np.nan) does not see None as missing
            column = data[f"{prefix}_categorical"][:, j]
            columns[name] = pd.Series(column, dtype=object).where(column != None, np.nan)  # noqa: E711
        return pd.DataFrame(columns)

    calculator = nml.DataReconstructionDriftCalculator(
        column_names=NUMERIC + CATEGORICAL, chunk_size=CHUNK, n_components=0.65
    )
    calculator.fit(frame("reference"))
    result = calculator.calculate(frame("analysis")).filter(period="analysis").to_df()
    key = "reconstruction_error"
    return {
        "version": nml.__version__,
        "values": result[(key, "value")].tolist(),
        "lower": result[(key, "lower_threshold")].tolist(),
        "upper": result[(key, "upper_threshold")].tolist(),
        "alert": result[(key, "alert")].astype(bool).tolist(),
        "components": int(calculator._pca.n_components_),
    }


def run_ours(data: dict[str, np.ndarray]) -> dict[str, Any]:
    from modelmeter.engine import (
        FeatureSpec,
        ModelMonitor,
        MonitorConfig,
        MultivariateConfig,
        PredictionBatch,
        ReferenceData,
    )

    features = tuple(FeatureSpec(n, "numeric") for n in NUMERIC) + tuple(
        FeatureSpec(c, "categorical") for c in CATEGORICAL
    )
    config = MonitorConfig(
        task="regression",
        features=features,
        window_seconds=WINDOW,
        bucket_seconds=WINDOW,
        min_samples=100,
        multivariate=MultivariateConfig("pca", 0.65, 3.0),
    )

    def columns(prefix: str, rows: slice) -> dict[str, np.ndarray]:
        out = {
            n: np.ascontiguousarray(data[f"{prefix}_numeric"][rows, j])
            for j, n in enumerate(NUMERIC)
        }
        for j, name in enumerate(CATEGORICAL):
            out[name] = data[f"{prefix}_categorical"][rows, j]
        return out

    zeros = np.zeros(REFERENCE_ROWS)
    monitor = ModelMonitor(config, ReferenceData(columns("reference", slice(None)), zeros, zeros))
    assert monitor._multivariate is not None
    out: dict[str, Any] = {"values": [], "lower": [], "upper": [], "alert": []}
    out["components"] = monitor._multivariate.n_components
    for i in range(CHUNKS):
        t = 1_000_000.0 + 10 * WINDOW * i  # each chunk alone in its window
        rows = slice(i * CHUNK, (i + 1) * CHUNK)
        monitor.observe(
            PredictionBatch(np.full(CHUNK, t), columns("analysis", rows), np.zeros(CHUNK))
        )
        figures = monitor.snapshot(t + 1).multivariate
        assert figures is not None
        out["values"].append(figures.error)
        out["lower"].append(figures.lower)
        out["upper"].append(figures.upper)
        out["alert"].append(figures.drifted)
    return out


def table(nannyml: dict[str, Any], ours: dict[str, Any]) -> tuple[str, float]:
    lines = [
        "| chunk | correlation a,b | NannyML error | ours | abs. difference | NannyML band | "
        "our band | NannyML alert | our flag |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    worst = 0.0
    for i in range(CHUNKS):
        theirs, mine = nannyml["values"][i], ours["values"][i]
        worst = max(worst, abs(theirs - mine))
        lines.append(
            f"| {i} | {'+0.8' if i < FLIP_AT else '-0.8'} | {theirs:.12f} | {mine:.12f} | "
            f"{abs(theirs - mine):.1e} | {nannyml['lower'][i]:.4f} – {nannyml['upper'][i]:.4f} | "
            f"{ours['lower'][i]:.4f} – {ours['upper'][i]:.4f} | "
            f"{'yes' if nannyml['alert'][i] else 'no'} | {'yes' if ours['alert'][i] else 'no'} |"
        )
    return "\n".join(lines), worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nannyml", metavar="DATA.npz", help="(internal) run NannyML on DATA")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if args.nannyml:
        print(json.dumps(run_nannyml(args.nannyml)))
        return 0
    if not PEERS_PYTHON.exists():
        print(
            "bench/.venv-peers is missing: python3 -m venv bench/.venv-peers && "
            "bench/.venv-peers/bin/pip install -r bench/requirements-peers.txt",
            file=sys.stderr,
        )
        return 2
    data = generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "data.npz")
        np.savez(path, **data)
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        done = subprocess.run(
            [str(PEERS_PYTHON), __file__, "--nannyml", path],
            capture_output=True, text=True, env=env, check=True, timeout=600,
        )  # fmt: skip
    nannyml = json.loads(done.stdout.strip().splitlines()[-1])
    ours = run_ours(data)
    text, worst = table(nannyml, ours)
    summary = (
        f"Components kept: NannyML {nannyml['components']}, ours {ours['components']}. "
        f"Largest |NannyML - ours| over the {CHUNKS} chunks: {worst:.1e}."
    )
    print(text)
    print(summary)
    if args.write_results:
        description = __doc__.split("\n\n")[2].replace("\n", " ")
        section = (
            "## Multivariate drift vs NannyML\n\n"
            "Command: `.venv/bin/python bench/multivariate.py --write-results` (NannyML "
            f"{nannyml['version']} in bench/.venv-peers). {description}\n\n"
            + text + "\n\n" + summary + "\n"
        )  # fmt: skip
        results = BENCH / "RESULTS.md"
        current = results.read_text(encoding="utf-8")
        start = current.find("## Multivariate drift vs NannyML")
        if start >= 0:
            end = current.find("\n## ", start + 1)
            current = current[:start] + (current[end + 1 :] if end >= 0 else "")
        results.write_text(current.rstrip("\n") + "\n\n" + section, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
