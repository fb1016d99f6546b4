"""The rate limiter: C table (RateLimiter) and its Python twin (PyRateLimiter)."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core.errors import InvalidValue, NativeOSError
from r13core.ratelimit import (
    PACK_SECOND,
    Decision,
    LimiterStats,
    PyRateLimiter,
    RateLimiter,
    monotonic_ns,
    pack,
    packed_allowed,
    packed_full,
    packed_remaining,
    packed_reset_seconds,
    packed_retry_after_seconds,
)

MS = 1_000_000
SEC = 1_000_000_000


class Limiter(Protocol):
    def check(
        self,
        key: str | bytes,
        capacity: int,
        window_ms: int,
        cost: int = 1,
        now_ns: int | None = None,
    ) -> Decision: ...

    def reset(self, key: str | bytes) -> None: ...

    def stats(self, now_ns: int | None = None) -> LimiterStats: ...


@pytest.fixture(params=["c", "py"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Limiter]:
    """Each behaviour test runs against both implementations."""
    if request.param == "c":
        with RateLimiter(tmp_path, "unit") as lim:
            yield lim
    else:
        yield PyRateLimiter()


@pytest.fixture
def now() -> int:
    return monotonic_ns()


# ---- GCRA values ----------------------------------------------------------


def test_burst_of_capacity_is_admitted_then_refused(limiter: Limiter, now: int) -> None:
    results = [limiter.check("ip", 5, 1000, now_ns=now).allowed for _ in range(8)]
    assert results == [True] * 5 + [False] * 3


def test_one_request_more_is_admitted_after_one_emission_interval(
    limiter: Limiter, now: int
) -> None:
    t = 200 * MS  # 5 per second
    for _ in range(5):
        limiter.check("ip", 5, 1000, now_ns=now)
    assert not limiter.check("ip", 5, 1000, now_ns=now + t - 1).allowed
    assert limiter.check("ip", 5, 1000, now_ns=now + t).allowed
    assert not limiter.check("ip", 5, 1000, now_ns=now + t).allowed


def test_decision_values_are_exact_with_a_frozen_clock(limiter: Limiter, now: int) -> None:
    t = 200 * MS
    for i in range(5):
        assert limiter.check("ip", 5, 1000, now_ns=now) == Decision(True, 4 - i, (i + 1) * t, 0)
    assert limiter.check("ip", 5, 1000, now_ns=now) == Decision(False, 0, 5 * t, t)
    # Half an interval later: still refused, half an interval to wait.
    assert limiter.check("ip", 5, 1000, now_ns=now + t // 2) == Decision(
        False, 0, 5 * t - t // 2, t // 2
    )
    # A full window later the bucket is full again.
    assert limiter.check("ip", 5, 1000, now_ns=now + 5 * t) == Decision(True, 4, t, 0)


def test_refusal_does_not_consume_tokens(limiter: Limiter, now: int) -> None:
    limiter.check("ip", 2, 1000, now_ns=now)
    limiter.check("ip", 2, 1000, now_ns=now)
    for _ in range(10):
        assert not limiter.check("ip", 2, 1000, now_ns=now).allowed
    assert limiter.check("ip", 2, 1000, now_ns=now + 500 * MS).allowed


def test_cost_above_one_takes_that_many_tokens(limiter: Limiter, now: int) -> None:
    t = 100 * MS  # 10 per second
    assert limiter.check("k", 10, 1000, cost=4, now_ns=now) == Decision(True, 6, 4 * t, 0)
    assert limiter.check("k", 10, 1000, cost=4, now_ns=now) == Decision(True, 2, 8 * t, 0)
    # Two tokens left, four asked: refused, two intervals to wait.
    assert limiter.check("k", 10, 1000, cost=4, now_ns=now) == Decision(False, 2, 8 * t, 2 * t)
    assert limiter.check("k", 10, 1000, cost=2, now_ns=now) == Decision(True, 0, 10 * t, 0)


def test_window_not_divisible_by_capacity_never_admits_more_than_capacity(
    limiter: Limiter, now: int
) -> None:
    admitted = sum(limiter.check("k", 7, 1, now_ns=now).allowed for _ in range(20))
    assert admitted == 7


def test_keys_are_independent_and_bytes_equal_their_utf8_str(limiter: Limiter, now: int) -> None:
    assert limiter.check("é", 1, 1000, now_ns=now).allowed
    assert not limiter.check("é".encode(), 1, 1000, now_ns=now).allowed
    assert limiter.check("e", 1, 1000, now_ns=now).allowed


def test_reset_makes_the_bucket_full_again(limiter: Limiter, now: int) -> None:
    for _ in range(3):
        limiter.check("ip", 3, 1000, now_ns=now)
    assert not limiter.check("ip", 3, 1000, now_ns=now).allowed
    limiter.reset("ip")
    assert limiter.check("ip", 3, 1000, now_ns=now) == Decision(True, 2, 333_333_333, 0)
    limiter.reset("never-seen")  # nothing to forget: no error


@pytest.mark.parametrize(
    ("key", "capacity", "window_ms", "cost"),
    [
        ("", 5, 1000, 1),
        ("x" * 257, 5, 1000, 1),
        ("k", 0, 1000, 1),
        ("k", -1, 1000, 1),
        ("k", 2**32, 1000, 1),
        ("k", 5, 0, 1),
        ("k", 5, -5, 1),
        ("k", 5, 2**32 + 1, 1),
        ("k", 5, 1000, 0),
        ("k", 5, 1000, 6),
        ("k", 2_000_000, 1, 1),  # more requests than ns in the window
    ],
)
def test_bad_check_arguments_raise_invalid_value(
    limiter: Limiter, key: str, capacity: int, window_ms: int, cost: int
) -> None:
    with pytest.raises(InvalidValue):
        limiter.check(key, capacity, window_ms, cost)


def test_longest_key_and_longest_window_are_accepted(limiter: Limiter, now: int) -> None:
    assert limiter.check("x" * 256, 5, 2**32, now_ns=now).allowed


@pytest.mark.parametrize("slots", [0, 32, 63, 100, 2**25])
def test_bad_slot_counts_raise_invalid_value(tmp_path: Path, slots: int) -> None:
    with pytest.raises(InvalidValue):
        RateLimiter(tmp_path, "x", slots=slots)
    with pytest.raises(InvalidValue):
        PyRateLimiter(slots=slots)


@pytest.mark.parametrize("name", ["", "Upper", "a b", "x" * 22, "../x"])
def test_bad_names_raise_invalid_value(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidValue):
        RateLimiter(tmp_path, name)


def test_missing_data_dir_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(NativeOSError):
        RateLimiter(tmp_path / "absent")


def test_time_outside_the_table_range_raises(tmp_path: Path) -> None:
    with RateLimiter(tmp_path) as lim, pytest.raises(NativeOSError):
        lim.check("k", 5, 1000, now_ns=2**64 - 1)


def test_closed_limiter_refuses_calls(tmp_path: Path) -> None:
    lim = RateLimiter(tmp_path)
    lim.close()
    lim.close()  # idempotent
    with pytest.raises(InvalidValue):
        lim.check("k", 5, 1000)


# ---- Limit: one limit validated once, checked by key ----------------------------


def test_limit_handle_decides_like_check_and_shares_its_buckets(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path) as lim:
        limit = lim.limit(3, 1000)
        assert (limit.capacity, limit.window_ms, limit.cost) == (3, 1000, 1)
        assert limit.check("ip:a", now_ns=now) == lim.check("ip:b", 3, 1000, now_ns=now)
        # One bucket per key, whichever way it is checked.
        assert limit.check(b"ip:a", now_ns=now) == Decision(True, 1, 666_666_666, 0)
        assert lim.check("ip:a", 3, 1000, now_ns=now) == Decision(True, 0, 999_999_999, 0)
        refused = limit.check("ip:a", now_ns=now)
        assert refused == Decision(False, 0, 999_999_999, 333_333_333)
        assert type(refused) is Decision and refused.allowed is False
        assert lim.limit(3, 1000, cost=2).check("ip:c", now_ns=now).remaining == 1
        # Without a time it reads the limiter's clock.
        assert limit.check("ip:d").remaining == 2


@pytest.mark.parametrize(
    ("capacity", "window_ms", "cost"),
    [(0, 1000, 1), (-1, 1000, 1), (2**32, 1000, 1), (5, 0, 1), (5, 2**32 + 1, 1),
     (5, 1000, 0), (5, 1000, 6), (2_000_000, 1, 1), (5.0, 1000, 1)],
)  # fmt: skip
def test_limit_handle_refuses_what_check_refuses(
    tmp_path: Path, capacity: int, window_ms: int, cost: int
) -> None:
    with RateLimiter(tmp_path) as lim, pytest.raises(InvalidValue):
        lim.limit(capacity, window_ms, cost)


def test_limit_handle_checks_every_key_and_time(tmp_path: Path) -> None:
    with RateLimiter(tmp_path) as lim:
        limit = lim.limit(5, 1000)
        for key in ("", "x" * 257):
            with pytest.raises(InvalidValue):
                limit.check(key)
        with pytest.raises(InvalidValue):
            limit.check("k", now_ns=-1)
        with pytest.raises(NativeOSError):
            limit.check("k", now_ns=2**64 - 1)
        assert limit.check("x" * 256).allowed


def test_limit_handle_of_a_closed_limiter_refuses_calls(tmp_path: Path) -> None:
    lim = RateLimiter(tmp_path)
    limit = lim.limit(5, 1000)
    lim.close()
    with pytest.raises(InvalidValue):
        limit.check("k")


def test_limit_handle_fails_closed_on_a_full_table(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path, "full", 64) as lim:
        busy = lim.limit(1, 10_000)
        outcomes = [busy.check(f"busy-{i}", now_ns=now + i) for i in range(200)]
        assert sum(d.allowed for d in outcomes) == 64
        full = [d for d in outcomes if d.full]
        assert len(full) == 136
        assert all(not d.allowed and d.remaining == 0 and d.retry_after_ns > 0 for d in full)
        # A key already in the table is refused for its own rate, not for room.
        again = busy.check("busy-3", now_ns=now + 200)
        assert not again.allowed and not again.full


def test_limit_handles_in_threads_admit_exactly_capacity(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path) as lim:
        limit = lim.limit(500, 1000)
        admitted: list[int] = []

        def run() -> None:
            admitted.append(sum(limit.check("shared", now_ns=now).allowed for _ in range(250)))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(admitted) == 500


# ---- Limit.take: the decision packed in one int ------------------------------


@settings(max_examples=60)
@given(
    capacity=st.integers(1, 50),
    window_ms=st.integers(50, 120_000),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 400 * MS)), max_size=40),
)
def test_take_packs_exactly_the_decision_check_makes(
    capacity: int, window_ms: int, steps: list[tuple[int, int]]
) -> None:
    """Two buckets fed the same requests at the same times, one by check() and one by
    take(): every packed decision is pack() of the Decision (the C and Python layouts agree)."""
    with tempfile.TemporaryDirectory() as d, RateLimiter(d, "pack") as lim:
        limit = lim.limit(capacity, window_ms)
        t = monotonic_ns()
        for key_no, advance in steps:
            t += advance
            decision = limit.check(f"c{key_no}", now_ns=t)
            packed = limit.take(f"t{key_no}", now_ns=t)
            assert packed == pack(decision)
            assert packed_allowed(packed) is decision.allowed
            assert packed_remaining(packed) == decision.remaining
            assert packed_reset_seconds(packed) == decision.reset_seconds
            assert packed_retry_after_seconds(packed) == decision.retry_after_seconds
            assert packed_full(packed) is False


def test_take_and_check_share_one_bucket_per_key(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path) as lim:
        limit = lim.limit(3, 1000)
        assert packed_remaining(limit.take("ip:a", now)) == 2
        assert limit.check("ip:a", now_ns=now).remaining == 1
        last = limit.take(b"ip:a", now)
        assert packed_allowed(last) and packed_remaining(last) == 0
        refused = limit.take("ip:a", now)
        assert not packed_allowed(refused)
        assert packed_retry_after_seconds(refused) == 1  # 333 ms, rounded up
        assert packed_reset_seconds(refused) == 1


def test_take_refuses_bad_keys_times_and_a_closed_limiter(tmp_path: Path) -> None:
    lim = RateLimiter(tmp_path)
    limit = lim.limit(5, 1000)
    for key in ("", "x" * 257):
        with pytest.raises(InvalidValue):
            limit.take(key)
    with pytest.raises(InvalidValue):
        limit.take("k", -1)
    with pytest.raises(NativeOSError):
        limit.take("k", 2**64 - 1)
    lim.close()
    with pytest.raises(InvalidValue):
        limit.take("k")


def test_take_packs_a_full_table_refusal(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path, "full", 64) as lim:
        busy = lim.limit(1, 10_000)
        packed = [busy.take(f"busy-{i}", now + i) for i in range(100)]
        assert sum(packed_allowed(v) for v in packed) == 64
        full = [v for v in packed if packed_full(v)]
        assert len(full) == 36
        assert all(not packed_allowed(v) and packed_retry_after_seconds(v) >= 1 for v in full)


def test_take_with_returns_the_tighter_of_two_limits(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path) as lim:
        ip, key = lim.limit(10, 1000), lim.limit(3, 1000)
        first = ip.take_with("ip:a", key, "key:k", now)
        # The key leaves fewer requests (2 of 3 vs 9 of 10): its decision, marked.
        assert first & PACK_SECOND and packed_remaining(first) == 2
        assert ip.check("ip:a", now_ns=now).remaining == 8  # both buckets counted
        roomy = lim.limit(100, 1000)
        mine = ip.take_with("ip:b", roomy, "key:big", now)
        assert not mine & PACK_SECOND and packed_remaining(mine) == 9
        assert packed_remaining(ip.take_with("ip:a", key, "key:k", now)) == 1
        assert packed_remaining(ip.take_with("ip:a", key, "key:k", now)) == 0
        refused = ip.take_with("ip:a", key, "key:k", now)  # the key's fourth request
        assert not packed_allowed(refused) and refused & PACK_SECOND
        # The address counted all five of its requests (the key's refusal included).
        assert ip.check("ip:a", now_ns=now).remaining == 4


def test_take_with_does_not_count_the_second_limit_when_the_first_refuses(
    tmp_path: Path, now: int
) -> None:
    with RateLimiter(tmp_path) as lim:
        ip, key = lim.limit(1, 10_000), lim.limit(5, 1000)
        assert packed_allowed(ip.take_with("ip:a", key, "key:k", now))
        refused = ip.take_with("ip:a", key, "key:k", now)
        assert not packed_allowed(refused) and not refused & PACK_SECOND
        assert key.check("key:k", now_ns=now).remaining == 3  # one counted, not two


def test_take_with_refuses_a_bad_second_key_before_counting_the_first(
    tmp_path: Path, now: int
) -> None:
    with RateLimiter(tmp_path) as lim:
        ip, key = lim.limit(2, 1000), lim.limit(2, 1000)
        for bad in ("", "x" * 257):
            with pytest.raises(InvalidValue):
                ip.take_with("ip:a", key, bad, now)
        assert ip.check("ip:a", now_ns=now).remaining == 1


def test_pack_saturates_and_rounds_like_the_headers() -> None:
    assert pack(Decision(True, 7, 1, 0)) == 1 | (1 << 2) | (7 << 26)
    refused = pack(Decision(False, 0, 2 * SEC + 1, 0))
    assert packed_retry_after_seconds(refused) == 1 and packed_reset_seconds(refused) == 3
    huge = pack(Decision(False, 0, 2**62, 2**62, full=True))
    assert packed_reset_seconds(huge) == 0xFFFFFF and packed_retry_after_seconds(huge) == 0xFFFFFF
    assert packed_full(huge) and huge < 2**63


# ---- Decision ---------------------------------------------------------------


def test_header_seconds_round_up() -> None:
    d = Decision(False, 0, reset_ns=1_000_000_001, retry_after_ns=1)
    assert d.reset_seconds == 2
    assert d.retry_after_seconds == 1
    assert Decision(False, 0, 2 * SEC, 2 * SEC).retry_after_seconds == 2


def test_retry_after_seconds_is_zero_when_allowed_and_at_least_one_when_refused() -> None:
    assert Decision(True, 3, 5, 0).retry_after_seconds == 0
    assert Decision(False, 0, 0, 0).retry_after_seconds == 1


def test_decision_is_immutable() -> None:
    d = Decision(True, 1, 2, 0)
    with pytest.raises(AttributeError):
        d.allowed = False  # type: ignore[misc]


def test_monotonic_ns_reads_the_monotonic_clock() -> None:
    before = time.monotonic_ns()
    value = monotonic_ns()
    assert before <= value <= time.monotonic_ns()


def test_check_without_a_time_reads_the_clock(limiter: Limiter) -> None:
    d = limiter.check("k", 1, 60_000)
    assert d.allowed
    assert not limiter.check("k", 1, 60_000).allowed


# ---- sharing and lifetime (C table) ------------------------------------------


def test_two_data_dirs_never_share_a_table(tmp_path: Path, now: int) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RateLimiter(tmp_path / "a") as a, RateLimiter(tmp_path / "b") as b:
        assert a.check("k", 1, 1000, now_ns=now).allowed
        assert b.check("k", 1, 1000, now_ns=now).allowed


def test_two_names_in_one_dir_never_share_a_table(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path, "ip") as a, RateLimiter(tmp_path, "key") as b:
        assert a.check("k", 1, 1000, now_ns=now).allowed
        assert b.check("k", 1, 1000, now_ns=now).allowed


def test_second_limiter_on_the_same_dir_shares_state(tmp_path: Path, now: int) -> None:
    with RateLimiter(tmp_path, slots=64) as a, RateLimiter(tmp_path, slots=128) as b:
        assert b.slots == 64  # an open table keeps its own size
        assert a.check("k", 2, 1000, now_ns=now).allowed
        assert b.check("k", 2, 1000, now_ns=now).allowed
        assert not a.check("k", 2, 1000, now_ns=now).allowed
        b.reset("k")
        assert a.check("k", 2, 1000, now_ns=now).allowed


def test_table_is_rebuilt_when_nobody_has_it_open(tmp_path: Path, now: int) -> None:
    a = RateLimiter(tmp_path, slots=64)
    b = RateLimiter(tmp_path)
    assert a.check("k", 1, 60_000, now_ns=now).allowed
    a.close()
    assert not b.check("k", 1, 60_000, now_ns=now).allowed  # b still holds it
    b.close()
    with RateLimiter(tmp_path, slots=128) as c:
        assert c.slots == 128
        assert c.check("k", 1, 60_000, now_ns=now).allowed
        assert c.stats(now).used == 1


# ---- bounded size -------------------------------------------------------------


@pytest.fixture(params=["c", "py"])
def small_limiter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Limiter]:
    """A 64-slot table of either implementation."""
    if request.param == "c":
        with RateLimiter(tmp_path, "full", slots=64) as lim:
            yield lim
    else:
        yield PyRateLimiter(slots=64)


def test_full_table_refuses_new_keys_but_serves_existing_ones(
    small_limiter: Limiter, now: int
) -> None:
    lim = small_limiter
    admitted: list[str] = []
    refused: list[Decision] = []
    # capacity 1 per 10 s: every admitted key stays busy for 10 s.
    for i in range(300):
        d = lim.check(f"busy-{i}", 1, 10_000, now_ns=now + i)
        (admitted.append(f"busy-{i}") if d.allowed else refused.append(d))
    assert len(admitted) == 64
    assert lim.stats(now + 300) == LimiterStats(slots=64, used=64, busy=64)
    # New keys fail closed, told to come back when a slot of theirs goes idle.
    # Each such refusal says it came from the full table, not from the key's own use.
    for d in refused:
        assert d.remaining == 0 and d.full
        assert 10 * SEC - 300 <= d.retry_after_ns <= 10 * SEC
    newcomer = lim.check("newcomer", 100, 1000, now_ns=now + 300)
    assert not newcomer.allowed and newcomer.full
    assert 10 * SEC - 300 <= newcomer.retry_after_ns < 10 * SEC
    # Keys in the table keep working, and keep their limits (their refusals are their own).
    for key in admitted:
        own = lim.check(key, 1, 10_000, now_ns=now + 300)
        assert not own.allowed and not own.full
        assert lim.check(key, 2, 20_000, now_ns=now + 300).allowed


def test_full_table_admits_new_keys_once_entries_go_idle(small_limiter: Limiter, now: int) -> None:
    lim = small_limiter
    for i in range(200):
        lim.check(f"busy-{i}", 1, 10_000, now_ns=now)
    refused = lim.check("newcomer", 5, 1000, now_ns=now + 1)
    assert not refused.allowed
    idle_at = now + 1 + refused.retry_after_ns
    assert not lim.check("newcomer", 5, 1000, now_ns=idle_at - 1).allowed
    assert lim.check("newcomer", 5, 1000, now_ns=idle_at) == Decision(True, 4, 200 * MS, 0)
    assert lim.check("newcomer", 5, 1000, now_ns=idle_at) == Decision(True, 3, 400 * MS, 0)
    # Everyone idle: a crowd of new keys all get in, evicting the old ones.
    later = idle_at + 20 * SEC
    assert all(lim.check(f"new-{i}", 1, 1000, now_ns=later).allowed for i in range(40))
    assert lim.stats(later).used == 64


def test_stats_count_used_and_busy_slots(limiter: Limiter, now: int) -> None:
    limiter.check("a", 1, 1000, now_ns=now)
    limiter.check("b", 1, 2000, now_ns=now)
    limiter.check("c", 1, 3000, now_ns=now)
    assert limiter.stats(now).used == 3
    assert limiter.stats(now).busy == 3
    assert limiter.stats(now + 1500 * MS).busy == 2
    assert limiter.stats(now + 3 * SEC).busy == 0
    assert limiter.stats(now + 3 * SEC).used == 3


# ---- threads ------------------------------------------------------------------


def test_threads_sharing_one_limiter_admit_exactly_capacity(limiter: Limiter, now: int) -> None:
    counts = [0] * 4

    def hammer(i: int) -> None:
        for _ in range(2000):
            counts[i] += limiter.check("hot", 3000, 60_000, now_ns=now).allowed
            limiter.check(f"t{i}", 10, 1000, now_ns=now)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 3000


# ---- the twin is the oracle ---------------------------------------------------

KEYS = ["ip:10.0.0.1", "ip:10.0.0.2", "key:abc", "é"]

op = st.one_of(
    st.tuples(
        st.just("check"),
        st.sampled_from(KEYS),
        st.integers(1, 12),  # capacity
        st.sampled_from([1, 7, 1000, 60_000, 2**32]),  # window_ms
        st.integers(1, 12),  # cost (clamped to capacity)
        st.integers(0, 3 * SEC),  # time step
    ),
    st.tuples(
        st.just("reset"), st.sampled_from(KEYS), st.just(0), st.just(0), st.just(0), st.just(0)
    ),
)


@settings(max_examples=150)
@given(
    ops=st.lists(op, min_size=1, max_size=60),
    small_steps=st.booleans(),
    handles=st.booleans(),
)
def test_c_limiter_decides_exactly_like_the_python_twin(
    ops: list[tuple[str, str, int, int, int, int]], small_steps: bool, handles: bool
) -> None:
    """Through ``check`` or (``handles``) through a Limit made for each call's numbers."""
    twin = PyRateLimiter(slots=64)
    with tempfile.TemporaryDirectory() as data_dir, RateLimiter(data_dir, "prop", 64) as lim:
        now = monotonic_ns()
        for kind, key, capacity, window_ms, cost, step in ops:
            if kind == "reset":
                lim.reset(key)
                twin.reset(key)
                continue
            now += step % (10 * MS) if small_steps else step
            cost = min(cost, capacity)
            if handles:
                got = lim.limit(capacity, window_ms, cost).check(key, now_ns=now)
            else:
                got = lim.check(key, capacity, window_ms, cost, now_ns=now)
            want = twin.check(key, capacity, window_ms, cost, now_ns=now)
            assert got == want
        assert lim.stats(now) == twin.stats(now)
