"""The sampler: one per server, leading by an flock, turning counters into the shared history.

Every worker runs a :class:`Sampler`; only the one holding
``<data>/.r13-sampler.lock`` samples (:class:`r13core.locks.LeaderJob`). Each
tick it reads the shared counters, computes the interval's rates
(:mod:`r13core.monitor.rates`), walks the process tree
(:mod:`r13core.monitor.processes`), adds the registry's own figures, feeds
the alert rules (:mod:`r13core.monitor.alerts`), publishes alert changes in
the events log (:mod:`r13core.events`) and writes the state file every
worker answers from (:mod:`r13core.monitor.state`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from r13core.config import ConfigStore, Feature
from r13core.events import EventLog
from r13core.locks import LeaderJob, every
from r13core.metrics import Metrics, PyMetrics, Totals
from r13core.monitor.alerts import AlertEngine, default_rules
from r13core.monitor.processes import ProcessTree
from r13core.monitor.rates import compute_rates, totals_fields
from r13core.monitor.state import STATE_FILE, MonitorView, remove_stale_temp_files, write_state
from r13core.settings import MonitorSettings

log = logging.getLogger("r13.monitor")

LOCK_FILE: Final = ".r13-sampler.lock"

RegistryStats = Callable[[], Mapping[str, int]]


class Sampler(LeaderJob):
    """Takes samples and keeps the shared history, when it holds the sampler lock.

    ``collect()`` and ``tick()`` work without the thread (tests, benches);
    ``start()`` runs the leader election and the loop in a daemon thread.
    Alert changes go to ``events`` (default: the data dir's events log).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        metrics: Metrics | PyMetrics,
        settings: MonitorSettings,
        *,
        config: ConfigStore | None = None,
        registry_stats: RegistryStats | None = None,
        root_pid: int | None = None,
        events: EventLog | None = None,
        uplink_state: Callable[[], Mapping[str, Any]] | None = None,
        on_turn: Callable[[Mapping[str, Any] | None], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.on_turn = on_turn
        """Called after every turn of the leading sampler with its sample (None when it
        took none: METRICS off, a baseline): a cluster node's heartbeat
        (r13core/cluster/heartbeat.py)."""
        super().__init__(self.data_dir / LOCK_FILE, name="r13-sampler")
        self.metrics = metrics
        self.settings = settings
        self.config = config
        self.registry_stats = registry_stats
        self.uplink_state = uplink_state
        """The uplink's circuit breaker (r13core/uplink/breaker.py): its state in each sample."""
        self.events = events if events is not None else EventLog(self.data_dir)
        self.tree = ProcessTree(root_pid if root_pid is not None else os.getpid())
        self.rules = default_rules(settings)
        self.alerts = AlertEngine(self.rules)
        self.history: list[dict[str, Any]] = []
        self.seq = 0
        self.server_started = self.tree.started()
        self._prev: Totals | None = None
        self._prev_t = 0.0
        self._prev_generation: int | None = None
        self._config_updates = 0
        self._idle = False
        (self.data_dir / "run").mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- one sample -------------------------------------------------------------

    def _registry(self) -> dict[str, Any]:
        if self.registry_stats is None:
            return {"packages": None, "versions": None}
        try:
            stats = self.registry_stats()
            return {"packages": stats.get("packages"), "versions": stats.get("versions")}
        except Exception:
            log.exception("registry stats failed")
            return {"packages": None, "versions": None}

    def _uplink(self) -> dict[str, Any]:
        if self.uplink_state is None:
            return {"uplink_breaker": None, "uplink_breaker_failures": None}
        try:
            state = self.uplink_state()
            return {
                "uplink_breaker": state.get("state"),
                "uplink_breaker_failures": state.get("failures"),
            }
        except Exception:
            log.exception("uplink state failed")
            return {"uplink_breaker": None, "uplink_breaker_failures": None}

    def _config(self) -> dict[str, Any]:
        if self.config is None:
            return {"config_generation": None, "config_updates": 0, "config_updates_total": None}
        generation = self.config.generation()
        changes = 0 if self._prev_generation is None else generation - self._prev_generation
        changes = max(0, changes)
        self._prev_generation = generation
        self._config_updates += changes
        return {
            "config_generation": generation,
            "config_updates": changes,
            "config_updates_total": self._config_updates,
        }

    def collect(self) -> dict[str, Any] | None:
        """Take one sample; None for the first call (it only sets the baseline)."""
        now = time.monotonic()
        cur = self.metrics.totals()
        if isinstance(self.metrics, Metrics):
            self.metrics.reap()
        procs = self.tree.sample()
        prev, prev_t = self._prev, self._prev_t
        self._prev, self._prev_t = cur, now
        config = self._config()
        if prev is None or prev.started != cur.started:
            return None
        self.seq += 1
        return {
            "seq": self.seq,
            "ts": round(time.time(), 3),
            "sampler_pid": os.getpid(),
            "server_started": self.server_started,
            **procs,
            **compute_rates(prev, cur, now - prev_t),
            **totals_fields(cur),
            **self._registry(),
            **self._uplink(),
            **config,
        }

    def tick(self) -> dict[str, Any] | None:
        """Collect, evaluate alerts, keep and write the history; the sample."""
        sample = self.collect()
        if sample is None:
            return None
        self.history.append(sample)
        del self.history[: -self.settings.history]
        try:  # every worker's live channel sends it to its clients (topic "metrics")
            self.events.append("metrics", sample)
        except (OSError, ValueError) as exc:
            log.warning("cannot publish the sample in the events log: %s", exc)
        for event in self.alerts.feed(sample):
            log.warning("alert %s %s: %s", event["event"], event["rule"], event.get("value"))
            try:
                self.events.append("alert", event)
            except OSError as exc:  # the history must still be written
                log.warning("cannot publish the alert in the events log: %s", exc)
        self.save(sample_ts=sample["ts"])
        return sample

    # -- the state file -----------------------------------------------------------

    def save(self, sample_ts: float | None = None) -> None:
        """Write history, alerts and sampler state (atomic replace)."""
        write_state(
            self.data_dir,
            {
                "updated": time.time(),
                "sampler_pid": os.getpid(),
                "interval_ms": self.settings.interval_ms,
                "history_size": self.settings.history,
                "seq": self.seq,
                "history": self.history,
                "alerts": self.alerts.to_dict(),
                "rules": [r.describe() for r in self.rules],
                "config_updates_total": self._config_updates,
                "last_totals": self._prev.as_dict() if self._prev else None,
                "last_ts": sample_ts,
            },
        )

    def resume(self) -> None:
        """Continue the history, alerts and sequence numbers of the previous sampler."""
        remove_stale_temp_files(self.data_dir)
        state = MonitorView(self.data_dir).state()
        if not state:
            return
        self.history = list(state.get("history", []))[-self.settings.history :]
        self.seq = int(state.get("seq", 0))
        self._config_updates = int(state.get("config_updates_total", 0))
        self.alerts.load(state.get("alerts", {}))
        last, last_ts = state.get("last_totals"), state.get("last_ts")
        if last and last_ts:
            # Rates of the first sample cover the gap since the last one written.
            self._prev = Totals.from_dict(last)
            self._prev_t = time.monotonic() - max(0.0, time.time() - float(last_ts))

    # -- the thread -----------------------------------------------------------------

    def _enabled(self) -> bool:
        return self.config is None or self.config.enabled(Feature.METRICS)

    def lead(self, stop: threading.Event) -> None:
        """Resume the shared history, then sample every interval until ``stop``."""
        log.info("sampler started in pid %d", os.getpid())
        try:
            self.resume()
        except (KeyError, TypeError, ValueError) as exc:
            # A state file this sampler cannot read must not stop sampling forever.
            log.warning("starting a new history: cannot resume from %s (%r)", STATE_FILE, exc)
            self.history, self.seq, self._prev = [], 0, None
            self.alerts = AlertEngine(self.rules)
        self.tree.sample()  # CPU of each process is measured from here
        self._idle = not self._enabled()
        if not self._idle and self._prev is None:
            self.collect()  # baseline
        if self.on_turn is not None:
            try:
                self.on_turn(None)  # a new leader says it is alive at once
            except Exception:  # e.g. the database is down: the next turns try again
                log.exception("the first heartbeat failed")
        every(stop, self.settings.interval_ms / 1000, self._turn, what="sample")

    def _turn(self) -> None:
        sample = None
        try:
            if not self._enabled():
                # METRICS off: no samples; resume from a fresh baseline later.
                self._idle, self._prev = True, None
            elif self._idle:
                self._idle = False
                self.collect()
            else:
                sample = self.tick()
        finally:
            if self.on_turn is not None:
                self.on_turn(sample)
