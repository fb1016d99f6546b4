"""The live record across processes: no torn reads, no stuck writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from r13core.config import Config13, ConfigStore

pytestmark = pytest.mark.slow

CTX = mp.get_context("fork")

# Two records that differ in every byte but the version, so any mix is visible.
A = Config13(
    registry_hash=0x11111111,
    feature_flags=0x22222222,
    terminal_mode=1,
    rows=0x33,
    cols=0x44,
    reserved=0x55,
)
B = Config13(
    registry_hash=0xAAAAAAAA,
    feature_flags=0xBBBBBBBB,
    terminal_mode=2,
    rows=0xCC,
    cols=0xDD,
    reserved=0xEE,
)


def _alternate(
    data_dir: str,
    stop: mp.synchronize.Event,
    count: mp.sharedctypes.Synchronized[int],
    warmed: mp.synchronize.Event,
) -> None:
    with ConfigStore(data_dir) as store:
        n = 0
        while not stop.is_set():
            store.replace(A if n % 2 else B)
            n += 1
            if n == 1000:
                warmed.set()
        count.value = n


def _read_many(data_dir: str, reads: int, out: mp.queues.Queue) -> None:  # type: ignore[type-arg]
    allowed = {A.to_bytes(), B.to_bytes()}
    bad = 0
    went_back = 0
    last = 0
    with ConfigStore(data_dir) as store:
        for _ in range(reads):
            generation, raw = store.snapshot()
            if raw not in allowed:
                bad += 1
            if generation < last:
                went_back += 1
            last = generation
    out.put((bad, went_back, last))


def test_readers_in_other_processes_never_see_a_torn_record(data_dir: Path) -> None:
    with ConfigStore(data_dir) as store:
        store.replace(A)
    stop = CTX.Event()
    count = CTX.Value("q", 0)
    warmed = CTX.Event()
    writer = CTX.Process(target=_alternate, args=(str(data_dir), stop, count, warmed))
    writer.start()
    # The readers start once the writer is well under way (a count, not a sleep).
    assert warmed.wait(timeout=120)
    out: mp.queues.Queue = CTX.Queue()  # type: ignore[type-arg]
    readers = [CTX.Process(target=_read_many, args=(str(data_dir), 200_000, out)) for _ in range(2)]
    for r in readers:
        r.start()
    results = [out.get(timeout=120) for _ in readers]
    for r in readers:
        r.join(timeout=30)
    stop.set()
    writer.join(timeout=30)
    assert writer.exitcode == 0
    assert count.value > 1000, "the writer should have alternated the record many times"
    for bad, went_back, last in results:
        assert bad == 0
        assert went_back == 0
        assert last > 1


def _write_forever(data_dir: str, writing: Any) -> None:
    store = ConfigStore(data_dir)
    n = 0
    while True:
        store.replace(A if n % 2 else B)
        n += 1
        if n == 100:
            writing.set()


def _one_write(data_dir: str, rows: int) -> None:
    with ConfigStore(data_dir) as store:
        store.replace(A._replace(rows=rows))


def test_a_writer_killed_at_any_instant_blocks_nobody(data_dir: Path) -> None:
    with ConfigStore(data_dir) as keeper:
        rng = random.Random(1313)
        last = keeper.read_bytes()
        for i in range(40):
            writing = CTX.Event()
            victim = CTX.Process(target=_write_forever, args=(str(data_dir), writing))
            victim.start()
            # Kill it mid-write, not before its first one, however long it took to start.
            assert writing.wait(timeout=120)
            time.sleep(rng.uniform(0.0, 0.01))
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
            # Readers are never blocked and see a whole record.
            assert keeper.read_bytes() in {A.to_bytes(), B.to_bytes(), last}
            # A later writer in another process gets through (a stuck lock would hang it).
            later = CTX.Process(target=_one_write, args=(str(data_dir), i))
            later.start()
            later.join(timeout=120)
            if later.is_alive():
                later.kill()
                pytest.fail(f"a writer was blocked after kill #{i}")
            assert later.exitcode == 0
            last = keeper.read_bytes()
            assert last == A._replace(rows=i).to_bytes()
            # The file agrees with the live copy after every completed write.
            assert (data_dir / "config.r13").read_bytes() == keeper.read_bytes()
