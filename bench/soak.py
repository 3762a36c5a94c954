"""Soak benchmark: the real collector under steady traffic, version releases and kill -9.

    .venv/bin/python bench/soak.py [--duration 30m] [--models 20] [--rate 2000] [--json OUT]
    .venv/bin/python bench/soak.py --duration 90s          # the short version

What it does
------------
Starts the real collector (``python -m modelmeter collector``, tests/helpers.py) on a free
loopback port with ``MODELMETER_MAX_VERSIONS=3`` (so versions really retire) and a
``MODELMETER_LABEL_TTL`` longer than the run (so no stored prediction expires), registers
``--models`` binary models (spec and reference uploaded as multipart), then drives, from one
asyncio client with plain httpx:

* predictions: ``--rate`` events/s in total, one request per model every ``--tick`` seconds;
* labels: for 9 of 10 acknowledged predictions, ``--label-delay`` seconds after the ack;
* releases: each model's ``version`` moves v1, v2, ... every ``--rotate-every`` (staggered
  across models), so the collector retires the least recently used version;
* crashes: ``--restarts`` ``kill -9`` of the collector's process group, evenly spaced (at 1/3
  and 2/3 of the run by default), each followed at once by a restart on the same port and
  data directory. Requests that fail (connection refused, reset, 5xx, timeout) are retried
  with the same body until they get a 2xx; the ids are the same, so a retry of a request that
  was committed before the crash answers "duplicates".

Every ``--sample-every`` seconds it samples the collector's RSS (psutil), the size of the
store files (``modelmeter.sqlite3``, ``-wal``), the exported ``modelmeter_store_bytes`` and
``modelmeter_store_wal_bytes`` gauges (absent in older collectors: shown as "-"), and the
p99 latency of the requests that completed in the interval.

Counting: what "lost: 0" proves
-------------------------------
An event is *acknowledged* when a 2xx response covered it and did not list it in
``rejected`` (``accepted + duplicates``: a duplicate is an id the collector already stored,
from an attempt whose answer the crash swallowed). Ids are ``v{n}-{seq}``, so the client knows
exactly which ids of which version were acknowledged. Two independent checks, per
``(model, version)``:

1. **Engine counter.** ``model_predictions_total{model, version}`` comes from the engine's
   checkpointed state (it survives kill -9), but a retired version's series leave /metrics.
   So each version is read while it is still live: when the client moves a model from vN to
   vN+1 it has no request of vN in flight, and reads vN's counter at once (vN retires only two
   releases later); the versions live at the end are read again after the last request. The
   counter must equal the acknowledged count. For the live versions, the sum of
   ``model_labeled_predictions_total`` must also equal the acknowledged labels.
2. **Store.** After the collector is stopped, the SQLite file is opened read-only and every
   acknowledged id must be in ``predictions`` with its version (and every acknowledged label
   must have set ``labeled``). The TTL is longer than the run, so nothing may have expired.

Labels are sent one request per version, so the answer (``matched``, ``duplicates``,
``pending``, ``retired``) is attributed exactly. A label whose version retired before it
arrived (possible after an outage: the labels waited in the client while the model moved on)
is answered ``retired``: the collector counts it and never applies it, as designed; it is
reported, not counted as lost. ``pending`` (the collector did not find an acknowledged
prediction) is a loss. After an outage, a model moves to at most one new version at once.

``lost`` is the number of acknowledged events missing from either check (a version whose
counter could not be read counts all its events as unproven). "lost: 0" is printed only when
both checks pass for every version; otherwise the run exits 1.

Slopes
------
RSS restarts with each collector process, so its slope (least squares, bytes per minute) is
given per process, after ``--warmup`` seconds of that process. Store bytes survive restarts:
one slope after the warm-up of the run. The predictions table grows with every prediction
until ``MODELMETER_LABEL_TTL`` (it keeps ids for idempotence and label joins); its share of
the store slope is its growth rate (acknowledged events per minute) times the bytes per row
measured on the final file (``dbstat``: the ``predictions`` table and its index). The rest
of the slope is what would still grow once the TTL deletes rows as fast as they arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import ManagedProcess, collector_process, free_port  # noqa: E402
from modelmeter.units import parse_duration  # noqa: E402
from service_support import events as make_events  # noqa: E402
from service_support import reference_csv, spec_dict  # noqa: E402

JSON = {"content-type": "application/json"}
MiB = 1024 * 1024
RETRY_SECONDS = 0.2
GIVE_UP_SECONDS = 120.0


@dataclass
class SoakConfig:
    """Parameters of one soak run (the command-line flags)."""

    duration: float = 1800.0
    models: int = 20
    rate: float = 2000.0
    tick: float = 0.5
    features: int = 10
    label_delay: float = 2.0
    rotate_every: float | None = None  # default: duration / 10
    max_versions: int = 3
    restarts: int = 2
    sample_every: float = 5.0
    warmup: float | None = None  # default: half of one collector's lifetime, at most 5 min
    data_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.models < 1 or self.rate <= 0 or self.tick <= 0:
            raise ValueError("duration, models, rate and tick must be positive")
        if self.max_versions < 2:
            raise ValueError("max_versions must be at least 2 (a version is read after it is left)")

    @property
    def rotate_seconds(self) -> float:
        return self.rotate_every if self.rotate_every else max(self.duration / 10, 5.0)

    @property
    def warmup_seconds(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return min(300.0, self.duration / (self.restarts + 1) / 2)


@dataclass
class VersionCount:
    """What the client knows about one (model, version)."""

    acked: list[np.ndarray] = field(default_factory=list)  # acknowledged seqs, per request
    labels_acked: int = 0
    labels_pending: int = 0  # a label whose prediction the collector did not find: a loss
    labels_retired: int = 0  # answered "retired": its version retired before it arrived
    counted: float | None = None  # model_predictions_total, read while live
    counted_at: str = ""
    labeled_counted: float | None = None

    def acked_seqs(self) -> np.ndarray:
        return np.concatenate(self.acked) if self.acked else np.zeros(0, dtype=np.int64)


def metric_values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric name in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        rest = line[len(name) :]
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            body, _, rest = rest[1:].partition("} ")
            for part in body.split('",'):
                if "=" in part:
                    key, _, value = part.partition("=")
                    labels[key.strip()] = value.strip().strip('"')
        elif rest.startswith(" "):
            rest = rest[1:]
        else:
            continue  # another metric whose name starts with this one
        with contextlib.suppress(ValueError):
            out.append((labels, float(rest.split()[0])))
    return out


def gauge(text: str, name: str) -> float | None:
    values = metric_values(text, name)
    return sum(v for _, v in values) if values else None


def slope_per_minute(ts: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per minute; None below 3 points."""
    if len(ts) < 3 or max(ts) - min(ts) <= 0:
        return None
    return float(np.polyfit(np.asarray(ts) / 60.0, np.asarray(ys, dtype=float), 1)[0])


