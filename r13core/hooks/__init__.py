"""Webhooks: package events signed and delivered from a durable queue (docs/webhooks.md).

* r13core/hooks/events.py — which events a package change makes (queued by the
  change's own write transaction, r13core/registry/changes.py);
* r13core/hooks/endpoints.py — where a hook may send (http/https, no private
  addresses unless allowed: SSRF);
* r13core/hooks/sender.py — one signed POST (``x-npm-signature``);
* r13core/hooks/worker.py — the delivery worker (a leader job: claims, retries
  with backoff, the delivery log);
* r13core/hooks/service.py — managing hooks (audited), for every front end.

The storage concern is r13core/storage/hooks.py.
"""

from r13core.hooks.endpoints import AddressPolicy, EndpointRefused
from r13core.hooks.events import EVENTS
from r13core.hooks.sender import signature
from r13core.hooks.service import (
    Hooks,
    attempt_json,
    delivery_json,
    hook_json,
    npm_hook_json,
)
from r13core.hooks.worker import Deliverer, HookWorker
from r13core.storage.hooks import HOOK_TYPES, HookRecord

__all__ = [
    "EVENTS",
    "HOOK_TYPES",
    "AddressPolicy",
    "Deliverer",
    "EndpointRefused",
    "HookRecord",
    "HookWorker",
    "Hooks",
    "attempt_json",
    "delivery_json",
    "hook_json",
    "npm_hook_json",
    "signature",
]
