"""The 13-byte record: C shared-memory store vs the pure-Python file twin.

Run: .venv/bin/python -m pytest bench/bench_config.py --benchmark-only
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.cprogram import run_c_program
from r13core.config import ConfigStore, Feature, PyConfigStore

SIDES = ["c", "py"]


@pytest.fixture(params=SIDES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s: Any = ConfigStore(tmp_path) if request.param == "c" else PyConfigStore(tmp_path)
    yield s
    s.close()


def test_record_read(benchmark: Any, per_call: Any, store: Any) -> None:
    benchmark.group = "record read (decoded)"
    per_call(store.read)


def test_record_read_bytes(benchmark: Any, per_call: Any, store: Any) -> None:
    benchmark.group = "record read (13 bytes)"
    per_call(store.read_bytes)


def test_record_byte_update(benchmark: Any, per_call: Any, store: Any) -> None:
    benchmark.group = "record byte update (pwrite, no fsync)"
    per_call(store.write_bytes, 10, b"\x30")


def test_record_durable_save(benchmark: Any, store: Any, rounds: Callable[[int], int]) -> None:
    benchmark.group = "record update + durable save (fsync)"

    def update_and_save() -> None:
        store.write_bytes(11, b"\x84")
        store.save()

    benchmark.pedantic(update_and_save, rounds=rounds(50), iterations=1, warmup_rounds=2)


def test_record_1000_updates(benchmark: Any, store: Any, rounds: Callable[[int], int]) -> None:
    benchmark.group = "1000 config updates (goal: < 100 ms)"

    def thousand() -> None:
        for i in range(1000):
            store.set_feature(Feature.DEBUG, bool(i & 1))

    benchmark.pedantic(thousand, rounds=rounds(10), iterations=1, warmup_rounds=1)


def test_c_level_costs(
    benchmark: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    c_program: Callable[[str, list[str]], Path],
    loops: Callable[[int], int],
) -> None:
    """The C core alone (no Python): read, shared-memory update, update + pwrite."""
    benchmark.group = "C level: 2M reads + 2M shm updates + 200k pwrite updates"
    exe = c_program("bench_record", ["errors.c", "shm.c"])
    figures = run_c_program(benchmark, exe, tmp_path / "data", loops(2_000_000))
    with capsys.disabled():
        print("\nC level, ns per op (goal: 45 ns per config update, 20 ns targeted):")
        print(f"  lock-free read                          {figures['read']:8.1f} ns")
        print(f"  shm update, no file I/O                 {figures['shm_update']:8.1f} ns")
        print(f"  update with its pwrite                  {figures['update_with_pwrite']:8.1f} ns")
