"""Alert rules with hysteresis: raise once, clear once, keep a log with start, end and peak."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from r13core.settings import MonitorSettings

ALERT_LOG_SIZE: Final = 100


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

    def describe(self) -> dict[str, Any]:
        """What the alerts API lists for the rule."""
        return {
            "rule": self.name,
            "metric": self.metric,
            "threshold": self.threshold,
            "samples": self.samples,
        }


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
