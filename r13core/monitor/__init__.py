"""The performance monitor: one sampler for the whole server, alerts, history.

Split by job:

* :class:`MonitorSettings` (interval, history size, alert thresholds) is the
  monitor's section of :mod:`r13core.settings`, re-exported here;
* :mod:`~r13core.monitor.rates` — counter deltas to per-second rates and
  latency percentiles (:func:`compute_rates`, :func:`percentile`);
* :mod:`~r13core.monitor.processes` — CPU and memory of the gunicorn process
  tree and of the system (:class:`ProcessTree`, from /proc; psutil elsewhere);
* :mod:`~r13core.monitor.alerts` — rules with hysteresis, the alert log
  (:class:`AlertEngine`);
* :mod:`~r13core.monitor.state` — the state file ``<data>/run/metrics.json``
  written atomically by the sampler and read by every worker
  (:class:`MonitorView`); :mod:`~r13core.monitor.summary` summarises it;
* :mod:`~r13core.monitor.sampler` — :class:`Sampler`: the loop, led by one
  worker through :class:`r13core.locks.LeaderJob`; alert changes go to the
  events log (:mod:`r13core.events`).

docs/monitoring.md explains the design. The names below are the public ones.
"""

from r13core.events import EVENTS_FILE, EVENTS_MAX_BYTES
from r13core.monitor.alerts import ALERT_LOG_SIZE, AlertEngine, AlertRule, default_rules
from r13core.monitor.processes import ProcessTree
from r13core.monitor.rates import compute_rates, percentile, totals_fields
from r13core.monitor.sampler import LOCK_FILE, RegistryStats, Sampler
from r13core.monitor.state import STATE_FILE, STATE_FORMAT, MonitorView
from r13core.monitor.summary import SUMMARY_FIGURES, TOTAL_FIGURES, summarize
from r13core.settings import MonitorSettings

__all__ = [
    "ALERT_LOG_SIZE",
    "EVENTS_FILE",
    "EVENTS_MAX_BYTES",
    "LOCK_FILE",
    "STATE_FILE",
    "STATE_FORMAT",
    "SUMMARY_FIGURES",
    "TOTAL_FIGURES",
    "AlertEngine",
    "AlertRule",
    "MonitorSettings",
    "MonitorView",
    "ProcessTree",
    "RegistryStats",
    "Sampler",
    "compute_rates",
    "default_rules",
    "percentile",
    "summarize",
    "totals_fields",
]
