"""Abuse control: client addresses, IP blocks, strikes that lead to blocks, shared counters.

:class:`AbuseControl` holds the operations an admin does (block, unblock), each
writing its own audit event (``ip.block``, ``ip.unblock``); an automatic block made
by :class:`Strikes` is audited as r13's own ``ip.block`` (actor ``r13``, the address
it blocked). The settings (R13_BLOCK_*, R13_IPV6_PREFIX, ...) are
r13core/settings.py ``SecuritySettings``; the HTTP middleware that applies all of
this per request is app/security_middleware.py.

Everything here is shared by all worker processes of a data dir:

* blocks live in the database (so they survive restarts) and each process
  keeps a copy checked against ``IdentityStorage.auth_version()`` on every request, so
  a block or unblock made by any worker or the CLI holds everywhere at once;
* strikes (auth failures, rate-limit violations, anomalies) are counted in the
  C rate limiter's shared table: a bucket of ``threshold`` per ``window``
  that runs dry exactly when an address has struck ``threshold`` times within
  the window, in whichever workers;
* counters for the security metrics are kept per process and added to a
  database table every couple of seconds.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Final, Protocol

from r13core import cooperative
from r13core.audit import Actor, AuditLog
from r13core.errors import InvalidValue, NotFound
from r13core.keys import IPNetwork
from r13core.settings import SecuritySettings
from r13core.storage.counters import CountersStorage
from r13core.storage.identity import BlockRecord as BlockRecord  # for the web layer
from r13core.storage.identity import IdentityStorage

COUNTER_FLUSH_SECONDS: Final = 2.0


# -- client address -------------------------------------------------------------------


def normalize_ip(text: str) -> str:
    """An address in canonical text; IPv4-mapped IPv6 (``::ffff:1.2.3.4``) becomes IPv4.

    Text that is not an address comes back stripped (it then matches no CIDR).
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _trusted(ip: str, proxies: tuple[IPNetwork, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in proxies)


def client_ip(peer: str, forwarded_for: str | None, proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address: the socket peer, unless the peer is a trusted proxy.

    Behind trusted proxies, the right-most ``X-Forwarded-For`` entry that is not
    itself a trusted proxy (entries to its left are whatever the client wrote).
    """
    ip = normalize_ip(peer) if ":" in peer else peer
    if not proxies or not forwarded_for or not _trusted(ip, proxies):
        return ip
    hops = [normalize_ip(h) for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else ip


@functools.lru_cache(maxsize=4096)
def client_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The name an address is counted under for limits, strikes and blocks.

    IPv4 (and IPv4-mapped IPv6) addresses count one by one. An IPv6 address
    counts by its ``ipv6_prefix`` network (``2001:db8:1:2::/64`` by default):
    whoever holds a /64 holds every address in it, so counting addresses would
    hand out fresh buckets at will. Text that is not an address stays itself.
    """
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))


def parse_client(text: str, ipv6_prefix: int = 64) -> str:
    """An address or a client's prefix as an admin types it, as :func:`client_key` names it.

    ``2001:db8::7`` and ``2001:db8::/64`` both give ``2001:db8::/64`` (at the
    default prefix); an IPv4 address gives itself. InvalidValue for anything else
    (an IPv6 network of another length, an IPv4 network, a name).
    """
    text = text.strip()
    try:
        return client_key(str(ipaddress.ip_address(normalize_ip(text))), ipv6_prefix)
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidValue(f"{text!r} is not an IP address or an IPv6 prefix") from None
    if network.version == 6 and network.prefixlen == ipv6_prefix:
        return str(network)
    raise InvalidValue(
        f"{text!r}: give an address, or an IPv6 prefix of length /{ipv6_prefix} "
        "(R13_IPV6_PREFIX); other networks are not blocked as a whole"
    )


def is_local(peer: str, proxies: tuple[IPNetwork, ...], *, forwarded: bool) -> bool:
    """Whether a request comes from this machine itself, not through anything.

    "Local" is the one test behind everything r13 allows loopback clients
    without a key (reading /metrics, /_api/performance/*, /_api/config while
    PRIVATE_REGISTRY is on; the bootstrap admin key). A reverse proxy on the
    same host connects from loopback too, so a request is local only when the
    socket peer is a loopback address, the peer is not one of
    R13_TRUSTED_PROXIES (a request through a proxy is never local, whatever
    address it forwards), and the request carries no forwarding header at all
    (``forwarded``: X-Forwarded-For, Forwarded, X-Real-IP, Via, ...), which
    only proxies add.
    """
    if forwarded:
        return False
    ip = normalize_ip(peer)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False  # a Unix socket, or nothing: cannot tell, so not local
    return address.is_loopback and not _trusted(ip, proxies)


# -- blocks ----------------------------------------------------------------------------------


