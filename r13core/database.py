"""The metadata database a process opens: the one named by R13_DATABASE_URL, else the data dir's.

The web app and the CLI open storage through here and hand it to the domain
objects (r13core/keys.py, r13core/users.py, r13core/abuse.py, r13core/audit.py,
r13core/registry/); they never import r13core.storage themselves
(tests/test_layout.py). Which backend serves a URL is decided in
r13core/storage/backends.py; docs/storage.md describes the URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from r13core.datadir import make_private_dirs

# Re-exported: the type the web layer holds a storage by.
from r13core.storage import Storage as Storage
from r13core.storage import open_storage, sqlite_url

DATABASE_FILE: Final = "registry.sqlite3"


def default_url(data_dir: Path) -> str:
    """``sqlite:///<data dir>/registry.sqlite3`` (``sqlite:<dir>/...`` for a relative dir)."""
    return sqlite_url(Path(data_dir) / DATABASE_FILE)


def open_database(
    data_dir: Path, url: str | None = None, *, auto_migrate: bool = True, pool_size: int = 10
) -> Storage:
    """The storage at ``url``, or the data dir's SQLite file when None.

    Cheap: connections open lazily, per process (after fork) and thread. The
    data dir is created (0700) if absent. InvalidValue if r13 cannot open the URL
    (r13core/storage/backends.py). ``auto_migrate``: migrate the schema on first use
    (else SchemaPending while a migration is pending); ``pool_size``: PostgreSQL
    connections per process.
    """
    make_private_dirs(Path(data_dir))
    return open_storage(
        default_url(data_dir) if url is None else url,
        data_dir=Path(data_dir),
        auto_migrate=auto_migrate,
        pool_size=pool_size,
    )
