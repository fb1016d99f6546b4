"""A backup of the services' registry, audited and logged (the CLI and the automatic job)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from r13core.audit import Actor
from r13core.backup.create import BackupResult, BackupSource, create_backup
from r13core.backup.progress import Progress

if TYPE_CHECKING:
    from r13core.services import Services

log = logging.getLogger("r13.backup")


def source_of(services: Services) -> BackupSource:
    """What a backup of ``services`` reads: its data dir, database, blob store and record."""
    return BackupSource(
        data_dir=services.data_dir,
        database_url=services.settings.storage.url,
        blobs=services.blobs,
        record=services.config.read_bytes,
        blob_store=services.settings.storage.blobs,
    )


def backup(services: Services, dest: Path, *, actor: Actor, link: bool = False,
           progress: Progress | None = None,
           then: Callable[[], object] | None = None) -> BackupResult:  # fmt: skip
    """Back up the registry into ``dest``; audited as ``backup.create`` by ``actor``.

    ``then`` runs under the backup lock once the backup is in place (see create_backup).
    """
    result = create_backup(source_of(services), dest, link=link, progress=progress, then=then)
    m = result.manifest
    services.audit.record_by(
        actor,
        "backup.create",
        str(result.path),
        backend=m.backend,
        tarballs=len(m.tarballs),
        bytes=result.bytes,
        created=m.body()["created"],
    )
    log.info("backup written to %s: %d table(s), %d tarball(s), %d bytes in %.1f s",
             result.path, len(m.tables), len(m.tarballs), result.bytes,
             result.seconds)  # fmt: skip
    return result