def p99(values: Sequence[float]) -> float | None:
    return float(np.percentile(values, 99)) if values else None


class Soak:
    """One soak run; :meth:`run` returns the summary (also printed)."""

    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.data_dir = config.data_dir or workdir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "MODELMETER_MAX_VERSIONS": str(config.max_versions),
            "MODELMETER_LABEL_TTL": f"{int(config.duration + 3600)}s",
            "MODELMETER_LOG_LEVEL": "warning",
            **config.env,
        }
        self.proc: ManagedProcess | None = None
        self.pids: list[int] = []
        self.restarts: list[dict[str, float]] = []
        self.names = [f"soak-{i:02d}" for i in range(config.models)]
        self.versions: dict[tuple[str, str], VersionCount] = collections.defaultdict(VersionCount)
        self.used_versions: dict[str, list[str]] = {m: [] for m in self.names}
        self.latencies: list[tuple[float, float]] = []  # (monotonic end, seconds) predictions
        self.label_latencies: list[tuple[float, float]] = []
        self.acked_total = 0
        self.rejected = 0
        self.rejected_reasons: collections.Counter[str] = collections.Counter()
        self.failed_attempts: collections.Counter[str] = collections.Counter()
        self.fatal: list[str] = []
        self.samples: list[dict[str, Any]] = []
        self._ps: psutil.Process | None = None
        self._me = psutil.Process()
        self.sending = True
        self.drivers_done = False
        self.live: dict[str, list[str]] = {}
        self.start = 0.0
        self.labels_todo: dict[str, collections.deque[tuple[float, str, str, str]]] = {
            m: collections.deque() for m in self.names
        }
        pool = make_events(0, 2048, seed=7, n_numeric=config.features)
        self.pool = [
            ({k: v for k, v in e.items() if k not in ("id", "_label")}, e["_label"]) for e in pool
        ]

    # --- the collector ----------------------------------------------------------------------
    def _new_process(self) -> ManagedProcess:
        return collector_process(self.workdir, port=self.port, data_dir=self.data_dir, env=self.env)

    def start_collector(self) -> None:
        self.proc = self._new_process().start(timeout=120)
        self.pids.append(self.proc.pid)

    def log(self, message: str) -> None:
        if not self.config.quiet:
            print(f"[{self.elapsed():7.1f}s] {message}", file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start if self.start else 0.0

    async def register(self, client: httpx.AsyncClient) -> None:
        spec = orjson.dumps(spec_dict(n_numeric=self.config.features))
        reference = reference_csv(n=2000, n_numeric=self.config.features)
        for name in self.names:
            response = await client.put(
                f"/v1/models/{name}",
                files={
                    "spec": ("spec.json", spec, "application/json"),
                    "reference": ("reference.csv", reference, "text/csv"),
                },
                timeout=60.0,
            )
            if response.status_code not in (200, 201):
                raise RuntimeError(f"registering {name}: {response.status_code} {response.text}")

    async def post(
        self, client: httpx.AsyncClient, path: str, body: bytes, latencies: list[Any]
    ) -> dict[str, Any] | None:
        """POST until a 2xx (returned) or a 4xx (recorded as fatal, None)."""
        first = time.monotonic()
        while True:
            t0 = time.perf_counter()
            try:
                response = await client.post(path, content=body, headers=JSON)
            except httpx.HTTPError as exc:
                self.failed_attempts[type(exc).__name__] += 1
            else:
                if response.is_success:
                    latencies.append((time.monotonic(), time.perf_counter() - t0))
                    result: dict[str, Any] = response.json()
                    return result
                self.failed_attempts[f"HTTP {response.status_code}"] += 1
                if response.status_code != 503 and (
                    response.status_code < 500 or self.failed_attempts["HTTP 500"] > 20
                ):
                    self.fatal.append(f"{path}: {response.status_code} {response.text[:300]}")
                    return None
            if time.monotonic() - first > GIVE_UP_SECONDS:
                self.fatal.append(f"{path}: no 2xx for {GIVE_UP_SECONDS:.0f} s")
                return None
            await asyncio.sleep(RETRY_SECONDS)

    async def scrape(self, client: httpx.AsyncClient, retry: bool = True) -> str | None:
        first = time.monotonic()
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get("/metrics", timeout=10.0)
                if response.is_success:
                    return response.text
            if not retry or time.monotonic() - first > GIVE_UP_SECONDS:
                return None
            await asyncio.sleep(RETRY_SECONDS)

    def read_counts(self, text: str, model: str, versions: Sequence[str], when: str) -> None:
        totals = {
            labels.get("version"): value
            for labels, value in metric_values(text, "model_predictions_total")
            if labels.get("model") == model
        }
        labeled: dict[str | None, float] = collections.defaultdict(float)
        for labels, value in metric_values(text, "model_labeled_predictions_total"):
            if labels.get("model") == model:
                labeled[labels.get("version")] += value
        for version in versions:
            count = self.versions[(model, version)]
            if version in totals:
                count.counted = totals[version]
                count.counted_at = when
                count.labeled_counted = labeled.get(version, 0.0)

    # --- traffic ----------------------------------------------------------------------------
    async def drive(self, client: httpx.AsyncClient, index: int) -> None:
        """Predictions of one model: a request every tick, versions rotated."""
        cfg = self.config
        model = self.names[index]
        per_model = cfg.rate / cfg.models
        rotate = cfg.rotate_seconds
        next_rotate = self.start + rotate * (1 + index / cfg.models)
        version_no = 1
        version = "v1"
        self.used_versions[model].append(version)
        seq = 0
        carry = 0.0
        last = time.monotonic()
        next_tick = self.start + cfg.tick * index / cfg.models
        path = f"/v1/models/{model}/predictions"
        while self.sending:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick + cfg.tick, time.monotonic())
            if not self.sending:
                break
            now = time.monotonic()
            if now >= next_rotate:
                text = await self.scrape(client)
                if text is not None:
                    self.read_counts(text, model, [version], f"left at {self.elapsed():.0f}s")
                version_no += 1
                version = f"v{version_no}"
                self.used_versions[model].append(version)
                next_rotate = max(next_rotate + rotate, now + rotate / 2)  # no burst of releases
                seq = 0
            carry += per_model * (now - last)
            last = now
            n = min(int(carry), 5000)
            carry -= n
            if n == 0:
                continue
            seqs = np.arange(seq, seq + n, dtype=np.int64)
            seq += n
            batch = []
            labels = []
            for s in seqs.tolist():
                template, label = self.pool[s % len(self.pool)]
                batch.append({"id": f"{version}-{s}", "version": version, **template})
                labels.append(label)
            result = await self.post(
                client, path, orjson.dumps({"predictions": batch}), self.latencies
            )
            if result is None:
                continue
            rejected = {int(r["index"]) for r in result.get("rejected", [])}
            for r in result.get("rejected", []):
                self.rejected_reasons[str(r.get("error", ""))[:120]] += 1
            keep = np.array([i not in rejected for i in range(n)], dtype=bool)
            acked = seqs[keep]
            if int(result["accepted"]) + int(result.get("duplicates", 0)) != len(acked):
                self.fatal.append(f"{model} {version}: response {result} for {n} events")
            self.versions[(model, version)].acked.append(acked)
            self.acked_total += len(acked)
            self.rejected += len(rejected)
            due = time.monotonic() + cfg.label_delay
            todo = self.labels_todo[model]
            for i in acked.tolist():
                if i % 10 != 9:  # labels for 90 % of the predictions
                    todo.append((due, version, f"{version}-{i}", labels[i - int(seqs[0])]))

    async def label(self, client: httpx.AsyncClient, index: int) -> None:
        """Labels of one model, sent when due (all of them once sending stopped)."""
        cfg = self.config
        model = self.names[index]
        todo = self.labels_todo[model]
        next_tick = self.start + cfg.tick * (index + 0.5) / cfg.models
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick + cfg.tick, time.monotonic())
            now = time.monotonic()
            batch: list[tuple[float, str, str, str]] = []
            while todo and (todo[0][0] <= now or not self.sending) and len(batch) < 5000:
                batch.append(todo.popleft())
            if not batch:
                if self.drivers_done and not todo:
                    return
                continue
            versions = sorted({v for _, v, _, _ in batch})
            for version in versions:  # one request per version: exact accounting
                group = [item for item in batch if item[1] == version]
                await self.send_labels(client, model, version, group)

    async def send_labels(
        self,
        client: httpx.AsyncClient,
        model: str,
        version: str,
        group: list[tuple[float, str, str, str]],
    ) -> None:
        path = f"/v1/models/{model}/labels"
        body = orjson.dumps({"labels": [{"id": i, "label": lab} for _, _, i, lab in group]})
        result = await self.post(client, path, body, self.label_latencies)
        if result is None:
            return
        for r in result.get("rejected", []):
            self.rejected_reasons["label: " + str(r.get("error", ""))[:120]] += 1
        count = self.versions[(model, version)]
        matched = int(result.get("matched", 0)) + int(result.get("duplicates", 0))
        pending = int(result.get("pending", 0))
        retired = int(result.get("retired", 0))
        if matched + pending + retired + len(result.get("rejected", [])) != len(group):
            extra = {k: v for k, v in result.items() if k != "rejected"}
            self.fatal.append(f"{model} {version}: labels answered {extra} for {len(group)}")
        if pending:  # the prediction of an acknowledged id was not found
            self.fatal.append(f"{model} {version}: {pending} labels pending after predictions")
        count.labels_acked += matched
        count.labels_pending += pending
        count.labels_retired += retired

    async def crash(self) -> None:
        """kill -9 at evenly spaced times, restart at once on the same port and data."""
        cfg = self.config
        for k in range(1, cfg.restarts + 1):
            at = self.start + cfg.duration * k / (cfg.restarts + 1)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            assert self.proc is not None
            killed = time.monotonic()
            self.proc.kill()
            self.log(f"kill -9 of collector pid {self.proc.pid}")
            await asyncio.to_thread(self.start_collector)
            ready = time.monotonic()
            before = len(self.latencies)
            while len(self.latencies) == before and self.sending:
                await asyncio.sleep(0.05)
            self.restarts.append(
                {
                    "at_s": round(killed - self.start, 1),
                    "ready_after_s": round(ready - killed, 2),
                    "first_ack_after_s": round(time.monotonic() - killed, 2),
                }
            )
            self.log(f"collector back as pid {self.pids[-1]} after {ready - killed:.1f} s")

    async def sample(self, client: httpx.AsyncClient) -> None:
        while self.sending:
            self.samples.append(await self.take_sample(client))
            await asyncio.sleep(self.config.sample_every)

    async def take_sample(self, client: httpx.AsyncClient) -> dict[str, Any]:
        rss = cpu = None
        pid = None
        if self.proc is not None and self.proc.alive():
            pid = self.proc.pid
            with contextlib.suppress(psutil.Error):
                if self._ps is None or self._ps.pid != pid:
                    self._ps = psutil.Process(pid)
                    self._ps.cpu_percent(None)
                else:
                    cpu = self._ps.cpu_percent(None)
                rss = self._ps.memory_info().rss
        db = self.data_dir / "modelmeter.sqlite3"
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            path = Path(str(db) + suffix)
            sizes[suffix or "db"] = path.stat().st_size if path.exists() else 0
        text = await self.scrape(client, retry=False)
        return {
            "t": round(self.elapsed(), 2),
            "mono": time.monotonic(),
            "pid": pid,
            "rss": rss,
            "db_bytes": sizes["db"],
            "wal_bytes": sizes["-wal"],
            "shm_bytes": sizes["-shm"],
            "store_gauge": gauge(text, "modelmeter_store_bytes") if text else None,
            "wal_gauge": gauge(text, "modelmeter_store_wal_bytes") if text else None,
            "retired": gauge(text, "modelmeter_versions_retired_total") if text else None,
            "acked": self.acked_total,
            "collector_cpu": cpu,  # percent of one core since the last sample
            "client_cpu": self._me.cpu_percent(None),
            "load1": os.getloadavg()[0],
        }

    # --- the run ----------------------------------------------------------------------------
    async def traffic(self) -> str | None:
        cfg = self.config
        limits = httpx.Limits(max_connections=2 * cfg.models + 4)
        async with httpx.AsyncClient(base_url=self.url, timeout=15.0, limits=limits) as client:
            await self.register(client)
            self.start = time.monotonic()
            self.log(
                f"{cfg.models} models, {cfg.rate:.0f} events/s, versions every "
                f"{cfg.rotate_seconds:.0f} s, {cfg.restarts} kill -9, {cfg.duration:.0f} s"
            )
            drivers = [asyncio.create_task(self.drive(client, i)) for i in range(cfg.models)]
            labelers = [asyncio.create_task(self.label(client, i)) for i in range(cfg.models)]
            crasher = asyncio.create_task(self.crash())
            sampler = asyncio.create_task(self.sample(client))
            await asyncio.sleep(cfg.duration)
            self.sending = False
            await asyncio.gather(*drivers)
            self.drivers_done = True
            await asyncio.gather(*labelers)
            crasher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await crasher
            await sampler
            self.samples.append(await self.take_sample(client))
            text = await self.scrape(client)
            if text is not None:
                for model, versions in self.used_versions.items():
                    self.read_counts(text, model, versions, "end")
            listing = await client.get("/v1/models", timeout=30.0)
            self.live = {m["model"]: list(m["versions"]) for m in listing.json()["models"]}
            return text

    def run(self) -> dict[str, Any]:
        self.start_collector()
        try:
            final_text = asyncio.run(self.traffic())
        finally:
            assert self.proc is not None
            code = self.proc.stop(timeout=60)
            if self.fatal:
                self.fatal.append("collector log: " + self.proc.log(3000))
        self.log(f"collector stopped (exit {code}); checking the store")
        return self.summarize(final_text)

    # --- the report -------------------------------------------------------------------------
    def store_rows(self) -> tuple[dict[tuple[str, str], tuple[np.ndarray, int]], dict[str, int]]:
        """Per (model, version): stored seqs and labeled count; and bytes per table (dbstat)."""
        db = self.data_dir / "modelmeter.sqlite3"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
            labeled: dict[tuple[str, str], int] = collections.defaultdict(int)
            for model, pid, version, lab in conn.execute(
                "SELECT model, id, version, labeled FROM predictions"
            ):
                prefix, _, seq = str(pid).partition("-")
                if prefix != version:
                    continue  # not an id of this benchmark's form: cannot be one it sent
                rows[(model, version)].append(int(seq))
                labeled[(model, version)] += int(lab) == 1  # 2: waiting when retired
            tables: dict[str, int] = {}
            with contextlib.suppress(sqlite3.Error):
                for name, size in conn.execute(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"
                ):
                    tables[str(name)] = int(size)
        finally:
            conn.close()
        stored = {k: (np.asarray(v, dtype=np.int64), labeled[k]) for k, v in rows.items()}
        return stored, tables

    def summarize(self, final_text: str | None) -> dict[str, Any]:
        cfg = self.config
        stored, tables = self.store_rows()
        per_version = []
        lost = 0
        unproven = 0
        for (model, version), count in sorted(self.versions.items()):
            acked = count.acked_seqs()
            seqs, labeled = stored.get((model, version), (np.zeros(0, dtype=np.int64), 0))
            missing = int(np.setdiff1d(acked, seqs).size)
            extra = int(np.setdiff1d(seqs, acked).size)
            counter_gap = 0
            if count.counted is None:
                if acked.size:
                    unproven += int(acked.size)
            else:
                counter_gap = max(0, int(acked.size - count.counted))
            labels_missing = max(0, count.labels_acked - labeled) + count.labels_pending
            if count.counted_at == "end" and count.labeled_counted is not None:
                labels_missing += max(0, count.labels_acked - int(count.labeled_counted))
            version_lost = max(missing, counter_gap) + labels_missing
            lost += version_lost
            per_version.append(
                {
                    "model": model,
                    "version": version,
                    "acked": int(acked.size),
                    "counted": count.counted,
                    "counted_at": count.counted_at,
                    "in_store": int(seqs.size),
                    "missing_in_store": missing,
                    "stored_not_acked": extra,
                    "labels_acked": count.labels_acked,
                    "labels_retired": count.labels_retired,
                    "labels_in_store": labeled,
                    "labeled_counted": count.labeled_counted,
                    "lost": version_lost,
                }
            )
        live = self.live
        used = {(m, v) for m, vs in self.used_versions.items() for v in vs}
        live_set = {(m, v) for m, vs in live.items() for v in vs}
        retired_metric = (
            gauge(final_text, "modelmeter_versions_retired_total") if final_text else None
        )
        labels_live_ok = all(
            r["labeled_counted"] == r["labels_acked"]
            for r in per_version
            if r["counted_at"] == "end"
        )
        # RSS slope per collector process, after its warm-up
        rss_slopes = []
        for k, pid in enumerate(self.pids):
            seg = [s for s in self.samples if s["pid"] == pid and s["rss"]]
            if not seg:
                continue
            t0 = seg[0]["t"]
            warm = [s for s in seg if s["t"] - t0 >= cfg.warmup_seconds]
            rss_slopes.append(
                {
                    "process": k + 1,
                    "pid": pid,
                    "from_s": warm[0]["t"] if warm else None,
                    "to_s": warm[-1]["t"] if warm else None,
                    "rss_max_mib": round(max(s["rss"] for s in seg) / MiB, 1),
                    "rss_after_warmup_max_mib": round(max(s["rss"] for s in warm) / MiB, 1)
                    if warm
                    else None,
                    "rss_slope_mib_per_min": _round(
                        slope_per_minute([s["t"] for s in warm], [s["rss"] / MiB for s in warm])
                    ),
                }
            )
        warm_store = [s for s in self.samples if s["t"] >= cfg.warmup_seconds]
        ts = [s["t"] for s in warm_store]
        store_slope = slope_per_minute(ts, [s["db_bytes"] + s["wal_bytes"] for s in warm_store])
        db_slope = slope_per_minute(ts, [s["db_bytes"] for s in warm_store])
        acked_slope = slope_per_minute(ts, [s["acked"] for s in warm_store])
        predictions_bytes = tables.get("predictions", 0) + tables.get("predictions_received", 0)
        stored_rows = sum(int(v[0].size) for v in stored.values())
        bytes_per_row = predictions_bytes / stored_rows if stored_rows else None
        predictions_slope = (
            acked_slope * bytes_per_row if acked_slope is not None and bytes_per_row else None
        )
        all_latencies = [lat for _, lat in self.latencies]
        summary = {
            "config": {
                **{k: v for k, v in asdict(cfg).items() if k not in ("data_dir", "env")},
                "rotate_every": cfg.rotate_seconds,
                "warmup": cfg.warmup_seconds,
                "collector_env": self.env,
            },
            "machine": machine(),
            "acked_events": self.acked_total,
            "acked_rate": round(self.acked_total / cfg.duration, 1),
            "labels_acked": sum(c.labels_acked for c in self.versions.values()),
            "labels_retired": sum(c.labels_retired for c in self.versions.values()),
            "rejected_events": self.rejected,
            "rejected_reasons": dict(self.rejected_reasons.most_common(5)),
            "failed_attempts": dict(self.failed_attempts),
            "fatal": self.fatal[:20],
            "restarts": self.restarts,
            "collector_pids": self.pids,
            "versions_used": len(used),
            "versions_live_at_end": len(live_set),
            "versions_retired_seen": len(used - live_set),
            "versions_retired_metric": retired_metric,
            "store_wal_gauge_present": any(s["wal_gauge"] is not None for s in self.samples),
            "store_gauge_present": any(s["store_gauge"] is not None for s in self.samples),
            "p99_prediction_ms": _ms(p99(all_latencies)),
            "p50_prediction_ms": _ms(float(np.median(all_latencies)) if all_latencies else None),
            "p99_label_ms": _ms(p99([lat for _, lat in self.label_latencies])),
            "rss": rss_slopes,
            "store_slope_mib_per_min": _round(_mib(store_slope)),
            "db_file_slope_mib_per_min": _round(_mib(db_slope)),
            "predictions_slope_mib_per_min": _round(_mib(predictions_slope)),
            "other_store_slope_mib_per_min": _round(
                _mib(store_slope - predictions_slope)
                if store_slope is not None and predictions_slope is not None
                else None
            ),
            "predictions_bytes_per_row": _round(bytes_per_row),
            "store_tables_mib": {k: round(v / MiB, 2) for k, v in sorted(tables.items())},
            "wal_max_mib": round(max((s["wal_bytes"] for s in self.samples), default=0) / MiB, 2),
            "store_final_mib": round(
                (self.samples[-1]["db_bytes"] + self.samples[-1]["wal_bytes"]) / MiB, 2
            )
            if self.samples
            else None,
            "labels_counted_equal_for_live_versions": labels_live_ok,
            "unproven_events": unproven,
            "lost": lost + unproven,
            "per_version": per_version,
            "samples": [{k: v for k, v in s.items() if k != "mono"} for s in self.samples],
            "table": self.table_rows(),
        }
        return summary

    def table_rows(self, rows: int = 24) -> list[dict[str, Any]]:
        """About ``rows`` evenly spaced samples, with rate and p99 over the interval before."""
        if not self.samples:
            return []
        step = max(1, len(self.samples) // rows)
        picked = self.samples[::step]
        if picked[-1] is not self.samples[-1]:
            picked.append(self.samples[-1])
        out = []
        previous: dict[str, Any] | None = None
        for s in picked:
            lo = previous["mono"] if previous else 0.0
            window = [lat for t, lat in self.latencies if lo < t <= s["mono"]]
            dt = s["mono"] - lo if previous else s["t"]
            rate = (s["acked"] - (previous["acked"] if previous else 0)) / dt if dt > 0 else 0
            inside = [x for x in self.samples if lo < x["mono"] <= s["mono"]]
            cpus = [x["collector_cpu"] for x in inside if x["collector_cpu"] is not None]
            clients = [x["client_cpu"] for x in inside]
            out.append(
                {
                    "t_s": s["t"],
                    "process": self.pids.index(s["pid"]) + 1 if s["pid"] in self.pids else None,
                    "rss_mib": round(s["rss"] / MiB, 1) if s["rss"] else None,
                    "db_mib": round(s["db_bytes"] / MiB, 2),
                    "wal_mib": round(s["wal_bytes"] / MiB, 2),
                    "store_gauge_mib": _round(_mib(s["store_gauge"])),
                    "wal_gauge_mib": _round(_mib(s["wal_gauge"])),
                    "events_per_s": round(rate, 0),
                    "p99_ms": _ms(p99(window)),
                    "retired_metric": s["retired"],
                    "collector_cpu": round(float(np.mean(cpus))) if cpus else None,
                    "client_cpu": round(float(np.mean(clients))) if clients else None,
                    "load1": round(s["load1"], 1),
                }
            )
            previous = s
        return out


def _mib(value: float | None) -> float | None:
    return None if value is None else value / MiB


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(summary: dict[str, Any]) -> str:
    """The summary as markdown (printed at the end; pasted into bench/RESULTS.md)."""
    cfg = summary["config"]
    out = [
        f"{cfg['models']} models, {cfg['rate']:.0f} events/s requested, {cfg['duration']:.0f} s, "
        f"versions every {cfg['rotate_every']:.0f} s (MODELMETER_MAX_VERSIONS="
        f"{cfg['max_versions']}), {len(summary['restarts'])} kill -9 restarts, "
        f"warm-up {cfg['warmup']:.0f} s; {summary['machine']['nproc']} cores, "
        f"{summary['machine']['memory_gib']} GiB, Python {summary['machine']['python']}, "
        f"{summary['machine']['date']}",
        "",
        "Over time:",
        "",
    ]
    table = summary["table"]
    keys = ["t_s", "process", "rss_mib", "db_mib", "wal_mib", "store_gauge_mib"]
    keys += ["wal_gauge_mib", "events_per_s", "p99_ms", "retired_metric"]
    keys += ["collector_cpu", "client_cpu", "load1"]
    heads = ["t s", "collector", "RSS MiB", "db MiB", "WAL MiB", "store gauge MiB"]
    heads += ["WAL gauge MiB", "acked events/s", "p99 ms", "retired (metric)"]
    heads += ["collector CPU %", "client CPU %", "load 1m"]
    out.append(markdown(heads, [[r[k] for k in keys] for r in table]))
    out += ["", "RSS per collector process (after warm-up):", ""]
    out.append(
        markdown(
            ["process", "samples from s", "to s", "RSS max MiB", "after warm-up max MiB", "slope"],
            [
                [
                    r["process"],
                    r["from_s"],
                    r["to_s"],
                    r["rss_max_mib"],
                    r["rss_after_warmup_max_mib"],
                    f"{_cell(r['rss_slope_mib_per_min'])} MiB/min",
                ]
                for r in summary["rss"]
            ],
        )
    )
    out += ["", "Restarts:", ""]
    out.append(
        markdown(
            ["kill -9 at s", "ready after s", "first ack after s"],
            [[r["at_s"], r["ready_after_s"], r["first_ack_after_s"]] for r in summary["restarts"]],
        )
    )
    rows = [
        ["acknowledged predictions", f"{summary['acked_events']:,} ({summary['acked_rate']}/s)"],
        ["acknowledged labels (matched)", f"{summary['labels_acked']:,}"],
        ["late labels answered 'retired'", f"{summary['labels_retired']:,}"],
        ["rejected events", f"{summary['rejected_events']:,} {summary['rejected_reasons'] or ''}"],
        ["failed attempts (retried)", summary["failed_attempts"] or "none"],
        [
            "versions used / live at end / retired",
            f"{summary['versions_used']} / {summary['versions_live_at_end']} / "
            f"{summary['versions_retired_seen']} (metric: "
            f"{_cell(summary['versions_retired_metric'])})",
        ],
        [
            "prediction latency p50 / p99",
            f"{_cell(summary['p50_prediction_ms'])} / {_cell(summary['p99_prediction_ms'])} ms",
        ],
        ["label latency p99", f"{_cell(summary['p99_label_ms'])} ms"],
        ["store slope after warm-up", f"{_cell(summary['store_slope_mib_per_min'])} MiB/min"],
        [
            "  of which predictions table (TTL-bound)",
            f"{_cell(summary['predictions_slope_mib_per_min'])} MiB/min "
            f"({_cell(summary['predictions_bytes_per_row'])} bytes/row)",
        ],
        ["  rest", f"{_cell(summary['other_store_slope_mib_per_min'])} MiB/min"],
        ["WAL file max", f"{summary['wal_max_mib']} MiB"],
        ["store tables at end (MiB)", summary["store_tables_mib"]],
    ]
    out += ["", markdown(["", ""], rows), ""]
    bad = [r for r in summary["per_version"] if r["lost"] or r["counted"] is None]
    counted = sum(1 for r in summary["per_version"] if r["counted"] is not None)
    out.append(
        f"Acknowledged vs counted: {len(summary['per_version'])} (model, version) pairs, "
        f"{counted} read from model_predictions_total while live, all checked against the "
        f"store; labels of live versions equal model_labeled_predictions_total: "
        f"{summary['labels_counted_equal_for_live_versions']}."
    )
    if bad:
        out += ["", "Versions not proven:", ""]
        keys = ["model", "version", "acked", "counted", "counted_at", "in_store"]
        keys += ["missing_in_store", "labels_acked", "labels_in_store", "lost"]
        out.append(markdown(keys, [[r[k] for k in keys] for r in bad[:40]]))
    if summary["fatal"]:
        out += ["", "Errors: " + "; ".join(summary["fatal"][:5])]
    if proven(summary):
        out += ["", "lost: 0 (every acknowledged event counted by the engine and in the store)"]
    else:
        out += ["", f"NOT PROVEN: lost {summary['lost']}, errors {len(summary['fatal'])}"]
    return "\n".join(out)


def proven(summary: dict[str, Any]) -> bool:
    """True when no acknowledged event is missing and the run itself had no error."""
    return summary["lost"] == 0 and not summary["fatal"] and summary["acked_events"] > 0


def parse_args(argv: Sequence[str] | None) -> tuple[SoakConfig, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="30m", help="e.g. 90s, 30m (default 30m)")
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2000.0, help="prediction events/s, total")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between requests")
    parser.add_argument("--features", type=int, default=10, help="numeric features per model")
    parser.add_argument("--label-delay", type=float, default=2.0)
    parser.add_argument("--rotate-every", default=None, help="default: duration / 10")
    parser.add_argument("--max-versions", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--warmup", default=None, help="default: half a collector lifetime")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the store here")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    config = SoakConfig(
        duration=parse_duration(args.duration),
        models=args.models,
        rate=args.rate,
        tick=args.tick,
        features=args.features,
        label_delay=args.label_delay,
        rotate_every=parse_duration(args.rotate_every) if args.rotate_every else None,
        max_versions=args.max_versions,
        restarts=args.restarts,
        sample_every=args.sample_every,
        warmup=parse_duration(args.warmup) if args.warmup else None,
        data_dir=args.data_dir,
        quiet=args.quiet,
    )
    return config, args.json


def run(config: SoakConfig) -> dict[str, Any]:
    """Run one soak in a temporary directory; the summary (see :func:`report`)."""
    with tempfile.TemporaryDirectory(prefix="modelmeter-soak-") as tmp:
        return Soak(config, Path(tmp)).run()


def main(argv: Sequence[str] | None = None) -> int:
    config, json_path = parse_args(argv)
    summary = run(config)
    print(report(summary))
    if json_path is not None:
        json_path.write_text(json.dumps(summary, indent=1, default=str))
    return 0 if proven(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
