"""``python -m r13core.backup``: one automatic backup, then the prune (r13core/backup/auto.py).

Run by the automatic-backup leader as a child process with the server's
environment; prints a JSON report on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from r13core.audit import Actor
from r13core.backup.auto import backup_name, prune
from r13core.backup.service import backup
from r13core.datadir import make_private_dirs, private_umask
from r13core.services import open_services
from r13core.settings import Settings


def main() -> int:
    private_umask()
    settings = Settings.from_env()
    directory = settings.backup.directory_for(settings.data_dir)
    make_private_dirs(directory)
    with open_services(settings) as services:
        pruned: list[Path] = []

        def prune_old() -> None:  # under the backup lock, once the new one is in place
            pruned.extend(prune(directory, settings.backup.keep))

        dest = directory / backup_name(time.time())
        result = backup(services, dest, actor=Actor.system(), link=settings.backup.link,
                        then=prune_old)  # fmt: skip
        for path in pruned:
            services.audit.record_by(Actor.system(), "backup.prune", str(path))
    json.dump(
        {
            "path": str(result.path),
            "tarballs": len(result.manifest.tarballs),
            "bytes": result.bytes,
            "seconds": round(result.seconds, 3),
            "pruned": [str(p) for p in pruned],
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
