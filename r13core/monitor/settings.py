"""What the monitor reads from the settings: interval, history size, alert thresholds."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from r13core.settings import Settings, SettingsError


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
