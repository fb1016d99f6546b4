"""The 13-byte record: C shared-memory store vs the pure-Python file twin.

Run: .venv/bin/python -m pytest bench/bench_config.py --benchmark-only
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.config import ConfigStore, Feature, PyConfigStore

ROOT = Path(__file__).resolve().parent.parent
SIDES = ["c", "py"]


@pytest.fixture(params=SIDES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s: Any = ConfigStore(tmp_path) if request.param == "c" else PyConfigStore(tmp_path)
    yield s
    s.close()


def test_record_read(benchmark: Any, store: Any) -> None:
    benchmark.group = "record read (decoded)"
    benchmark(store.read)


def test_record_read_bytes(benchmark: Any, store: Any) -> None:
    benchmark.group = "record read (13 bytes)"
    benchmark(store.read_bytes)


def test_record_byte_update(benchmark: Any, store: Any) -> None:
    benchmark.group = "record byte update (pwrite, no fsync)"
    benchmark(store.write_bytes, 10, b"\x30")


def test_record_durable_save(benchmark: Any, store: Any) -> None:
    benchmark.group = "record update + durable save (fsync)"

    def update_and_save() -> None:
        store.write_bytes(11, b"\x84")
        store.save()

    benchmark.pedantic(update_and_save, rounds=50, iterations=1, warmup_rounds=2)


def test_record_1000_updates(benchmark: Any, store: Any) -> None:
    benchmark.group = "1000 config updates (seed target: < 100 ms)"

    def thousand() -> None:
        for i in range(1000):
            store.set_feature(Feature.DEBUG, bool(i & 1))

    benchmark.pedantic(thousand, rounds=10, iterations=1, warmup_rounds=1)


def test_c_level_costs(benchmark: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The C core alone (no Python): read, shared-memory update, update + pwrite."""
    benchmark.group = "C level: 2M reads + 2M shm updates + 200k pwrite updates"
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc
    exe = tmp_path / "bench_record"
    subprocess.run(
        [
            cc,
            "-std=gnu11",
            "-O2",
            f"-I{ROOT / 'csrc'}",
            str(ROOT / "bench/c/bench_record.c"),
            str(ROOT / "csrc/errors.c"),
            str(ROOT / "csrc/shm.c"),
            "-o",
            str(exe),
            "-lrt",
            "-lpthread",
        ],
        check=True,
    )
    work = tmp_path / "data"
    work.mkdir()
    out = benchmark.pedantic(
        subprocess.run,
        args=([str(exe), str(work), "2000000"],),
        kwargs={"check": True, "capture_output": True, "text": True},
        rounds=1,
        iterations=1,
    )
    with capsys.disabled():
        print("\nC level (ns per op, seed: 45 ns per config update, 20 ns targeted):")
        for line in out.stdout.splitlines():
            name, ns = line.split()
            print(f"  {name:22} {float(ns):8.1f} ns")
