"""What counting a download costs: buffered per worker vs a database row per download.

Run: .venv/bin/python -m pytest bench/bench_usage.py --benchmark-only

- ``record`` is the hot path r13 uses (r13core/usage.py): a dict increment
  under a lock, flushed in one transaction every R13_USAGE_FLUSH_INTERVAL.
- ``monitoring.downloaded`` is all a tarball GET pays: the shared counter (one
  C call behind the live-record check) plus ``record``.
- ``one row per download`` is the alternative: one SQLite transaction per
  download (WAL, synchronous=FULL, as the registry runs it).
- ``flush`` is the batch: 1000 packages' counts in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.monitoring import Monitoring
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.sqlite import SQLiteStorage
from r13core.usage import UsageRecorder

DAY = datetime.now(UTC).date().isoformat()


@pytest.fixture
def storage(tmp_path: Path) -> SQLiteStorage:
    s = SQLiteStorage(tmp_path / "registry.sqlite3")
    s.add_usage([(DAY, "warm", "downloads", 1)])  # schema made, connection open
    return s


def test_record_a_download_buffered(benchmark: Any, storage: SQLiteStorage) -> None:
    benchmark.group = "count one download"
    rec = UsageRecorder(storage)
    benchmark(rec.record, "downloads", "left-pad")


@pytest.fixture
def monitoring(tmp_path: Path) -> Iterator[Monitoring]:
    settings = Settings.from_env({"R13_DATA": str(tmp_path)})
    store = open_services(settings).config
    mon = Monitoring(settings, store, usage=SQLiteStorage(tmp_path / "registry.sqlite3"))
    yield mon
    mon.metrics.close()
    store.close()


def test_monitoring_downloaded_whole_hot_path(benchmark: Any, monitoring: Monitoring) -> None:
    benchmark.group = "count one download"
    benchmark(monitoring.downloaded, "left-pad")


def test_one_database_row_per_download(benchmark: Any, storage: SQLiteStorage) -> None:
    benchmark.group = "count one download"
    delta = [(DAY, "left-pad", "downloads", 1)]
    benchmark.pedantic(storage.add_usage, args=(delta,), rounds=200, iterations=1)


def test_flush_1000_packages_in_one_transaction(benchmark: Any, storage: SQLiteStorage) -> None:
    benchmark.group = "flush"
    rec = UsageRecorder(storage)

    def fill() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for i in range(1000):
            rec.record("downloads", f"pkg-{i}", 3)
        return (), {}

    benchmark.pedantic(rec.flush, setup=fill, rounds=30, iterations=1)
