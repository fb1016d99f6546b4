"""Audit events for `r13 config` changes made on the data dir (old -> new record)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from app.main import open_storage
from r13core.audit import AuditLog
from r13core.config import ConfigStore

MUTATING = frozenset({"set", "enable", "disable", "import"})


def audited_config_change(args: argparse.Namespace, run: Callable[[], int]) -> int:
    """Run a `r13 config` handler; if it changed the record, append a config.change event."""
    if getattr(args, "command", None) != "config" or getattr(args, "action", None) not in MUTATING:
        return run()
    data = Path(args.data)
    before = _record(data)
    status = run()
    after = _record(data)
    if status == 0 and before != after:
        AuditLog(open_storage(data)).record(
            "cli", "config.change", "config.r13", old=before.hex(), new=after.hex()
        )
    return status


def _record(data: Path) -> bytes:
    if not (data / "config.r13").exists():
        return b""
    with ConfigStore(data) as store:
        return store.read_bytes()
