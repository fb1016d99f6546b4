"""Monitoring glue: everything the app needs to count, log, export and read the monitor.

Split by job:

* :mod:`app.monitoring.middleware` — :class:`RequestMonitor`, first in the
  middleware list: counts every request, writes the access log, trace ids;
* :mod:`app.monitoring.logs` — :class:`JsonLines` (the access log) and the
  DEBUG request lines on stderr;
* :mod:`app.monitoring.prometheus` — :class:`SharedCollector`, /metrics over
  the shared counters;
* :mod:`app.monitoring.access` — who may read the monitoring routes;
* :mod:`app.monitoring.counting` — publishes, unpublishes and downloads in
  the shared counters and per package and day (analytics).

:class:`Monitoring` builds them from the settings and the live record, with
the sampler (r13core/monitor/; started only in a real server, see
``create_app``) and the read side every worker answers from.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.monitoring.access import can_read_monitoring, require_monitoring_access
from app.monitoring.counting import UsageCounting
from app.monitoring.logs import JsonLines, ensure_debug_handler
from app.monitoring.middleware import RequestMonitor
from r13core.config import ConfigStore
from r13core.events import EventLog
from r13core.metrics import Metrics
from r13core.monitor import MonitorView, RegistryStats, Sampler
from r13core.settings import Settings
from r13core.usage import Clock, UsageRecorder, UsageStorage

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "JsonLines",
    "Monitoring",
    "RequestMonitor",
    "SharedCollector",
    "can_read_monitoring",
    "require_monitoring_access",
]


class Monitoring(UsageCounting):
    """Everything the app needs for monitoring, built from the settings.

    The sampler thread and the usage flusher start only when :meth:`start` is
    called (a real server does it in each worker; exactly one of them samples).
    Without ``usage`` storage nothing is counted per package.
    """

    def __init__(
        self,
        settings: Settings,
        store: ConfigStore,
        *,
        registry_stats: RegistryStats | None = None,
        root_pid: int | None = None,
        usage: UsageStorage | None = None,
        clock: Clock = time.time,
        uplink_state: Callable[[], Mapping[str, Any]] | None = None,
        events: EventLog | None = None,
        on_turn: Callable[[Mapping[str, Any] | None], None] | None = None,
    ) -> None:
        data = Path(settings.data_dir)
        self.store = store
        self.settings = settings.monitor
        self.metrics = Metrics(data)
        self.view = MonitorView(data)
        self.access_log = JsonLines(data / "logs" / "access.log")
        self.middleware = RequestMonitor(self.metrics, store, self.access_log)
        self.sampler = Sampler(
            data,
            self.metrics,
            self.settings,
            config=store,
            registry_stats=registry_stats,
            root_pid=root_pid,
            uplink_state=uplink_state,
            events=events,
            on_turn=on_turn,
        )
        flush = settings.housekeeping.usage_flush_interval_ms / 1000
        self.usage = None if usage is None else UsageRecorder(usage, interval=flush, clock=clock)
        ensure_debug_handler()

    def start(self) -> None:
        """Start this worker's sampler thread (it samples only while it leads) and flusher."""
        self.sampler.start()
        if self.usage is not None:
            self.usage.start()

    def stop(self) -> None:
        """Stop the sampler thread; write the buffered usage counts."""
        self.sampler.stop()
        if self.usage is not None:
            self.usage.stop()

    @functools.cached_property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry over the shared counters, made at the first scrape
        (prometheus_client is imported then: no other request needs it)."""
        from prometheus_client import CollectorRegistry

        from app.monitoring.prometheus import SharedCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(SharedCollector(self.metrics, self.view))
        return registry

    def scrape(self) -> bytes:
        """The Prometheus text exposition of everything."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
