"""Rate limiter micro-benchmarks: the C table through cffi vs the Python twin.

Run: .venv/bin/python -m pytest bench/bench_ratelimit.py --benchmark-only -q
Groups put C and Python side by side: hot key, cold key (a new key per
call), contended (another process, or for the in-process twin another
thread, hammers the same key meanwhile). The hot-key group also has the
per-request path of a server, a :class:`Limit` made once and checked by key
(``test_c_hot_key_limit_handle``). The "layers" group splits the C path: the
bare cffi calls (eight arguments, and the limit handle's four) and building
the Decision.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.cprogram import run_c_program
from r13core._ffi import ffi, lib
from r13core.ratelimit import Decision, PyRateLimiter, RateLimiter, packed_allowed

KEY = "203.0.113.7"
# A huge capacity keeps the hot key admitted (the CAS path, not a refusal).
CAPACITY, WINDOW_MS = 1_000_000_000, 1000
COLD_SLOTS = 1 << 22


@pytest.fixture
def c_limiter(tmp_path: Path) -> Iterator[RateLimiter]:
    with RateLimiter(tmp_path, "bench") as lim:
        yield lim


def hot(lim: RateLimiter | PyRateLimiter) -> Callable[[], Decision]:
    return lambda: lim.check(KEY, CAPACITY, WINDOW_MS)


def cold(lim: RateLimiter | PyRateLimiter) -> Callable[[], Decision]:
    counter = itertools.count()
    # A 1 ms window: old keys go idle at once, so the table never fills.
    return lambda: lim.check(f"cold-{next(counter)}", 10, 1)


@pytest.mark.benchmark(group="ratelimit-hot")
def test_c_hot_key(per_call: Any, c_limiter: RateLimiter) -> None:
    assert per_call(hot(c_limiter)).allowed


@pytest.mark.benchmark(group="ratelimit-hot")
def test_c_hot_key_limit_handle(per_call: Any, c_limiter: RateLimiter) -> None:
    check = c_limiter.limit(CAPACITY, WINDOW_MS).check
    assert per_call(check, KEY).allowed


@pytest.mark.benchmark(group="ratelimit-hot")
def test_c_hot_key_take_packed(per_call: Any, c_limiter: RateLimiter) -> None:
    """The per-request call of app/security_middleware.py: Limit.take, decision in an int."""
    take = c_limiter.limit(CAPACITY, WINDOW_MS).take
    assert packed_allowed(per_call(take, KEY))


@pytest.mark.benchmark(group="ratelimit-hot")
def test_c_hot_key_take_with_key_limit(per_call: Any, c_limiter: RateLimiter) -> None:
    """A keyed request: the address's limit and the key's in one call (two buckets)."""
    ip, key = c_limiter.limit(CAPACITY, WINDOW_MS), c_limiter.limit(CAPACITY, WINDOW_MS)
    assert packed_allowed(per_call(ip.take_with, KEY, key, "key:bench"))


@pytest.mark.benchmark(group="ratelimit-hot")
def test_py_hot_key(per_call: Any) -> None:
    assert per_call(hot(PyRateLimiter())).allowed


@pytest.mark.benchmark(group="ratelimit-cold")
def test_c_cold_key(benchmark: Any, tmp_path: Path) -> None:
    with RateLimiter(tmp_path, "cold", slots=COLD_SLOTS) as lim:
        assert benchmark(cold(lim)).allowed


@pytest.mark.benchmark(group="ratelimit-cold")
def test_py_cold_key(benchmark: Any) -> None:
    assert benchmark(cold(PyRateLimiter(slots=COLD_SLOTS))).allowed


def _hammer_process(data_dir: str, stop: Any, started: Any) -> None:
    with RateLimiter(data_dir, "bench") as lim:
        started.set()
        while not stop.is_set():
            for _ in range(1000):
                lim.check(KEY, CAPACITY, WINDOW_MS)


@pytest.mark.benchmark(group="ratelimit-contended")
def test_c_contended_key(benchmark: Any, c_limiter: RateLimiter, tmp_path: Path) -> None:
    ctx: Any = multiprocessing.get_context("fork")
    stop, started = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hammer_process, args=(str(tmp_path), stop, started))
    proc.start()
    try:
        assert started.wait(timeout=60)
        assert benchmark(hot(c_limiter)).allowed
    finally:
        stop.set()
        proc.join(timeout=30)


@pytest.mark.benchmark(group="ratelimit-contended")
def test_py_contended_key(benchmark: Any) -> None:
    lim = PyRateLimiter()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            lim.check(KEY, CAPACITY, WINDOW_MS)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        assert benchmark(hot(lim)).allowed
    finally:
        stop.set()
        thread.join()


@pytest.mark.benchmark(group="ratelimit-layers")
def test_layer_bare_cffi_call(per_call: Any, c_limiter: RateLimiter) -> None:
    lim, out, key = c_limiter._lim, ffi.new("r13_decision *"), KEY.encode()
    check = lib.r13_limiter_check
    assert per_call(lambda: check(lim, key, len(key), CAPACITY, WINDOW_MS, 1, 0, out)) == 0


@pytest.mark.benchmark(group="ratelimit-layers")
def test_layer_bare_cffi_call_limit_handle(per_call: Any, c_limiter: RateLimiter) -> None:
    limit, out, key = c_limiter.limit(CAPACITY, WINDOW_MS), ffi.new("r13_decision *"), KEY.encode()
    check, handle = lib.r13_limit_check, limit._c
    assert per_call(lambda: check(handle, key, len(key), 0, out)) == 0


@pytest.mark.benchmark(group="ratelimit-layers")
def test_layer_bare_cffi_call_take(per_call: Any, c_limiter: RateLimiter) -> None:
    """Limit.take's C call alone, no Python around it."""
    take, handle, key = lib.r13_limit_take, c_limiter.limit(CAPACITY, WINDOW_MS)._c, KEY.encode()
    assert per_call(lambda: take(handle, key, len(key), 0)) & 1


