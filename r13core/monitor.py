"""The performance monitor: one sampler for the whole server, alerts, history.

Every worker runs a :class:`Sampler` thread, but only the one holding an
exclusive flock on ``<data>/.r13-sampler.lock`` samples; the others wait
for it (:class:`r13core.locks.Leader`). The kernel drops the lock when its
holder dies, so another worker takes over within a poll period and
continues the same history.

Each tick the sampler reads the shared counters (:mod:`r13core.metrics`),
turns their change since the last tick into rates and latency percentiles,
adds CPU and memory of the server's process tree and of the system
(psutil) and the registry's own figures, feeds the alert rules, and writes
the history (``METRICS_HISTORY_SIZE`` samples), the alert log and its own
state to ``<data>/run/metrics.json`` (temp file + rename). Every worker
answers from that file (:class:`MonitorView`, cached by inode and mtime), so
all of them give the same answer. Alert changes are appended to
``<data>/run/events.jsonl`` with a sequence number for the live channel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from r13core.config import ConfigStore, Feature
from r13core.locks import Leader
from r13core.metrics import LATENCY_BOUNDS, Event, Gauge, Metrics, PyMetrics, Totals
from r13core.settings import Settings, SettingsError

log = logging.getLogger("r13.monitor")

STATE_FORMAT: Final = 1
STATE_FILE: Final = "run/metrics.json"
EVENTS_FILE: Final = "run/events.jsonl"
LOCK_FILE: Final = ".r13-sampler.lock"
ALERT_LOG_SIZE: Final = 100
EVENTS_MAX_BYTES: Final = 1 << 20  # then events.jsonl is rotated to events.jsonl.1

RegistryStats = Callable[[], Mapping[str, int]]


def _env_number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi or math.isnan(value):
        raise SettingsError(f"{name}={raw} is out of range {lo:g}..{hi:g}")
    return value


@dataclass(frozen=True)
class MonitorSettings:
    """What the monitor reads from the environment (METRICS_*, ALERT_*, R13_ALERT_*; README.md)."""

    interval_ms: int = 1000
    history: int = 60
    cpu_percent: float = 80
    memory_percent: float = 85
    latency_ms: float = 1000
    alert_samples: int = 3
    error_rate_percent: float = 5
    error_min_requests: int = 10

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> MonitorSettings:
        """METRICS_* / ALERT_* from ``settings``; R13_ALERT_* from ``env``."""
        env = os.environ if env is None else env
        return cls(
            interval_ms=settings.metrics_interval_ms,
            history=settings.metrics_history,
            cpu_percent=settings.alert_cpu,
            memory_percent=settings.alert_memory,
            latency_ms=settings.alert_latency_ms,
            alert_samples=int(_env_number(env, "R13_ALERT_SAMPLES", 3, 1, 1000)),
            error_rate_percent=_env_number(env, "R13_ALERT_ERROR_RATE", 5, 0, 100),
            error_min_requests=int(_env_number(env, "R13_ALERT_ERROR_MIN_REQUESTS", 10, 1, 1e9)),
        )


# -- sample math ----------------------------------------------------------------


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0..1) in seconds of a histogram over LATENCY_BOUNDS.

    Interpolates linearly inside the bucket (as Prometheus'
    ``histogram_quantile`` does); the open last bucket answers its lower
    bound. None when the histogram is empty.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            lo = LATENCY_BOUNDS[i - 1] if i else 0.0
            hi = LATENCY_BOUNDS[i]
            if math.isinf(hi):
                return lo
            return lo + (hi - lo) * max(0.0, rank - seen) / n
        seen += n
    return LATENCY_BOUNDS[-2]  # pragma: no cover - rank <= total always stops above


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _rate(now: int, before: int, dt: float) -> float:
    return round(max(0, now - before) / dt, 3) if dt > 0 else 0.0


def compute_rates(prev: Totals, cur: Totals, dt: float) -> dict[str, Any]:
    """The request figures of one interval of ``dt`` seconds between two totals."""
    requests = max(0, cur.requests - prev.requests)
    errors = max(0, cur.by_class[5] - prev.by_class[5])
    lat = [max(0, a - b) for a, b in zip(cur.latency, prev.latency, strict=True)]
    lat_sum = max(0, cur.latency_sum_ns - prev.latency_sum_ns)
    ev = [max(0, a - b) for a, b in zip(cur.events, prev.events, strict=True)]
    hits, misses = ev[Event.CACHE_HITS], ev[Event.CACHE_MISSES]
    beats = ev[Event.WS_HEARTBEATS]
    return {
        "interval_s": round(dt, 4),
        "requests": requests,
        "requests_per_s": _rate(cur.requests, prev.requests, dt),
        "errors_per_s": _rate(cur.by_class[5], prev.by_class[5], dt),
        "client_errors_per_s": _rate(cur.by_class[4], prev.by_class[4], dt),
        "error_rate_percent": round(100.0 * errors / requests, 3) if requests else 0.0,
        "bytes_in_per_s": _rate(cur.bytes_in, prev.bytes_in, dt),
        "bytes_out_per_s": _rate(cur.bytes_out, prev.bytes_out, dt),
        "latency_avg_ms": round(lat_sum / requests / 1e6, 3) if requests else None,
        "latency_p50_ms": _ms(percentile(lat, 0.50)),
        "latency_p95_ms": _ms(percentile(lat, 0.95)),
        "latency_p99_ms": _ms(percentile(lat, 0.99)),
        "publishes_per_s": _rate(cur.events[Event.PUBLISHES], prev.events[Event.PUBLISHES], dt),
        "downloads_per_s": _rate(cur.events[Event.DOWNLOADS], prev.events[Event.DOWNLOADS], dt),
        "unpublishes_per_s": _rate(
            cur.events[Event.UNPUBLISHES], prev.events[Event.UNPUBLISHES], dt
        ),
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "ws_messages_per_s": round((ev[Event.WS_MESSAGES_IN] + ev[Event.WS_MESSAGES_OUT]) / dt, 3)
        if dt > 0
        else 0.0,
        "ws_heartbeat_ms": round(ev[Event.WS_HEARTBEAT_NS] / beats / 1e6, 3) if beats else None,
    }


def totals_fields(cur: Totals) -> dict[str, Any]:
    """Cumulative figures carried in every sample (the summary's totals)."""
    return {
        "requests_total": cur.requests,
        "errors_total": cur.by_class[5],
        "client_errors_total": cur.by_class[4],
        "bytes_in_total": cur.bytes_in,
        "bytes_out_total": cur.bytes_out,
        "publishes_total": cur.events[Event.PUBLISHES],
        "downloads_total": cur.events[Event.DOWNLOADS],
        "unpublishes_total": cur.events[Event.UNPUBLISHES],
        "active_requests": max(0, cur.gauges[Gauge.ACTIVE_REQUESTS]),
        "ws_connections": max(0, cur.gauges[Gauge.WS_CONNECTIONS]),
        "workers": cur.processes,
        "counters_started": round(cur.started, 3),
    }


# -- processes ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc (much cheaper than psutil's scan)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


class ProcessTree:
    """CPU and memory of a process and its descendants, between calls."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self._procs: dict[int, psutil.Process] = {}
        self._ncpu = psutil.cpu_count() or 1
        self._have_proc_children = os.path.exists(f"/proc/{root_pid}/task/{root_pid}/children")
        psutil.cpu_percent(None)  # start the system-wide interval

    def pids(self) -> list[int]:
        """The root and every descendant alive now."""
        if not self._have_proc_children:
            try:
                root = psutil.Process(self.root_pid)
                return [self.root_pid, *(p.pid for p in root.children(recursive=True))]
            except psutil.Error:
                return []
        seen = [self.root_pid]
        i = 0
        while i < len(seen) and len(seen) < 4096:
            seen.extend(_children(seen[i]))
            i += 1
        return seen

    def sample(self) -> dict[str, Any]:
        """CPU since the last call (percent of all cores) and resident memory."""
        cpu = 0.0
        rss = 0
        alive: dict[int, psutil.Process] = {}
        for pid in self.pids():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                alive[pid] = proc
            except psutil.Error:
                continue
        self._procs = alive
        vm = psutil.virtual_memory()
        return {
            "cpu_percent": round(cpu / self._ncpu, 2),
            "memory_rss_bytes": rss,
            "memory_percent": round(100.0 * rss / vm.total, 3) if vm.total else 0.0,
            "processes": len(alive),
            "system_cpu_percent": round(psutil.cpu_percent(None), 2),
            "system_memory_percent": round(vm.percent, 2),
            "master_pid": self.root_pid,
        }


# -- alerts ---------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRule:
    """Raise when ``metric`` is above ``threshold`` for ``samples`` samples in a row."""

    name: str
    metric: str
    threshold: float
    samples: int = 3
    # Optional: the sample must also have at least this many requests (error rate).
    min_requests: int = 0

    def value(self, sample: Mapping[str, Any]) -> float | None:
        """The rule's value in ``sample`` (None: no data, counted as not over)."""
        v = sample.get(self.metric)
        if v is None or (self.min_requests and sample.get("requests", 0) < self.min_requests):
            return None
        return float(v)


def default_rules(s: MonitorSettings) -> list[AlertRule]:
    """The four alert rules (CPU, memory, p95 latency, error-rate spike), from the settings."""
    n = s.alert_samples
    return [
        AlertRule("cpu", "cpu_percent", s.cpu_percent, n),
        AlertRule("memory", "system_memory_percent", s.memory_percent, n),
        AlertRule("latency", "latency_p95_ms", s.latency_ms, n),
        AlertRule(
            "error_rate", "error_rate_percent", s.error_rate_percent, n, s.error_min_requests
        ),
    ]


@dataclass
class _RuleState:
    over: int = 0
    under: int = 0
    first_over: float = 0.0
    peak: float = 0.0
    active: dict[str, Any] | None = None


@dataclass
class AlertEngine:
    """Hysteresis over samples: raise once, clear once, keep a log.

    A rule raises after ``samples`` consecutive samples above its threshold
    and clears after as many at or below it, so a value hovering around the
    threshold does not flap. A sample without the rule's figure (no request
    finished) counts as under when nothing is in flight, and changes nothing
    while requests are in flight. Each alert is logged with start, end, peak.
    """

    rules: list[AlertRule]
    log: list[dict[str, Any]] = field(default_factory=list)
    _state: dict[str, _RuleState] = field(default_factory=dict)

    def feed(self, sample: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Evaluate every rule on ``sample``; the events it caused (raised/cleared)."""
        ts = float(sample.get("ts", time.time()))
        events: list[dict[str, Any]] = []
        for rule in self.rules:
            st = self._state.setdefault(rule.name, _RuleState())
            v = rule.value(sample)
            if v is None and sample.get("active_requests", 0) > 0:
                # No figure although requests are in flight (say, all of them
                # slower than the interval): a stall, not a recovery. Hold.
                continue
            over = v is not None and v > rule.threshold
            if st.active is None:
                if over and v is not None:
                    st.first_over = ts if st.over == 0 else st.first_over
                    st.peak = v if st.over == 0 else max(st.peak, v)
                    st.over += 1
                    if st.over >= rule.samples:
                        st.active = {
                            "id": f"{rule.name}-{int(st.first_over * 1000)}",
                            "rule": rule.name,
                            "metric": rule.metric,
                            "threshold": rule.threshold,
                            "started": st.first_over,
                            "ended": None,
                            "peak": st.peak,
                            "value": v,
                            "state": "active",
                        }
                        st.under = 0
                        self.log.append(st.active)
                        events.append({"event": "raised", **st.active})
                else:
                    st.over = 0
            else:
                if v is not None:
                    st.active["value"] = v
                    st.active["peak"] = max(st.active["peak"], v)
                if over:
                    st.under = 0
                else:
                    st.under += 1
                    if st.under >= rule.samples:
                        st.active["ended"] = ts
                        st.active["state"] = "cleared"
                        events.append({"event": "cleared", **st.active})
                        st.active = None
                        st.over = st.under = 0
        del self.log[:-ALERT_LOG_SIZE]
        return events

    def active(self) -> list[dict[str, Any]]:
        """Alerts raised and not yet cleared."""
        return [a for a in self.log if a["state"] == "active"]

    def to_dict(self) -> dict[str, Any]:
        """State to carry over to the next sampler."""
        return {
            "log": self.log,
            "rules": {
                name: {"over": s.over, "under": s.under, "first_over": s.first_over, "peak": s.peak}
                for name, s in self._state.items()
            },
        }

    def load(self, d: Mapping[str, Any]) -> None:
        """Continue from :meth:`to_dict` of a previous sampler."""
        self.log = list(d.get("log", []))[-ALERT_LOG_SIZE:]
        actives = {a["rule"]: a for a in self.log if a.get("state") == "active"}
        for name, s in dict(d.get("rules", {})).items():
            self._state[name] = _RuleState(
                over=int(s.get("over", 0)),
                under=int(s.get("under", 0)),
                first_over=float(s.get("first_over", 0.0)),
                peak=float(s.get("peak", 0.0)),
                active=actives.get(name),
            )


# -- the state file ---------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class MonitorView:
    """The read side every worker answers from: ``<data>/run/metrics.json``.

    Parsed once per change of the file (inode, mtime, size), so every worker
    serves the same history at the cost of a stat per request.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self._key: tuple[int, int, int] | None = None
        self._state: dict[str, Any] = {}
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        """The whole state (empty dict before the first sample)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._key:
            return self._state
        with self._lock:
            try:
                state = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                return self._state
            if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
                return {}
            self._state, self._key = state, key
            return state

    def history(self) -> list[dict[str, Any]]:
        """The kept samples, oldest first."""
        return list(self.state().get("history", []))

    def latest(self) -> dict[str, Any] | None:
        """The last sample, or None before the first."""
        h = self.state().get("history") or []
        return dict(h[-1]) if h else None

    def alerts(self) -> dict[str, Any]:
        """Active alerts and the recent log (newest first)."""
        log_ = list(self.state().get("alerts", {}).get("log", []))
        return {
            "active": [a for a in log_ if a.get("state") == "active"],
            "recent": list(reversed(log_)),
            "rules": self.state().get("rules", []),
        }

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """Min/avg/max/percentiles of every figure over the history, uptime, totals."""
        return summarize(self.history(), now=now)


SUMMARY_FIGURES: Final = (
    "cpu_percent",
    "memory_rss_bytes",
    "memory_percent",
    "system_cpu_percent",
    "system_memory_percent",
    "requests_per_s",
    "active_requests",
    "bytes_in_per_s",
    "bytes_out_per_s",
    "latency_avg_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "errors_per_s",
    "error_rate_percent",
    "publishes_per_s",
    "downloads_per_s",
    "unpublishes_per_s",
    "cache_hit_rate",
    "ws_connections",
    "ws_messages_per_s",
    "ws_heartbeat_ms",
)
TOTAL_FIGURES: Final = (
    "requests_total",
    "errors_total",
    "client_errors_total",
    "bytes_in_total",
    "bytes_out_total",
    "publishes_total",
    "downloads_total",
    "unpublishes_total",
    "config_updates_total",
    "packages",
    "versions",
)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    # Nearest rank on the sorted sample values.
    i = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def summarize(history: Sequence[Mapping[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The summary of ``history`` (see :meth:`MonitorView.summary`)."""
    now = time.time() if now is None else now
    figures: dict[str, Any] = {}
    for key in SUMMARY_FIGURES:
        values = sorted(float(s[key]) for s in history if s.get(key) is not None)
        if not values:
            figures[key] = None
            continue
        figures[key] = {
            "min": values[0],
            "avg": round(sum(values) / len(values), 3),
            "max": values[-1],
            "p50": _quantile(values, 0.50),
            "p95": _quantile(values, 0.95),
            "p99": _quantile(values, 0.99),
        }
    last = history[-1] if history else {}
    started = last.get("server_started")
    return {
        "samples": len(history),
        "from": history[0]["ts"] if history else None,
        "to": last.get("ts"),
        "uptime_s": round(now - started, 3) if started is not None else None,
        "server_started": started,
        "sampler_pid": last.get("sampler_pid"),
        "totals": {key: last.get(key) for key in TOTAL_FIGURES},
        "figures": figures,
    }


# -- the sampler ------------------------------------------------------------------


class Sampler:
    """Takes samples and keeps the shared history, when it holds the sampler lock.

    ``collect()`` and ``tick()`` work without the thread (tests, benches);
    ``start()`` runs the leader election and the loop in a daemon thread.
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
    ) -> None:
        self.data_dir = Path(data_dir)
        self.metrics = metrics
        self.settings = settings
        self.config = config
        self.registry_stats = registry_stats
        self.tree = ProcessTree(root_pid if root_pid is not None else os.getpid())
        self.rules = default_rules(settings)
        self.alerts = AlertEngine(self.rules)
        self.history: list[dict[str, Any]] = []
        self.seq = 0
        self.events_seq = 0
        self.server_started = self._started(self.tree.root_pid)
        self._prev: Totals | None = None
        self._prev_t = 0.0
        self._prev_generation: int | None = None
        self._config_updates = 0
        self._leader = Leader(self.data_dir / LOCK_FILE, self._lead, name="r13-sampler")
        (self.data_dir / "run").mkdir(mode=0o700, parents=True, exist_ok=True)

    @staticmethod
    def _started(pid: int) -> float:
        try:
            return float(psutil.Process(pid).create_time())
        except psutil.Error:
            return time.time()

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
            **config,
        }

    def tick(self) -> dict[str, Any] | None:
        """Collect, evaluate alerts, keep and write the history; the sample."""
        sample = self.collect()
        if sample is None:
            return None
        self.history.append(sample)
        del self.history[: -self.settings.history]
        events = self.alerts.feed(sample)
        for event in events:
            self._emit("alert", event)
        self.save(sample_ts=sample["ts"])
        return sample

    def _emit(self, topic: str, data: dict[str, Any]) -> None:
        self.events_seq += 1
        line = json.dumps(
            {"seq": self.events_seq, "ts": time.time(), "topic": topic, "data": data},
            separators=(",", ":"),
        )
        path = self.data_dir / EVENTS_FILE
        with contextlib.suppress(OSError):
            if path.stat().st_size > EVENTS_MAX_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)
        if topic == "alert":
            log.warning("alert %s %s: %s", data["event"], data["rule"], data.get("value"))

    # -- the state file -----------------------------------------------------------

    def save(self, sample_ts: float | None = None) -> None:
        """Write history, alerts and sampler state (atomic replace)."""
        state = {
            "format": STATE_FORMAT,
            "updated": time.time(),
            "sampler_pid": os.getpid(),
            "interval_ms": self.settings.interval_ms,
            "history_size": self.settings.history,
            "seq": self.seq,
            "events_seq": self.events_seq,
            "history": self.history,
            "alerts": self.alerts.to_dict(),
            "rules": [
                {"rule": r.name, "metric": r.metric, "threshold": r.threshold, "samples": r.samples}
                for r in self.rules
            ],
            "config_updates_total": self._config_updates,
            "last_totals": self._prev.as_dict() if self._prev else None,
            "last_ts": sample_ts,
        }
        data = json.dumps(state, separators=(",", ":")).encode()
        _write_atomic(self.data_dir / STATE_FILE, data)

    def resume(self) -> None:
        """Continue the history, alerts and sequence numbers of the previous sampler."""
        # A sampler killed while writing leaves its temp file behind.
        for stale in (self.data_dir / "run").glob(".metrics.json.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        state = MonitorView(self.data_dir).state()
        if not state:
            return
        self.history = list(state.get("history", []))[-self.settings.history :]
        self.seq = int(state.get("seq", 0))
        self.events_seq = int(state.get("events_seq", 0))
        self._config_updates = int(state.get("config_updates_total", 0))
        self.alerts.load(state.get("alerts", {}))
        last, last_ts = state.get("last_totals"), state.get("last_ts")
        if last and last_ts:
            # Rates of the first sample cover the gap since the last one written.
            self._prev = Totals.from_dict(last)
            self._prev_t = time.monotonic() - max(0.0, time.time() - float(last_ts))

    # -- the thread -----------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this process holds the sampler lock and samples."""
        return self._leader.leading

    def start(self) -> None:
        """Run the election and, once leading, the sampling loop (daemon thread)."""
        self._leader.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (releasing the lock if held)."""
        self._leader.stop(timeout)

    def _enabled(self) -> bool:
        return self.config is None or self.config.enabled(Feature.METRICS)

    def _lead(self, stop: threading.Event) -> None:
        log.info("sampler started in pid %d", os.getpid())
        interval = self.settings.interval_ms / 1000
        try:
            self.resume()
        except (KeyError, TypeError, ValueError) as exc:
            # A state file this sampler cannot read must not stop sampling forever.
            log.warning("starting a new history: cannot resume from %s (%r)", STATE_FILE, exc)
            self.history, self.seq, self._prev = [], 0, None
            self.alerts = AlertEngine(self.rules)
        self.tree.sample()  # CPU of each process is measured from here
        idle = not self._enabled()
        if not idle and self._prev is None:
            self.collect()  # baseline
        deadline = time.monotonic() + interval
        while not stop.wait(max(0.0, deadline - time.monotonic())):
            deadline += interval
            if deadline < time.monotonic():
                deadline = time.monotonic() + interval
            if not self._enabled():
                # METRICS off: no samples; resume from a fresh baseline later.
                idle, self._prev = True, None
                continue
            if idle:
                idle = False
                self.collect()
                continue
            try:
                self.tick()
            except Exception:
                log.exception("sample failed")
