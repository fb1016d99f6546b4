"""The uplink: r13 in front of an upstream npm registry (PROXY_MODE, CACHE_ENABLED).

One module per job (r13core/uplink/service.py lists them); the registry façade
(r13core/registry/service.py) reaches it, the app never does directly except
for its admin view. docs/uplinks.md describes the behaviour.
"""

from r13core.uplink.breaker import BreakerState, CircuitBreaker
from r13core.uplink.client import Upstream
from r13core.uplink.policy import ProxyPolicy
from r13core.uplink.service import STALE_WARNING, Proxied, ProxiedBlob, Uplink, UplinkStorage

__all__ = [
    "STALE_WARNING",
    "BreakerState",
    "CircuitBreaker",
    "Proxied",
    "ProxiedBlob",
    "ProxyPolicy",
    "Uplink",
    "UplinkStorage",
    "Upstream",
]