@pytest.mark.benchmark(group="ratelimit-layers")
def test_layer_cffi_call_floor(per_call: Any, c_limiter: RateLimiter) -> None:
    """The same call refused at its first check (a time past the table's ~1.7-year range:
    ECLOCK on any machine): what crossing into C and back costs here, whatever the C does."""
    take, handle, key = lib.r13_limit_take, c_limiter.limit(CAPACITY, WINDOW_MS)._c, KEY.encode()
    never = 2**64 - 1
    assert per_call(lambda: take(handle, key, len(key), never)) < 0


@pytest.mark.benchmark(group="ratelimit-layers")
def test_layer_decision_object(benchmark: Any) -> None:
    from r13core.ratelimit import _decision

    assert benchmark(lambda: _decision(True, 1, 2, 0)).allowed


@pytest.mark.benchmark(group="ratelimit-layers")
def test_layer_frozen_dataclass_init(benchmark: Any) -> None:
    assert benchmark(lambda: Decision(True, 1, 2, 0)).allowed


def test_c_level_limiter(
    benchmark: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    c_program: Callable[[str, list[str]], Path],
    loops: Callable[[int], int],
) -> None:
    """The limiter alone (no Python): 5M checks of a hot key, 500k new keys."""
    benchmark.group = "C level: limiter, 5M hot-key checks + 500k cold keys"
    exe = c_program("bench_ratelimit", ["errors.c", "shm.c", "ratelimit.c"])
    figures = run_c_program(benchmark, exe, tmp_path / "data", loops(5_000_000))
    with capsys.disabled():
        print("\nC level, ns per limiter check (monotonic clock read included):")
        print(f"  hot key (CAS on one word)               {figures['hot_key']:8.1f} ns")
        print(f"  cold key (new slot, snprintf included)  {figures['cold_key']:8.1f} ns")