AUTO: Final = "auto"
MANUAL: Final = "manual"


class Blocklist:
    """Blocks in storage, with a per-process copy validated per request.

    Blocks are keyed by :func:`client_key`: blocking one IPv6 address blocks
    its prefix. ``kind`` says who made a block: ``"auto"`` (strikes; a request
    with a valid key still passes) or ``"manual"`` (an admin; refuses all).
    """

    def __init__(
        self, db: IdentityStorage, *, ipv6_prefix: int = 64, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._prefix = self.ipv6_prefix = ipv6_prefix
        self._clock = clock
        self._blocks: dict[str, BlockRecord] = {}
        self._seen = cooperative.thread_local()  # per OS thread: one refresh per change
        self._lock = threading.Lock()

    def key(self, ip: str) -> str:
        """The key ``ip`` (an address or a stored prefix) is blocked under now.

        A prefix stored under another R13_IPV6_PREFIX counts by its first address.
        """
        if "/" in ip:
            try:
                network = ipaddress.ip_network(ip, strict=False)
            except ValueError:
                return ip
            return client_key(str(network.network_address), self._prefix)
        return client_key(normalize_ip(ip), self._prefix)

    def _refresh(self, version: object = None) -> dict[str, BlockRecord]:
        if version is None:
            version = self._db.auth_version()
        if getattr(self._seen, "version", None) != version:
            blocks: dict[str, BlockRecord] = {}
            for b in self._db.list_blocks():
                # Rows from before IPv6 prefixes (or another R13_IPV6_PREFIX) still apply
                # to their prefix; where two meet, a manual block wins.
                key = self.key(b.ip)
                held = blocks.get(key)
                if held is None or (b.kind == MANUAL and held.kind != MANUAL):
                    blocks[key] = b
            with self._lock:
                self._blocks = blocks
            self._seen.version = version  # after the blocks it names are in place
        return self._blocks

    def blocked(self, key: str, *, version: object = None) -> BlockRecord | None:
        """The live block of client ``key`` (:func:`client_key`), or None.

        ``version``: a fresh ``auth_version()``, when the caller has one.
        """
        block = self._refresh(version).get(key)
        if block is None:
            return None
        if block.expires is not None and block.expires <= self._clock():
            return None
        return block

    def block(
        self, ip: str, reason: str, duration_s: float | None, *, kind: str = MANUAL
    ) -> BlockRecord:
        """Block ``ip`` (its prefix, for IPv6) for ``duration_s`` seconds (None: until lifted)."""
        if kind not in (AUTO, MANUAL):
            raise InvalidValue(f"a block is {AUTO!r} or {MANUAL!r}, not {kind!r}")
        now = self._clock()
        record = BlockRecord(
            self.key(ip), reason, now, None if duration_s is None else now + duration_s, kind
        )
        self._db.add_block(record)
        return record

    def unblock(self, ip: str) -> list[str]:
        """Lift the block of ``ip`` (an address or its prefix); the keys lifted ([] if none).

        Rows stored under another key for the same client (a full IPv6 address
        from before prefixes) are lifted with it.
        """
        key = self.key(ip)
        lifted = []
        for b in self._db.list_blocks():
            if (b.ip == key or self.key(b.ip) == key) and self._db.remove_block(b.ip):
                lifted.append(b.ip)
        return lifted

    def active(self) -> list[BlockRecord]:
        """Blocks in force now, by key."""
        now = self._clock()
        return [b for b in self._db.list_blocks() if b.expires is None or b.expires > now]


class StrikeCounter(Protocol):
    """What :class:`Strikes` needs from the shared limiter."""

    def check(self, key: str | bytes, capacity: int, window_ms: int) -> object: ...

    def reset(self, key: str | bytes) -> None: ...


STRIKE_KINDS: Final = ("auth", "limit", "anomaly")


class Strikes:
    """Counts an address's auth failures, limit violations and anomalies across workers.

    Each kind is a shared GCRA bucket of ``threshold`` per ``window``: the strike
    that finds it empty is the one past the threshold, and the address is blocked.
    A threshold of 0 turns that kind of blocking off. With ``audit``, each block is
    recorded as ``ip.block`` by r13 itself (the blocked address as the event's address).
    """

    def __init__(
        self,
        limiter: StrikeCounter,
        blocks: Blocklist,
        settings: SecuritySettings,
        *,
        on_block: Callable[[BlockRecord], None] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._limiter = limiter
        self._blocks = blocks
        self._audit = audit
        self._window = settings.block_window_ms
        self._duration = settings.block_duration_ms / 1000
        self._thresholds = {
            "auth": settings.block_auth_failures,
            "limit": settings.block_limit_violations,
            "anomaly": settings.block_anomalies,
        }
        self._on_block = on_block

    def enabled(self, kind: str) -> bool:
        """Whether strikes of ``kind`` can block (its threshold is not 0)."""
        return self._thresholds[kind] > 0

    def strike(self, key: str, kind: str) -> BlockRecord | None:
        """Count one strike of client ``key``; the new (automatic) block when it crossed the
        threshold.

        A strike that the limiter refuses only because its table is full of other
        clients (``Decision.full``) is not a crossing: a flood of new addresses
        must not turn each one's first strike into a block.
        """
        threshold = self._thresholds[kind]
        if threshold <= 0:
            return None
        decision = self._limiter.check(f"strike:{kind}:{key}", threshold, self._window)
        if getattr(decision, "allowed", True) or getattr(decision, "full", False):
            return None
        record = self._blocks.block(key, f"too many {_KIND_TEXT[kind]}", self._duration, kind=AUTO)
        self.forgive(key)
        if self._audit is not None:
            self._audit.safe_record_by(
                Actor.system(record.ip), "ip.block", record.ip, reason=record.reason, kind=AUTO
            )
        if self._on_block is not None:
            self._on_block(record)
        return record

    def forgive(self, key: str) -> None:
        """Forget a client's strikes (after a block, or when an admin unblocks it)."""
        forget(self._limiter, key)


def forget(limiter: StrikeCounter, key: str) -> None:
    """Reset every strike bucket of client ``key`` in ``limiter``."""
    for kind in STRIKE_KINDS:
        limiter.reset(f"strike:{kind}:{key}")


class AbuseControl:
    """What an admin does about clients (the admin API, `r13 security`, the terminal),
    each audited.

    ``strikes``: the shared limiter the server counts strikes in; an unblock
    forgets the client's strikes there too (None: nothing to forget them in).
    """

    def __init__(
        self, blocks: Blocklist, audit: AuditLog, strikes: StrikeCounter | None = None
    ) -> None:
        self.blocks = blocks
        self.audit = audit
        self._strikes = strikes

    def client(self, text: str) -> str:
        """The client key an admin means by ``text`` (:func:`parse_client`)."""
        return parse_client(text, self.blocks.ipv6_prefix)

    def block(
        self, actor: Actor, client: str, reason: str, duration_s: float | None
    ) -> BlockRecord:
        """Block ``client`` (an address; an IPv6 one blocks its prefix; or an IPv6 prefix)
        for ``duration_s`` seconds (None: until unblocked). The block is manual: it
        refuses every request from there, with a key too. InvalidValue for a bad client.
        """
        record = self.blocks.block(self.client(client), reason, duration_s, kind=MANUAL)
        self.audit.safe_record_by(actor, "ip.block", record.ip, reason=reason, kind=MANUAL)
        return record

    def unblock(self, actor: Actor, client: str) -> str:
        """Lift the block of ``client`` and forget its strikes; the client key lifted.

        NotFound when it is not blocked.
        """
        key = self.client(client)
        if not self.blocks.unblock(key):
            raise NotFound(f"{key} is not blocked")
        if self._strikes is not None:
            forget(self._strikes, key)
        self.audit.safe_record_by(actor, "ip.unblock", key)
        return key


_KIND_TEXT: Final = {
    "auth": "authentication failures",
    "limit": "rate-limit violations",
    "anomaly": "hostile requests",
}


# -- shared counters ---------------------------------------------------------------------------


class SecurityCounters:
    """Per-process counters of security events, added to storage every couple of seconds.

    Kinds: ``request`` (label ``ROUTE STATUS``), ``client`` (IP), ``auth_failure``
    (IP), ``rate_limited`` (IP), ``anomaly`` (kind), ``blocked`` (IP). Reading
    flushes this process first; other workers' last couple of seconds (or last few
    events, for a worker that has been idle since) may be missing.
    """

    def __init__(self, db: CountersStorage, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._clock = clock
        self._pending: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._flushed = clock()
        self._adds = 0

    def add(self, kind: str, label: str, n: int = 1) -> None:
        """Count ``n`` events of ``kind`` for ``label``."""
        self._pending[(kind, label)] += n
        self._adds += 1
        # Look at the clock every 8 events only: this runs several times per request.
        if not self._adds & 7 and self._clock() - self._flushed >= COUNTER_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Add what this process counted to the shared table."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._flushed = self._clock()
            pending, self._pending = self._pending, Counter()
            if pending:
                self._db.add_counters([(k, label, n) for (k, label), n in pending.items()])
        finally:
            self._lock.release()

    def totals(self) -> dict[str, dict[str, int]]:
        """{kind: {label: count}} over every process (after flushing this one)."""
        self.flush()
        out: dict[str, dict[str, int]] = {}
        for kind, label, count in self._db.counters():
            out.setdefault(kind, {})[label] = count
        return out
