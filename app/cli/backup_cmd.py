"""`r13 backup DEST` and `r13 restore SRC` (docs/backup.md).

``backup`` snapshots the registry while it serves (r13core/backup/create.py);
``restore`` verifies a backup and puts it into an empty data dir (and, with
PostgreSQL, an empty database), or with ``--check`` only verifies it
(r13core/backup/restore.py). Both draw a progress bar on stderr when it is a
terminal (``--quiet``: none); the summary goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import services

# tqdm and the backup code load when a backup or restore runs: every `r13` command
# (`r13 serve` first) imports this module to list its options.
if TYPE_CHECKING:
    from tqdm import tqdm


class Bar:
    """A :class:`r13core.backup.Progress` drawn with tqdm (bytes, one bar per stage)."""

    def __init__(self, quiet: bool) -> None:
        # disable=None: tqdm draws only when stderr is a terminal.
        self._disable: bool | None = True if quiet else None
        self._bar: tqdm[Any] | None = None

    def stage(self, name: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total or None, desc=name, unit="B", unit_scale=True,
                         unit_divisor=1024, disable=self._disable, file=sys.stderr,
                         leave=False)  # fmt: skip

    def advance(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backup",
        help="a consistent snapshot of the registry, taken while it serves",
        description="Write a backup of the data dir's registry (database, tarballs, the "
        "record, the signing keys) into DEST, a new or empty directory.",
    )
    p.add_argument("dest", metavar="DEST", type=Path, help="a new or empty directory")
    p.add_argument(
        "--link",
        action="store_true",
        help="hard-link tarballs instead of copying them (same file system only)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=backup)
    r = sub.add_parser(
        "restore",
        help="verify a backup and restore it into an empty data dir (and database)",
        description="Verify every tarball and every table of the backup SRC, then restore "
        "it into --data (empty or new) and R13_DATABASE_URL's database (empty).",
    )
    r.add_argument("src", metavar="SRC", type=Path, help="a backup made by `r13 backup`")
    r.add_argument("--check", action="store_true", help="only verify the backup; restore nothing")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(handler=restore)


def backup(args: argparse.Namespace) -> int:
    from r13core.backup.service import backup as backup_registry

    result = backup_registry(services.of(args), args.dest, actor=services.ACTOR,
                             link=args.link, progress=Bar(args.quiet))  # fmt: skip
    m = result.manifest
    print(f"backup written to {result.path}")
    print(f"  {m.backend}, schema {m.schema_version}, {len(m.tables)} tables, "
          f"{sum(t.rows for t in m.tables.values())} rows")  # fmt: skip
    print(f"  {len(m.tarballs)} tarballs ({_size(m.tarball_bytes)}), {_size(result.bytes)} "
          f"in all, {result.seconds:.1f} s")  # fmt: skip
    return 0


def restore(args: argparse.Namespace) -> int:
    from r13core.backup import restore_backup

    settings = services.settings(args)
    storage = settings.storage
    result = restore_backup(args.src, args.data, storage.database_url,
                            blob_store=storage.blobs, blob_dir=storage.blob_path,
                            progress=Bar(args.quiet), check_only=args.check,
                            actor=services.ACTOR)  # fmt: skip
    m = result.manifest
    verb = "verified" if result.checked_only else f"restored into {result.data_dir}"
    print(f"backup {args.src} {verb}")
    print(f"  made {m.body()['created']} by r13 {m.r13_version}: {len(m.tables)} tables, "
          f"{len(m.tarballs)} tarballs ({_size(m.tarball_bytes)}), every hash matches")  # fmt: skip
    return 0
