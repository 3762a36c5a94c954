"""Shift-aware CBPE in the collector: a bounded live sample, and its refit off the request path.

Plain CBPE calibrates the scores on the reference; under a covariate shift the engine can
recalibrate on the reference reweighted to look like the live inputs
(:mod:`modelmeter.engine.shift`). The collector keeps what that needs and runs it:

* The **live sample** (:class:`LiveSample`) of each live version of a classifier with
  reference scores: the features of its last ``MODELMETER_SHIFT_SAMPLE_ROWS`` scored
  predictions, in one numpy ring per feature (float64 for numeric features, object for
  categorical ones). The hub appends the columns of every prediction batch the engine counts
  (live after the store's commit, and on replay of the log at startup): at most two slice
  assignments per column per batch, no per-row Python. Memory: rows x features x 8 bytes
  (float64 or object pointers), plus the strings the categorical pointers keep alive. It
  lives in :attr:`ModelEntry.samples <modelmeter.service.entries.ModelEntry>` and goes with
  the version (retirement, model delete, changed spec). It is not stored: after a restart it
  holds what the log replay after the last checkpoint brought back.
* The **refit** (:class:`ShiftRefits`, mixed into the hub): every
  ``MODELMETER_SHIFT_REFIT_INTERVAL`` the collector's refit loop
  (:func:`modelmeter.service.app._shift_refits`) goes over the versions that can refit
  (:meth:`~modelmeter.engine.ModelMonitor.can_shift`, at least ``min_live_rows`` sampled, new
  rows since their last refit), one at a time in a dedicated worker thread:
  :meth:`ShiftRefits.refit_shift` copies the sample under the hub's lock, fits without the
  lock (:meth:`~modelmeter.engine.ModelMonitor.shift_fit`), then under the lock puts the fit
  in use (:meth:`~modelmeter.engine.ModelMonitor.use_calibration`) if the version still has
  the same monitor (a changed spec, a retirement or a delete in between discards it). A fit
  that falls back restores plain CBPE with its reason. A refit that raises is logged with the
  model and version, counted, and the loop goes on.

Outcomes are kept for the metrics: per version :class:`ShiftStatus` in
``ModelEntry.shift_status`` (goes with the version) and per model and outcome in
``Hub.shift_refit_counts`` (``applied``, ``fallback``, ``failed``, ``discarded``; a counter);
``Hub.timings`` sums ``shift_refits`` and ``shift_refit_seconds`` (``/debug/timings``).

>>> from modelmeter.engine import FeatureSpec, MonitorConfig
>>> config = MonitorConfig(task="binary", classes=("0", "1"), features=(
...     FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical")))
>>> sample = LiveSample(config, rows=3)
>>> sample.append({"x": np.array([1.0, 2.0]), "c": np.array(["a", "b"], dtype=object)})
>>> sample.append({"x": np.array([3.0, 4.0]), "c": np.array(["c", None], dtype=object)})
>>> rows = sample.rows()
>>> rows["x"].tolist(), rows["c"].tolist(), len(sample), sample.appended, sample.nbytes
([2.0, 3.0, 4.0], ['b', 'c', None], 3, 4, 48)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from modelmeter.engine import ModelMonitor, MonitorConfig
from modelmeter.engine.shift import ShiftFit, ShiftSettings
from modelmeter.metric_table import SHIFT_REFIT_OUTCOMES
from modelmeter.settings import Settings

if TYPE_CHECKING:  # entries.py keeps the samples and statuses defined here
    from modelmeter.service.entries import ModelEntry

__all__ = ["LiveSample", "ShiftRefits", "ShiftStatus"]

log = logging.getLogger("modelmeter.collector")

#: refit outcomes counted in ``Hub.shift_refit_counts`` (exported as
#: ``modelmeter_shift_refits_total``)
OUTCOMES = SHIFT_REFIT_OUTCOMES


class LiveSample:
    """The features of the last ``rows`` predictions of one version, one ring per feature.

    :meth:`append` takes the feature columns of a batch (as in a ``PredictionBatch``) and
    optionally a mask of the rows to keep; :meth:`rows` copies the sample out, oldest first.
    Not thread-safe: the hub calls both under its lock.
    """

    def __init__(self, config: MonitorConfig, rows: int) -> None:
        if rows < 1:
            raise ValueError(f"a live sample needs at least 1 row, got {rows}")
        self.capacity = int(rows)
        self.columns: dict[str, npt.NDArray[np.generic]] = {
            spec.name: np.empty(
                self.capacity, dtype=np.float64 if spec.kind == "numeric" else object
            )
            for spec in config.features
        }
        self.head = 0  # where the next row goes
        self.size = 0  # rows held (at most capacity)
        self.appended = 0  # rows ever appended

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Bytes of the rings (object columns: their pointers only)."""
        return sum(column.nbytes for column in self.columns.values())

    def append(
        self,
        features: Mapping[str, npt.NDArray[np.generic]],
        keep: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Append a batch's columns (every feature of the sample; ``keep``: the rows to take,
        None = all)."""
        columns = self.columns
        if not columns:
            return
        if keep is not None and not keep.all():
            features = {name: np.asarray(features[name])[keep] for name in columns}
        n = int(np.shape(features[next(iter(columns))])[0])
        if n == 0:
            return
        capacity, head = self.capacity, self.head
        if n >= capacity:  # the batch alone fills the ring: its last rows, in order
            for name, ring in columns.items():
                ring[:] = features[name][n - capacity :]
            self.head = 0
        else:
            end = head + n
            first = min(n, capacity - head)
            for name, ring in columns.items():
                values = features[name]
                ring[head : head + first] = values[:first]
                if first < n:  # wraps around
                    ring[: end - capacity] = values[first:]
            self.head = end % capacity
        self.size = min(capacity, self.size + n)
        self.appended += n

    def rows(self) -> dict[str, npt.NDArray[np.generic]]:
        """A copy of the sample, oldest row first."""
        if self.size < self.capacity:
            return {name: ring[: self.size].copy() for name, ring in self.columns.items()}
        head = self.head
        return {
            name: np.concatenate([ring[head:], ring[:head]]) for name, ring in self.columns.items()
        }


@dataclass
class ShiftStatus:
    """The refits of one version: the last one's outcome, and how many ran and failed.

    ``time`` (Unix seconds) and ``seconds`` are of the last refit that ran (also a failed
    one); ``applied`` says whether the shift-aware calibrator is in use since it, ``reason``
    why it fell back (or the error of a failure); ``auc`` and ``effective_rows`` are the
    fit's (NaN when not computed); ``live_rows`` the sampled rows it fitted on; ``fitted``
    the sample's ``appended`` count then (a sample without new rows is not refitted).
    """

    refits: int = 0
    failures: int = 0
    time: float = math.nan
    seconds: float = math.nan
    applied: bool = False
    reason: str | None = None
    auc: float = math.nan
    effective_rows: float = math.nan
    live_rows: int = 0
    fitted: int = -1


class ShiftRefits:
    """The refit half of the hub (mixed into :class:`~modelmeter.service.hub.Hub`, which
    provides the state declared here)."""

    settings: Settings
    lock: threading.RLock
    models: dict[str, ModelEntry]
    shift_refit_counts: dict[tuple[str, str], int]
    timings: dict[str, float]

    @property
    def shift_enabled(self) -> bool:
        """MODELMETER_SHIFT_REFIT_INTERVAL > 0: live samples are kept and refitted."""
        return self.settings.shift_refit_interval_seconds > 0

    def shift_settings(self) -> ShiftSettings:
        return ShiftSettings()

    def _sample(
        self,
        entry: ModelEntry,
        version: str,
        monitor: ModelMonitor,
        features: Mapping[str, npt.NDArray[np.generic]],
        scored: npt.NDArray[np.bool_] | None,
    ) -> None:
        """Append a counted batch's features (its scored rows) to the version's live sample
        (call under the lock; nothing when shift-aware CBPE is off or cannot apply)."""
        if scored is None or not self.shift_enabled or not monitor.can_shift:
            return
        sample = entry.samples.get(version)
        if sample is None:
            if not scored.any():
                return
            sample = entry.samples[version] = LiveSample(
                entry.config, self.settings.shift_sample_rows
            )
        sample.append(features, scored)

    def shift_candidates(self) -> list[tuple[str, str]]:
        """``(model, version)`` of every live version due for a refit: its monitor can refit,
        its sample holds at least ``min_live_rows`` and has new rows since its last refit."""
        least = self.shift_settings().min_live_rows
        with self.lock:
            out = []
            for entry in self.models.values():
                for version, sample in entry.samples.items():
                    status = entry.shift_status.get(version)
                    if len(sample) < least or (status and status.fitted == sample.appended):
                        continue
                    monitor = entry.monitors.get(version)
                    if monitor is not None and monitor.can_shift:
                        out.append((entry.name, version))
            return out

    def refit_shift(self, name: str, version: str, seed: int = 0) -> str | None:
        """Refit one version's calibration on its live sample and put it in use; the outcome
        (one of :data:`OUTCOMES`, counted), or None when the version is gone or has too few
        rows. Blocks for the fit (about a second at most): call it in a worker thread, never
        on the event loop. Never raises for a failing fit (logged and counted)."""
        settings = self.shift_settings()
        with self.lock:
            entry = self.models.get(name)
            monitor = None if entry is None else entry.monitors.get(version)
            sample = None if entry is None else entry.samples.get(version)
            if entry is None or monitor is None or sample is None:
                return None
            if len(sample) < settings.min_live_rows:
                return None
            live = sample.rows()
            rows, appended = len(sample), sample.appended
        started = time.perf_counter()
        try:  # without the lock: shift_fit reads only the monitor's immutable config/reference
            fit: ShiftFit | None = monitor.shift_fit(live, seed=seed, settings=settings)
            error: Exception | None = None
        except Exception as exc:
            fit, error = None, exc
            log.exception(
                "shift-aware refit of %s/%s failed; its estimate keeps the calibration in use",
                name,
                version,
            )
        seconds = time.perf_counter() - started
        with self.lock:
            self.timings["shift_refits"] += 1
            self.timings["shift_refit_seconds"] += seconds
            current = self.models.get(name)
            if current is not entry or entry.monitors.get(version) is not monitor:
                # a changed spec, a retirement or a delete came in between: the fit is stale
                self.shift_refit_counts[(name, "discarded")] += 1
                log.info("shift-aware refit of %s/%s discarded: the version changed", name, version)
                return "discarded"
            status = entry.shift_status.setdefault(version, ShiftStatus())
            status.time, status.seconds = time.time(), seconds
            status.live_rows, status.fitted = rows, appended
            if fit is None:
                status.failures += 1
                status.reason = f"refit failed: {error!r}"[:500]
                self.shift_refit_counts[(name, "failed")] += 1
                return "failed"
            try:
                monitor.use_calibration(fit)
            except Exception as exc:
                log.exception("shift-aware calibration of %s/%s refused", name, version)
                status.failures += 1
                status.reason = f"refit refused: {exc!r}"[:500]
                self.shift_refit_counts[(name, "failed")] += 1
                return "failed"
            entry.snapshots.pop(version, None)  # the cached snapshot has the old calibration
            status.refits += 1
            status.applied, status.reason = fit.applied, fit.reason
            status.auc, status.effective_rows = fit.auc, fit.effective_size
            outcome = "applied" if fit.applied else "fallback"
            self.shift_refit_counts[(name, outcome)] += 1
        log.debug(
            "shift-aware refit of %s/%s: %s in %.3f s (AUC %.3f, %.0f effective rows%s)",
            name,
            version,
            outcome,
            seconds,
            fit.auc,
            fit.effective_size,
            "" if fit.reason is None else f"; {fit.reason}",
        )
        return outcome
