"""Backups and restores of a whole registry, for both backends (docs/backup.md).

* r13core/backup/create.py: ``r13 backup DEST``, a consistent online snapshot;
* r13core/backup/restore.py: ``r13 restore SRC``, verified before anything is in place;
* r13core/backup/manifest.py: what a backup holds, with a hash of every part;
* r13core/backup/digest.py: the canonical digest of a table's rows;
* r13core/backup/sqlite.py, postgres.py: each backend's snapshot and checks;
* r13core/backup/datafiles.py: the record, the key ring, the tarballs;
* r13core/backup/auto.py: automatic backups (R13_BACKUP_EVERY), kept and pruned;
* r13core/backup/service.py: a backup audited and logged, from the services.
"""

from __future__ import annotations

from r13core.backup.create import BackupResult, BackupSource, create_backup
from r13core.backup.manifest import Manifest
from r13core.backup.progress import Progress, Silent
from r13core.backup.restore import RestoreResult, restore_backup

__all__ = [
    "BackupResult",
    "BackupSource",
    "Manifest",
    "Progress",
    "RestoreResult",
    "Silent",
    "create_backup",
    "restore_backup",
]
