"""Abuse control: client addresses, IP blocks, strikes that lead to blocks, shared counters.

Everything here is shared by all worker processes of a data dir:

* blocks live in the database (so they survive restarts) and each process
  keeps a copy checked against ``Storage.auth_version()`` on every request, so
  a block or unblock made by any worker or the CLI holds everywhere at once;
* strikes (auth failures, rate-limit violations, anomalies) are counted in the
  C rate limiter's shared table: a bucket of ``threshold`` per ``window``
  that runs dry exactly when an address has struck ``threshold`` times within
  the window, in whichever workers;
* counters for the security metrics are kept per process and added to a
  database table every couple of seconds.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from r13core.access import Rule, load_rules
from r13core.errors import InvalidValue
from r13core.keys import IPNetwork, parse_cidrs
from r13core.storage.base import BlockRecord, Storage
from r13core.users import Role

COUNTER_FLUSH_SECONDS: Final = 2.0


class SecuritySettingsError(InvalidValue):
    """A security variable has a value r13 cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise SecuritySettingsError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise SecuritySettingsError(f"{name}={value} is out of range {lo}..{hi}")
    return value


@dataclass(frozen=True)
class SecuritySettings:
    """Identity and abuse-control settings (``R13_*``; SECURITY_* are in Settings)."""

    trusted_proxies: tuple[IPNetwork, ...] = ()
    open_signup: bool = False
    signup_role: Role = Role.READER
    auth_rate_limit_max: int | None = None
    """Requests per window on login and token routes (None: a tenth of the default)."""
    block_auth_failures: int = 10
    block_limit_violations: int = 100
    block_anomalies: int = 20
    block_window_ms: int = 600_000
    block_duration_ms: int = 3_600_000
    limiter_slots: int = 65536
    rules: tuple[Rule, ...] = field(default=())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecuritySettings:
        """Parse ``env``; SecuritySettingsError names a bad variable."""
        try:
            proxies = parse_cidrs(
                p for p in env.get("R13_TRUSTED_PROXIES", "").split(",") if p.strip()
            )
        except InvalidValue as exc:
            raise SecuritySettingsError(f"R13_TRUSTED_PROXIES: {exc}") from None
        signup = env.get("R13_OPEN_SIGNUP", "").strip().lower()
        if signup not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise SecuritySettingsError(f"R13_OPEN_SIGNUP={signup!r} must be 0 or 1")
        try:
            role = Role.parse(env.get("R13_SIGNUP_ROLE", "reader") or "reader")
        except InvalidValue as exc:
            raise SecuritySettingsError(f"R13_SIGNUP_ROLE: {exc}") from None
        auth_max = _int(env, "R13_AUTH_RATE_LIMIT_MAX", 0, 0, 2**31)
        slots = _int(env, "R13_RATE_LIMIT_SLOTS", 65536, 64, 1 << 24)
        if slots & (slots - 1):
            raise SecuritySettingsError(f"R13_RATE_LIMIT_SLOTS={slots} is not a power of two")
        rules_path = env.get("R13_ACCESS_RULES", "").strip()
        try:
            rules = load_rules(rules_path) if rules_path else ()
        except InvalidValue as exc:
            raise SecuritySettingsError(f"R13_ACCESS_RULES: {exc}") from None
        return cls(
            trusted_proxies=proxies,
            open_signup=signup in ("1", "true", "yes", "on"),
            signup_role=role,
            auth_rate_limit_max=auth_max or None,
            block_auth_failures=_int(env, "R13_BLOCK_AUTH_FAILURES", 10, 0, 2**31),
            block_limit_violations=_int(env, "R13_BLOCK_LIMIT_VIOLATIONS", 100, 0, 2**31),
            block_anomalies=_int(env, "R13_BLOCK_ANOMALIES", 20, 0, 2**31),
            block_window_ms=_int(env, "R13_BLOCK_WINDOW", 600_000, 1000, 2**32),
            block_duration_ms=_int(env, "R13_BLOCK_DURATION", 3_600_000, 1000, 2**40),
            limiter_slots=slots,
            rules=rules,
        )


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


# -- blocks ----------------------------------------------------------------------------------


class Blocklist:
    """IP blocks in storage, with a per-process copy validated per request."""

    def __init__(self, db: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._blocks: dict[str, BlockRecord] = {}
        self._seen = threading.local()
        self._lock = threading.Lock()

    def _refresh(self, version: object = None) -> dict[str, BlockRecord]:
        if version is None:
            version = self._db.auth_version()
        if getattr(self._seen, "version", None) != version:
            self._seen.version = version
            with self._lock:
                self._blocks = {b.ip: b for b in self._db.list_blocks()}
        return self._blocks

    def blocked(self, ip: str, *, version: object = None) -> BlockRecord | None:
        """The live block of ``ip``, or None (``version``: a fresh ``auth_version()``)."""
        block = self._refresh(version).get(ip)
        if block is None:
            return None
        if block.expires is not None and block.expires <= self._clock():
            return None
        return block

    def block(self, ip: str, reason: str, duration_s: float | None) -> BlockRecord:
        """Block ``ip`` for ``duration_s`` seconds (None: until unblocked)."""
        now = self._clock()
        record = BlockRecord(
            normalize_ip(ip), reason, now, None if duration_s is None else now + duration_s
        )
        self._db.add_block(record)
        return record

    def unblock(self, ip: str) -> bool:
        """Lift the block of ``ip``; False if there was none."""
        return self._db.remove_block(normalize_ip(ip))

    def active(self) -> list[BlockRecord]:
        """Blocks in force now, by IP."""
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
    A threshold of 0 turns that kind of blocking off.
    """

    def __init__(
        self,
        limiter: StrikeCounter,
        blocks: Blocklist,
        settings: SecuritySettings,
        *,
        on_block: Callable[[BlockRecord], None] | None = None,
    ) -> None:
        self._limiter = limiter
        self._blocks = blocks
        self._window = settings.block_window_ms
        self._duration = settings.block_duration_ms / 1000
        self._thresholds = {
            "auth": settings.block_auth_failures,
            "limit": settings.block_limit_violations,
            "anomaly": settings.block_anomalies,
        }
        self._on_block = on_block

    def strike(self, ip: str, kind: str) -> BlockRecord | None:
        """Count one strike; the new block when this one crossed the threshold."""
        threshold = self._thresholds[kind]
        if threshold <= 0:
            return None
        decision = self._limiter.check(f"strike:{kind}:{ip}", threshold, self._window)
        if getattr(decision, "allowed", True):
            return None
        record = self._blocks.block(ip, f"too many {_KIND_TEXT[kind]}", self._duration)
        self.forgive(ip)
        if self._on_block is not None:
            self._on_block(record)
        return record

    def forgive(self, ip: str) -> None:
        """Forget an address's strikes (after a block, or when an admin unblocks it)."""
        for kind in STRIKE_KINDS:
            self._limiter.reset(f"strike:{kind}:{ip}")


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

    def __init__(self, db: Storage, *, clock: Callable[[], float] = time.monotonic) -> None:
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
