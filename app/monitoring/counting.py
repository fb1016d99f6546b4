"""Counting registry events: publishes, unpublishes and downloads, twice.

In the shared counters (rates and totals for the sampler and /metrics, while
METRICS is on) and per package and UTC day in the database (analytics,
always; buffered per worker by :class:`r13core.usage.UsageRecorder`).
"""

from __future__ import annotations

from r13core.config import ConfigStore, Feature
from r13core.metrics import Event, Metrics
from r13core.registry import PackageChange
from r13core.usage import UsageRecorder


class UsageCounting:
    """The counting side of :class:`app.monitoring.Monitoring` (it sets the three attributes)."""

    metrics: Metrics
    store: ConfigStore
    usage: UsageRecorder | None

    def count(self, event: Event, n: int = 1) -> None:
        """Count a registry or live-channel event in the shared counters (METRICS on)."""
        if self.store.enabled(Feature.METRICS):
            self.metrics.count(event, n)

    def downloaded(self, package: str) -> None:
        """A tarball of ``package`` was sent: the shared counter and today's count."""
        self.count(Event.DOWNLOADS)
        if self.usage is not None:
            self.usage.record("downloads", package)

    def package_changed(self, change: PackageChange) -> None:
        """The registry committed a publish or an unpublish (a registry listener)."""
        n = len(change.versions)
        if change.action == "publish":
            self.count(Event.PUBLISHES, n)
            kind = "publishes"
        elif change.action == "unpublish":
            self.count(Event.UNPUBLISHES, n)
            kind = "unpublishes"
        else:
            return
        if self.usage is not None:
            self.usage.record(kind, change.package, n)
