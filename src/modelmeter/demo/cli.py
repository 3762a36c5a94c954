"""Run the demo model service and replay its real data stream to it, labels following later.

One process, three threads: the model service (HTTP, reporting every prediction through the
SDK), the replayer (sends the stream at ``--speed`` rows/s) and the label feeder (sends the
true labels ``--label-delay`` seconds later). SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import httpx

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's flags to ``parser``."""
    env = os.environ.get
    parser.add_argument(
        "--collector-url",
        default=env("MODELMETER_URL", "http://127.0.0.1:8000"),
        help="the collector's base URL (env MODELMETER_URL)",
    )
    parser.add_argument(
        "--token",
        default=env("MODELMETER_TOKEN"),
        help="bearer token for the collector's write API (env MODELMETER_TOKEN)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env("MODELMETER_DATA_DIR", "./modelmeter-data")),
        help="where the demo keeps its spec.yaml and reference.csv (in demo-<dataset>/)",
    )
    parser.add_argument(
        "--dataset",
        choices=["rainfall", "sea"],
        default="rainfall",
        help="rainfall: NOAA daily weather (real); sea: River's SEA stream with a concept drift",
    )
    parser.add_argument("--model", default=None, help="model name; None: the dataset's name")
    parser.add_argument("--model-host", default="127.0.0.1", help="model service address")
    parser.add_argument("--model-port", type=int, default=8001, help="model service port")
    parser.add_argument("--speed", type=float, default=20.0, help="rows (days) per second")
    parser.add_argument(
        "--label-delay", type=float, default=10.0, help="seconds until a true label arrives"
    )
    parser.add_argument(
        "--loop", action="store_true", help="replay again from the start at the end"
    )
    parser.add_argument("--start-row", type=int, default=None, help="first row to replay")
    parser.add_argument("--end-row", type=int, default=None, help="replay stops before this row")
    parser.add_argument("--window", default="2m", help="spec window length (first run only)")
    parser.add_argument("--bucket", default="5s", help="spec bucket length (first run only)")
    parser.add_argument(
        "--min-samples",
        type=int,
        default=400,
        help="spec minimum sample size; above 365 rows (days), so that one season alone "
        "never looks like drift",
    )
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the collector to answer"
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="print where the data drifts (per-chunk accuracy and per-feature exact KS, "
        "scipy's ks_2samp) and exit",
    )


def say(message: str) -> None:
    print(f"modelmeter demo: {message}", flush=True)


def wait_for_collector(url: str, timeout: float) -> str | None:
    """None once ``url``/healthz answers, else why not (after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=2.0)
            if response.is_success:
                return None
            problem = f"/healthz answered HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}"
        if time.monotonic() >= deadline:
            return problem
        time.sleep(0.25)


def run(args: argparse.Namespace) -> int:
    """Start service, feeder and replayer; return when the replay ends or a signal stops it."""
    from modelmeter.demo import artifacts, data, model, replay, service
    from modelmeter.sdk import Client, monitor

    if args.measure:
        from modelmeter.demo.measure import drift_table, format_table

        dataset = data.load(args.dataset)
        print(format_table(drift_table(dataset, model.train(dataset))))
        return 0

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)

    url = args.collector_url.rstrip("/")
    problem = wait_for_collector(url, args.wait)
    if problem is not None:
        say(
            f"cannot reach the collector at {url} ({problem}); start it with "
            "`modelmeter collector` or pass --collector-url"
        )
        return 2
    try:
        service.check_port_free(args.model_host, args.model_port)
    except service.PortInUseError as exc:
        say(str(exc))
        return 2

    started = time.monotonic()
    dataset = data.load(args.dataset)
    name = args.model or dataset.name
    say(f"data: {dataset.description}, {len(dataset):,} rows")
    lo, hi = dataset.train_rows
    say(f"training HistGradientBoostingClassifier on rows {lo:,}..{hi:,}")
    estimator = model.train(dataset)
    reference = model.reference_frame(estimator, dataset)
    accuracy = float((reference["prediction"] == reference["label"]).mean())
    r_lo, r_hi = dataset.reference_rows
    say(
        f"trained in {time.monotonic() - started:.1f} s; accuracy on the reference rows "
        f"{r_lo:,}..{r_hi:,}: {accuracy:.3f}"
    )
    train_frame = dataset.frame.iloc[lo:hi]
    files, written = artifacts.ensure_artifacts(
        args.data_dir / f"demo-{dataset.name}",
        reference,
        train_frame,
        args.window,
        args.bucket,
        args.min_samples,
        reference_accuracy=accuracy,
    )
    say(f"{'wrote' if written else 'reusing'} {files.spec_path} and {files.reference_path.name}")
    try:
        artifacts.register(url, name, files, args.token)
    except (RuntimeError, httpx.HTTPError) as exc:
        say(f"could not register model {name!r}: {exc}")
        return 2
    say(f"registered model {name!r} with the collector at {url}")

    predictions_client = Client(url, name, token=args.token, flush_interval=0.5)
    labels_client = Client(url, name, token=args.token, flush_interval=0.5)
    feeder = replay.LabelFeeder(labels_client, args.label_delay, stop).start()
    app = service.create_app(monitor(estimator, predictions_client), list(dataset.frame.columns))
    server = service.ModelService(app, args.model_host, args.model_port)
    try:
        server.start()
    except service.PortInUseError as exc:
        say(str(exc))
        stop.set()
        return 2
    say(f"model service on {server.url}/predict; replaying at {args.speed:g} rows/s")
    replayer = replay.Replayer(
        server.url,
        dataset,
        args.speed,
        feeder,
        stop,
        start=args.start_row,
        end=args.end_row,
        loop=args.loop,
        progress=say,
    )
    code = 0
    try:
        replayer.run()
        # let the last labels come due, unless told to stop
        stop.wait(args.label_delay + 1.0)
    except KeyboardInterrupt:
        code = 130
    finally:
        stop.set()
        feeder.join()
        server.stop()
        for client in (predictions_client, labels_client):
            client.close(timeout=5.0)
        stats = predictions_client.stats
        say(
            f"stopped: {replayer.stats.sent:,} rows replayed, {stats['sent']:,} predictions "
            f"and {labels_client.stats['sent']:,} labels sent, {stats['dropped']} dropped"
        )
    return code


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__)
    configure(parser)
    sys.exit(run(parser.parse_args()))
