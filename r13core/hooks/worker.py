"""The delivery worker: claims queued deliveries, sends them, records what happened.

One process per data dir runs it (a :class:`r13core.locks.LeaderJob` on
``<data>/.r13-hooks.lock``: every server worker starts the election, one
leads, another takes over when it dies). Several nodes over one PostgreSQL each
run their own and share the queue: a claim takes rows no other worker holds
(``FOR UPDATE SKIP LOCKED`` there, the single writer in SQLite) for a lease.

* **At least once.** A delivery is claimed for a lease, sent, then marked. A
  worker that dies after sending and before marking leaves a claim whose lease
  ends; the next claim sends it again (receivers deduplicate by ``id``).
* **Retries.** A non-2xx answer, a timeout or a refused connection schedules
  the delivery again after ``retry_base * 2^(attempt-1)`` (capped at
  ``retry_max``), times a random factor in [0.5, 1) so receivers recovering
  from an outage are not hit by every retry at once; after ``max_attempts`` it
  is marked failed. Every attempt goes in the delivery log.
* **Order.** One (hook, package)'s deliveries are claimed one at a time, in
  the order their changes committed; a failed one stops blocking the rest.
* **Off the request path.** Only this worker sends. Its sends run in a few
  threads — greenlets under the gevent worker, whose sockets wait on the hub.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from r13core.hooks.endpoints import AddressPolicy, Resolver, system_resolver
from r13core.hooks.sender import Outcome, send
from r13core.locks import LeaderJob
from r13core.settings import HookSettings
from r13core.storage.hooks import DELIVERED, FAILED, PENDING, Delivery, HookStorage

log = logging.getLogger("r13.hooks")

LOCK_FILE: Final = ".r13-hooks.lock"
PRUNE_EVERY_MS: Final = 3_600_000


def backoff_ms(attempt: int, settings: HookSettings, rand: Callable[[], float]) -> int:
    """The wait before attempt ``attempt + 1``: exponential, capped, with jitter in [0.5, 1)."""
    base = settings.retry_base_ms * (2 ** min(attempt - 1, 40))
    return max(1, int(min(base, settings.retry_max_ms) * (0.5 + rand() / 2)))


def address_policy(settings: HookSettings) -> AddressPolicy:
    """Which addresses endpoints may have (R13_HOOKS_ALLOW_PRIVATE, R13_HOOKS_ALLOW_CIDRS)."""
    from r13core.hooks.endpoints import parse_cidrs

    return AddressPolicy(settings.allow_private, parse_cidrs(settings.allow_cidrs))


class Deliverer:
    """Claims and sends deliveries: :meth:`run_once` is one round (tests call it directly)."""

    def __init__(
        self,
        storage: HookStorage,
        settings: HookSettings,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        resolver: Resolver = system_resolver,
        name: str | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.policy = address_policy(settings)
        self.clock = clock
        self.rand = rand
        self.resolver = resolver
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ms = 2 * settings.timeout_ms + 1000
        self._pruned_ms = 0

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def run_once(self) -> int:
        """Claim due deliveries, send them (concurrently), record each; how many were sent."""
        claimed = self.storage.claim(
            worker=self.name,
            now_ms=self._now_ms(),
            lease_ms=self.lease_ms,
            # No more than can be sent at once: a claimed row waiting for a free sender
            # would spend its lease, and another node could claim it meanwhile.
            limit=self.settings.concurrency,
        )
        if not claimed:
            return 0
        if len(claimed) == 1 or self.settings.concurrency == 1:
            for delivery in claimed:
                self._deliver(delivery)
        else:
            workers = min(self.settings.concurrency, len(claimed))
            with ThreadPoolExecutor(workers, thread_name_prefix="r13-hook") as pool:
                list(pool.map(self._deliver, claimed))
        return len(claimed)

    def _deliver(self, delivery: Delivery) -> None:
        at_ms = self._now_ms()
        outcome = send(
            delivery,
            policy=self.policy,
            timeout=self.settings.timeout_ms / 1000,
            resolver=self.resolver,
        )
        self._record(delivery, at_ms, outcome)

    def _record(self, delivery: Delivery, at_ms: int, outcome: Outcome) -> None:
        next_ms = 0
        if outcome.ok:
            state = DELIVERED
        elif delivery.attempts >= self.settings.max_attempts:
            state = FAILED
            log.warning(
                "hook %s: delivery %s failed after %d attempts (%s)",
                delivery.hook_id,
                delivery.id,
                delivery.attempts,
                outcome.error or outcome.status,
            )
        else:
            state = PENDING
            next_ms = self._now_ms() + backoff_ms(delivery.attempts, self.settings, self.rand)
        self.storage.finish(
            delivery,
            worker=self.name,
            at_ms=at_ms,
            status=outcome.status,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            outcome=state,
            next_ms=next_ms,
        )

    def prune(self) -> int:
        """Forget finished deliveries older than R13_HOOKS_KEEP_DAYS (at most hourly)."""
        now = self._now_ms()
        if now - self._pruned_ms < PRUNE_EVERY_MS:
            return 0
        self._pruned_ms = now
        return self.storage.prune_deliveries(now - self.settings.keep_days * 86_400_000)


class HookWorker(LeaderJob):
    """The deliverer, run by one process of the data dir (see the module docstring)."""

    def __init__(self, deliverer: Deliverer, data_dir: str | os.PathLike[str]) -> None:
        super().__init__(Path(data_dir) / LOCK_FILE, name="r13-hooks")
        self.deliverer = deliverer
        self._wake = threading.Event()

    def wake(self) -> None:
        """Look at the queue now (after this process queued something)."""
        self._wake.set()

    def lead(self, stop: threading.Event) -> None:
        """Deliver until ``stop``: at once while there is work, else every R13_HOOKS_POLL."""
        poll = self.deliverer.settings.poll_ms / 1000
        while not stop.is_set():
            try:
                sent = self.deliverer.run_once()
                self.deliverer.prune()
            except Exception:
                log.exception("webhook delivery round failed")
                sent = 0
            if sent:
                continue
            self._wake.wait(poll)
            self._wake.clear()


__all__ = ["LOCK_FILE", "Deliverer", "HookWorker", "address_policy", "backoff_ms"]
