"""Rate limiting shared by every worker process: GCRA buckets in shared memory.

:class:`RateLimiter` wraps ``csrc/ratelimit.c``: a table of GCRA buckets in a
shared-memory segment tied to a data dir, one 64-bit word per key updated by
compare-and-swap, so a limit is exact across gunicorn workers (and threads).
:class:`PyRateLimiter` is its pure-Python twin (one process only): the oracle
of the property tests and the baseline of the benchmarks.

The algorithm (both implementations, integer nanoseconds): for ``capacity`` c
and ``window_ms`` W, the emission interval is T = W / c (truncated to whole
ns) and a full bucket admits a burst of exactly c. A request of ``cost`` is
admitted when the bucket holds ``cost`` tokens; one token comes back every T.
A :class:`Decision` says whether it was admitted, how many unit requests are
still admitted right now, when the bucket is full again (``reset``) and, for
a refusal, when this request would be admitted (``retry_after``). A refusal
changes nothing. Capacity and window are per call, so one table serves every
limit (per IP, per key, stricter on login); give each limit its own key
prefix, since a bucket remembers only its TAT, not its parameters.

Bounded size: the table has ``slots`` slots (a power of two). A new key is
placed within 32 slots of its hash; when those are taken, the one idle for
longest is evicted (an idle bucket, one that has refilled completely, is
indistinguishable from a fresh one, so evicting it loses nothing).

**Full of busy entries.** When all 32 candidate slots of a NEW key hold
busy buckets, nothing can be evicted without forgetting someone's usage, so
the new key fails closed: :meth:`RateLimiter.check` returns a refusal
(``allowed=False, remaining=0, full=True``) whose ``retry_after_ns`` is when
the first of those slots goes idle; it does not raise. ``full`` tells such a
refusal from one the key earned itself: callers never count it against the
client (r13core/abuse.py ``Strikes``). Keys already in the table keep
working normally, so a flood of new IPs cannot lift the limits of known
clients. Size ``slots`` well above the number of keys active in one window
(:meth:`RateLimiter.stats` reports ``busy``) to make this rare.

**The per-request path.** :meth:`RateLimiter.limit` makes a :class:`Limit`: one
(capacity, window, cost) that the C core validated once (``r13_limit``), checked by
key alone — four arguments into C instead of eight, the same decision on the same
bucket as :meth:`RateLimiter.check`. A server makes its limits once and checks them
on every request; ``check()`` stays for one-off limits (strikes, tests).
:meth:`Limit.take` is the same check with the decision packed in one int (the
``R13_PACK_*`` layout of csrc/r13.h, read with :func:`packed_allowed` and its
siblings): no output struct and no :class:`Decision` to build, the cheapest call
from Python. :meth:`Limit.take_with` checks a second limit of the same request
(an API key's, after the address's) in the same call and returns the tighter one.

Clock: ``now_ns`` is a ``CLOCK_MONOTONIC`` time in ns (see :func:`monotonic_ns`);
``None`` (or 0) reads the clock. Tests pass a frozen clock.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from r13core import cooperative
from r13core._ffi import EFULL, NativeHandle, check, check_attach, ffi, lib, raise_for
from r13core.errors import InvalidValue

__all__ = [
    "MAX_KEY_BYTES",
    "PACK_SECOND",
    "PROBE_WINDOW",
    "Decision",
    "Limit",
    "LimiterStats",
    "PyRateLimiter",
    "RateLimiter",
    "monotonic_ns",
    "pack",
    "packed_allowed",
    "packed_full",
    "packed_remaining",
    "packed_reset_seconds",
    "packed_retry_after_seconds",
]

MAX_KEY_BYTES: Final = 256
PROBE_WINDOW: Final = 32  # slots a key may land in (R13__PROBE in ratelimit.c)
MIN_SLOTS: Final = 64
MAX_SLOTS: Final = 1 << 24
MAX_WINDOW_MS: Final = 1 << 32
MAX_NAME: Final = 21  # the segment is "rl-<name>", at most 24 characters
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_NS: Final = 1_000_000_000
_U32: Final = (1 << 32) - 1


def _ceil_seconds(ns: int) -> int:
    return -(-ns // _NS)


class Decision(NamedTuple):
    """The outcome of one :meth:`RateLimiter.check`. Times are ns from ``now``."""

    allowed: bool
    remaining: int
    """Unit requests still admitted right now (``RateLimit-Remaining``)."""
    reset_ns: int
    """Until the bucket is full again (``RateLimit-Reset``)."""
    retry_after_ns: int
    """0 when allowed; else until this request would be admitted."""
    full: bool = False
    """True for the refusal of a NEW key because the table is full of busy keys:
    it says nothing about this client's own rate (never count it against them)."""

    @property
    def reset_seconds(self) -> int:
        """``reset_ns`` in whole seconds, rounded up (for HTTP headers)."""
        return _ceil_seconds(self.reset_ns)

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` in whole seconds, rounded up; at least 1 when refused."""
        if self.allowed:
            return 0
        return max(1, _ceil_seconds(self.retry_after_ns))


# Built straight from a tuple on the hot path: a NamedTuple's own __new__ is a
# Python call that costs as much as the C check.
_tuple_new = tuple.__new__


def _decision(
    allowed: bool, remaining: int, reset_ns: int, retry_after_ns: int, full: bool = False
) -> Decision:
    return _tuple_new(Decision, (allowed, remaining, reset_ns, retry_after_ns, full))


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """Occupancy of a limiter table at one instant."""

    slots: int
    """Size of the table."""
    used: int
    """Slots holding a key (idle or busy)."""
    busy: int
    """Slots whose bucket is not full (cannot be evicted now)."""


def monotonic_ns() -> int:
    """``CLOCK_MONOTONIC`` in ns, read by the C core (the limiter's clock)."""
    out = ffi.new("uint64_t *")
    check(lib.r13_monotonic_ns(out), "monotonic clock")
    return int(out[0])


def _validate_name(name: str) -> None:
    if not (1 <= len(name) <= MAX_NAME) or not set(name) <= _NAME_CHARS:
        raise InvalidValue(
            f"limiter name must be 1..{MAX_NAME} characters of [a-z0-9_-], got {name!r}"
        )


def _validate_slots(slots: int) -> None:
    if not (MIN_SLOTS <= slots <= MAX_SLOTS) or slots & (slots - 1):
        raise InvalidValue(f"slots must be a power of two in [64, 2**24], got {slots}")


def _key_bytes(key: str | bytes) -> bytes:
    data = key.encode() if isinstance(key, str) else bytes(key)
    if not 1 <= len(data) <= MAX_KEY_BYTES:
        raise InvalidValue(f"a limiter key must be 1..{MAX_KEY_BYTES} bytes, got {len(data)}")
    return data


# r13_decision as laid out by the C compiler (native alignment, as struct's "@"):
# u8 allowed, u32 remaining, u64 reset_ns, u64 retry_after_ns, u8 full -- the fields
# of Decision in order, so one unpack is the Decision's tuple.
_DECISION: Final = struct.Struct("@?IQQ?")
if [ffi.offsetof("r13_decision", f) for f in Decision._fields] != [
    0,
    4,
    8,
    16,
    24,
] or _DECISION.size > ffi.sizeof("r13_decision"):  # pragma: no cover - another ABI
    raise ImportError("r13_decision does not have the layout r13core.ratelimit expects")
_unpack_decision: Final = _DECISION.unpack_from
_limit_check: Final = lib.r13_limit_check
_limit_take: Final = lib.r13_limit_take
_limit_take2: Final = lib.r13_limit_take2

# The packed decision of Limit.take (csrc/r13.h R13_PACK_*).
PACK_ALLOWED: Final[int] = lib.R13_PACK_ALLOWED
PACK_FULL: Final[int] = lib.R13_PACK_FULL
_RESET_SHIFT: Final[int] = lib.R13_PACK_RESET_SHIFT
_COUNT_SHIFT: Final[int] = lib.R13_PACK_COUNT_SHIFT
_SECONDS_MAX: Final[int] = lib.R13_PACK_SECONDS_MAX
PACK_SECOND: Final[int] = lib.R13_PACK_SECOND
"""Set by :meth:`Limit.take_with` when the decision is its second limit's."""


def packed_allowed(v: int) -> bool:
    """Whether the packed decision ``v`` admits the request."""
    return bool(v & PACK_ALLOWED)


def packed_full(v: int) -> bool:
    """Whether ``v`` is a refusal because the table is full (see ``Decision.full``)."""
    return bool(v & PACK_FULL)


def packed_remaining(v: int) -> int:
    """Unit requests still admitted right now (0 for a refusal)."""
    return (v >> _COUNT_SHIFT) & _U32 if v & PACK_ALLOWED else 0


def packed_reset_seconds(v: int) -> int:
    """Whole seconds until the bucket is full again, rounded up."""
    return (v >> _RESET_SHIFT) & _SECONDS_MAX


def packed_retry_after_seconds(v: int) -> int:
    """0 when admitted; else whole seconds until the request would be, at least 1."""
    return 0 if v & PACK_ALLOWED else (v >> _COUNT_SHIFT) & _U32


def pack(d: Decision) -> int:
    """``d`` in the packed layout: what :meth:`Limit.take` returns for the same decision."""
    count = d.remaining if d.allowed else max(1, _ceil_seconds(d.retry_after_ns))
    return (
        (PACK_ALLOWED if d.allowed else 0)
        | (PACK_FULL if d.full else 0)
        | (min(_ceil_seconds(d.reset_ns), _SECONDS_MAX) << _RESET_SHIFT)
        | ((min(count, _SECONDS_MAX) if not d.allowed else count & _U32) << _COUNT_SHIFT)
    )


def _outputs() -> tuple[Any, Any]:
    out = ffi.new("r13_decision *")
    return out, ffi.buffer(out)


class RateLimiter(NativeHandle):
    """A GCRA rate limiter whose table is shared by every process of a data dir.

    ``RateLimiter(data_dir, name)`` in any number of processes (and any number
    of times in one) shares one table; different data dirs or names never
    share. The table lives while someone has it open: when the last user
    closes (or dies), the next open starts from an empty table, with the
    ``slots`` it asks for. A table already open keeps its own size.

    Thread-safe: :meth:`check`, :meth:`reset` and :meth:`stats` may run from
    many threads at once. Do not :meth:`close` while other threads still use
    the limiter.

    Open it in each process after forking (gunicorn: ``post_fork`` or lazily
    on first use), not in a preloading parent: a forked child would share the
    parent's lock files, and the parent closing its limiter would then remove
    the table from under the children.
    """

    __slots__ = ("_lim", "_local", "name")

    def __init__(
        self, data_dir: str | os.PathLike[str], name: str = "default", slots: int = 65536
    ) -> None:
        """Open (creating if needed) the table ``name`` of ``data_dir``.

        Raises InvalidValue for a bad name or slot count, NativeOSError when
        the shared memory cannot be set up (e.g. the dir does not exist).
        """
        _validate_name(name)
        _validate_slots(slots)
        self.name = name
        self._lim: Any = ffi.new("r13_limiter *")
        check_attach(
            lib.r13_limiter_open(self._lim, os.fsencode(data_dir), name.encode(), slots),
            data_dir,
            f"rl-{name}",
            f"rate limiter {name!r}",
        )
        self._open = True
        # An output buffer per OS thread: cffi drops the GIL during the call, so
        # threads must not share one (greenlets of one thread may: none switches
        # inside the C call or between it and the unpacking).
        self._local = cooperative.thread_local()

    @property
    def slots(self) -> int:
        """Number of slots of the table (its own, if it was already open)."""
        return int(self._lim.slots)

    def check(
        self,
        key: str | bytes,
        capacity: int,
        window_ms: int,
        cost: int = 1,
        now_ns: int | None = None,
    ) -> Decision:
        """Count one request of ``cost`` for ``key`` against ``capacity`` per ``window_ms``.

        Admitted requests are recorded; refusals change nothing. When the
        table is full of busy entries and ``key`` is new, the result is a
        refusal (see the module docstring) rather than an exception.

        Raises InvalidValue for an empty key or one over 256 bytes (UTF-8),
        capacity < 1, cost outside 1..capacity, window_ms outside 1..2**32 or
        shorter than ``capacity`` ns; NativeOSError (ECLOCK) for a time
        outside the table's range.
        """
        data = key.encode() if type(key) is str else key
        try:
            out, buf = self._local.out
        except AttributeError:
            out, buf = self._local.out = _outputs()
        try:
            rc = lib.r13_limiter_check(
                self._lim, data, len(data), capacity, window_ms, cost, now_ns or 0, out
            )
        except OverflowError as exc:  # a negative or too large number
            raise InvalidValue(f"rate limit check: {exc}") from exc
        if rc and rc != EFULL:
            raise_for(rc, "rate limit check")
        return _tuple_new(Decision, _unpack_decision(buf))

    def limit(self, capacity: int, window_ms: int, cost: int = 1) -> Limit:
        """One limit of this table, validated once, for many :meth:`Limit.check` calls.

        ``limiter.limit(c, w).check(key)`` decides exactly as
        ``limiter.check(key, c, w)`` (same bucket, same table) in a cheaper call:
        the hot path for a limit that every request checks. Raises InvalidValue
        for the arguments :meth:`check` would refuse.
        """
        return Limit(self, capacity, window_ms, cost)

    def reset(self, key: str | bytes) -> None:
        """Forget ``key``: its bucket is full again (e.g. when an IP is unblocked)."""
        data = _key_bytes(key)
        check(lib.r13_limiter_reset(self._lim, data, len(data)), "rate limit reset")

    def stats(self, now_ns: int | None = None) -> LimiterStats:
        """How many slots hold a key, and how many of those are busy at ``now_ns``.

        A snapshot: only exact while nobody else is checking.
        """
        used = ffi.new("uint32_t *")
        busy = ffi.new("uint32_t *")
        try:
            rc = lib.r13_limiter_stats(self._lim, now_ns or 0, used, busy)
        except OverflowError as exc:
            raise InvalidValue(f"rate limit stats: {exc}") from exc
        check(rc, "rate limit stats")
        return LimiterStats(slots=self.slots, used=int(used[0]), busy=int(busy[0]))

    def _release(self) -> None:
        lib.r13_limiter_close(self._lim)


class Limit:
    """One limit (``capacity`` requests of ``cost`` per ``window_ms``) of a :class:`RateLimiter`.

    Made by :meth:`RateLimiter.limit`. The C core validated the numbers once and
    keeps them (``r13_limit`` in csrc/ratelimit.c), so a check passes only the
    key: the per-request call of a server, where each argument of the eight of
    :meth:`RateLimiter.check` costs a conversion. Thread-safe like the limiter;
    it keeps its limiter alive, and once the limiter is closed its checks raise
    InvalidValue.
    """

    __slots__ = ("_c", "_limiter", "_local", "capacity", "cost", "window_ms")

    def __init__(self, limiter: RateLimiter, capacity: int, window_ms: int, cost: int = 1) -> None:
        """See :meth:`RateLimiter.limit`."""
        for name, value in (("capacity", capacity), ("window_ms", window_ms), ("cost", cost)):
            if type(value) is not int:
                raise InvalidValue(f"{name} must be an integer, not {value!r}")
        self._limiter = limiter
        self.capacity, self.window_ms, self.cost = capacity, window_ms, cost
        self._c: Any = ffi.new("r13_limit *")
        try:
            rc = lib.r13_limit_init(self._c, limiter._lim, capacity, window_ms, cost)
        except OverflowError as exc:
            raise InvalidValue(f"rate limit: {exc}") from exc
        if rc:
            raise InvalidValue(
                f"need 1 <= cost ({cost}) <= capacity ({capacity}) < 2**32 and 1 <= window_ms "
                f"({window_ms}) <= 2**32 with at least capacity ns"
            )
        self._local = limiter._local

    def check(self, key: str | bytes, now_ns: int | None = None) -> Decision:
        """Count one request for ``key``: as :meth:`RateLimiter.check` with this limit.

        Raises InvalidValue for an empty key or one over 256 bytes (UTF-8), or a
        closed limiter; NativeOSError (ECLOCK) for a time outside the table's range.
        """
        data = key.encode() if type(key) is str else key
        try:
            out, buf = self._local.out
        except AttributeError:
            out, buf = self._local.out = _outputs()
        if now_ns:
            try:
                rc = _limit_check(self._c, data, len(data), now_ns, out)
            except OverflowError as exc:
                raise InvalidValue(f"rate limit check: {exc}") from exc
        else:
            rc = _limit_check(self._c, data, len(data), 0, out)
        if rc and rc != EFULL:
            raise_for(rc, "rate limit check")
        return _tuple_new(Decision, _unpack_decision(buf))

    def take(self, key: str | bytes, now_ns: int = 0) -> int:
        """:meth:`check`, its decision packed in one int (``packed_*`` read it).

        The per-request call: one crossing into C with four arguments and an int
        back. Raises as :meth:`check`.
        """
        data = key.encode() if type(key) is str else key
        try:
            v: int = _limit_take(self._c, data, len(data), now_ns)
        except (OverflowError, TypeError) as exc:
            raise InvalidValue(f"rate limit check: {exc}") from exc
        if v < 0:
            raise_for(v, "rate limit check")
        return v

    def take_with(
        self, key: str | bytes, then: Limit, then_key: str | bytes, now_ns: int = 0
    ) -> int:
        """This limit for ``key`` and, only when it admits, ``then`` for ``then_key``, in
        one call at one clock reading: the tighter decision, packed (``then``'s when it
        refuses or leaves fewer requests, with :data:`PACK_SECOND` set). E.g. a client
        address's limit, then its API key's.
        """
        data = key.encode() if type(key) is str else key
        other = then_key.encode() if type(then_key) is str else then_key
        try:
            v: int = _limit_take2(self._c, data, len(data), then._c, other, len(other), now_ns)
        except (OverflowError, TypeError) as exc:
            raise InvalidValue(f"rate limit check: {exc}") from exc
        if v < 0:
            raise_for(v, "rate limit check")
        return v

    def __repr__(self) -> str:
        return (
            f"Limit({self._limiter.name!r}, capacity={self.capacity}, "
            f"window_ms={self.window_ms}, cost={self.cost})"
        )


class PyRateLimiter:
    """The pure-Python twin of :class:`RateLimiter`, for one process.

    Same GCRA integer math, same argument checks, same bounded table: a key
    lands within :data:`PROBE_WINDOW` slots of its hash (Python's ``hash``,
    not the C table's seeded hash, so which keys collide differs), evicts the
    longest-idle bucket there, and a new key facing only busy buckets gets
    the same fail-closed refusal. A dict maps keys to slots; one lock guards
    everything.
    """

    def __init__(self, slots: int = 65536) -> None:
        """An empty table of ``slots`` slots (a power of two in [64, 2**24])."""
        _validate_slots(slots)
        self.slots = slots
        self._mask = slots - 1
        self._keys: list[bytes | None] = [None] * slots
        self._tats: list[int] = [0] * slots
        self._index: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def check(
        self,
        key: str | bytes,
        capacity: int,
        window_ms: int,
        cost: int = 1,
        now_ns: int | None = None,
    ) -> Decision:
        """As :meth:`RateLimiter.check`."""
        data = _key_bytes(key)
        if not (1 <= capacity <= _U32) or not (1 <= cost <= capacity):
            raise InvalidValue(f"need 1 <= cost ({cost}) <= capacity ({capacity}) < 2**32")
        if not 1 <= window_ms <= MAX_WINDOW_MS or window_ms * 1_000_000 < capacity:
            raise InvalidValue(f"window_ms {window_ms} out of range for capacity {capacity}")
        now = now_ns or monotonic_ns()
        if now < 0:
            raise InvalidValue(f"now_ns must not be negative, got {now}")
        t = window_ms * 1_000_000 // capacity
        tau = t * capacity
        with self._lock:
            slot = self._index.get(data)
            if slot is None:
                slot = self._place(data, now)
                if slot < 0:
                    retry = self._soonest(data) - now
                    return _decision(False, 0, retry, retry, True)
            tat = self._tats[slot]
            base = max(tat, now)
            new_tat = base + cost * t
            if new_tat - now <= tau:
                self._tats[slot] = new_tat
                return _decision(True, (now + tau - new_tat) // t, new_tat - now, 0)
            ahead = base - now
            remaining = 0 if ahead >= tau else (tau - ahead) // t
            return _decision(False, remaining, ahead, new_tat - tau - now)

    def _window(self, data: bytes) -> range:
        first = hash(data) & self._mask
        return range(first, first + min(PROBE_WINDOW, self.slots))

    def _place(self, data: bytes, now: int) -> int:
        """A slot for a new key (claimed or evicted), or -1 when all are busy."""
        victim = -1
        for i in self._window(data):
            slot = i & self._mask
            old = self._keys[slot]
            if old is None:
                victim = slot
                break
            tat = self._tats[slot]
            if tat <= now and (victim < 0 or tat < self._tats[victim]):
                victim = slot
        if victim < 0:
            return -1
        old = self._keys[victim]
        if old is not None:
            del self._index[old]
        self._keys[victim] = data
        self._tats[victim] = 0
        self._index[data] = victim
        return victim

    def _soonest(self, data: bytes) -> int:
        return min(self._tats[i & self._mask] for i in self._window(data))

    def reset(self, key: str | bytes) -> None:
        """As :meth:`RateLimiter.reset`."""
        data = _key_bytes(key)
        with self._lock:
            slot = self._index.get(data)
            if slot is not None:
                self._tats[slot] = 0

    def stats(self, now_ns: int | None = None) -> LimiterStats:
        """As :meth:`RateLimiter.stats`."""
        now = now_ns or monotonic_ns()
        with self._lock:
            used = len(self._index)
            busy = sum(1 for slot in self._index.values() if self._tats[slot] > now)
        return LimiterStats(slots=self.slots, used=used, busy=busy)
