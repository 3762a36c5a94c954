"""Time the peers' drift computation on the data written by bench/engine.py.

Runs inside bench/.venv-peers (Evidently 0.7.x, NannyML 0.13.x), never in the project venv:
NannyML pins plotly<6. bench/engine.py calls it as a subprocess:

    bench/.venv-peers/bin/python bench/peers.py DATA.npz --rows 100000 1000000

and reads one JSON object per line on stdout: {"tool", "rows", "seconds", "cpu_seconds",
"fit_seconds"}. Only the computation is timed (loading the file and building the
DataFrames are not). NML_DISABLE_USAGE_LOGGING=1 is set before NannyML is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from typing import Any

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import numpy as np
import pandas as pd


def frames(path: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    data = np.load(path, allow_pickle=False)
    numeric = [str(n) for n in data["numeric_names"]]
    categorical = [str(n) for n in data["categorical_names"]]

    def frame(prefix: str) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for j, name in enumerate(numeric):
            columns[name] = data[f"{prefix}_numeric"][:, j]
        for j, name in enumerate(categorical):
            columns[name] = data[f"{prefix}_categorical"][:, j].astype(object)
        return pd.DataFrame(columns)

    return frame("reference"), frame("current"), numeric, categorical


def run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> dict[str, float]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start, cpu = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    ref = Dataset.from_pandas(reference, data_definition=definition)
    cur = Dataset.from_pandas(current, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    snapshot.dict()  # make sure every metric is computed
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "fit_seconds": 0.0,
    }


def run_nannyml(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> dict[str, float]:
    import nannyml as nml

    fit_start = time.perf_counter()
    calculator = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        treat_as_categorical=categorical,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
        categorical_methods=["chi2", "jensen_shannon"],
        chunk_number=1,
    )
    calculator.fit(reference)
    fit_seconds = time.perf_counter() - fit_start
    start, cpu = time.perf_counter(), time.process_time()
    result = calculator.calculate(current)
    result.to_df()
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "fit_seconds": fit_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help=".npz file written by bench/engine.py")
    parser.add_argument("--rows", type=int, nargs="+", required=True)
    parser.add_argument("--tools", nargs="+", default=["nannyml", "evidently"])
    parser.add_argument("--repeat", type=int, default=1, help="best of N (Evidently: 1 run)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    reference, current, numeric, categorical = frames(args.data)
    runners = {"evidently": run_evidently, "nannyml": run_nannyml}
    from importlib.metadata import version

    versions = {tool: version(tool) for tool in args.tools}
    print(json.dumps({"versions": {**versions, "pandas": pd.__version__}}), flush=True)
    for rows in args.rows:
        window = current.iloc[:rows].reset_index(drop=True)
        for tool in args.tools:
            print(f"peers: {tool} on {rows:,} rows ...", file=sys.stderr, flush=True)
            repeat = 1 if tool == "evidently" else args.repeat
            runs = [runners[tool](reference, window, numeric, categorical) for _ in range(repeat)]
            best = {key: min(run[key] for run in runs) for key in runs[0]}
            print(json.dumps({"tool": tool, "rows": rows, **best}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
