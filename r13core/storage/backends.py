"""Storage URLs: which backend opens a URL, the one place a new backend plugs in.

``sqlite:///abs/path/registry.sqlite3`` names a file by its absolute path (an
empty host, as in ``file:///``); ``sqlite:relative/path.sqlite3`` (no slashes
after the colon) names one relative to the working directory, resolved when
the storage is opened. Percent-escapes in the path are decoded. Nothing else
is accepted: no host, no query, no fragment. The data dir's default is
``sqlite:///<data dir>/registry.sqlite3`` (:func:`sqlite_url`).

``postgresql://user:password@host:port/database?sslmode=...`` (or
``postgres://``) names a PostgreSQL database (libpq's URL form, passed to psycopg
as is); its node-local change-signal files go in the data dir given to
:meth:`StorageTarget.open` (r13core/storage/postgres/signals.py). It needs the
``postgres`` extra (``pip install 'r13[postgres]'``). No message ever repeats a
URL's password.

A new backend adds its scheme and URL parser to :data:`_PARSERS` (docs/storage.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import quote, unquote, urlsplit

from r13core.datadir import make_private_dirs
from r13core.errors import InvalidValue
from r13core.storage.base import Storage

EXAMPLE: Final = "sqlite:///var/lib/r13/registry.sqlite3"
PG_EXAMPLE: Final = "postgresql://r13@db.example:5432/r13"
# Schemes r13 knows of but cannot open yet: a clear answer instead of "unknown".
_PLANNED: Final[dict[str, str]] = {}


class StorageTarget(Protocol):
    """What a checked storage URL names; opening it makes the backend's object."""

    def open(
        self, data_dir: Path | None = None, *, auto_migrate: bool = True, pool_size: int = 10
    ) -> Storage:
        """The storage (cheap: connections open lazily, per process and thread).

        ``data_dir``: the node's data dir, for backends that keep node-local files
        beside a shared database (PostgreSQL's change-signal counters).
        ``auto_migrate``: apply pending schema migrations on first use, else refuse
        (SchemaPending); a schema newer than the code is always refused (SchemaTooNew).
        ``pool_size``: connections per process, for backends with a pool.
        """
        ...


@dataclass(frozen=True)
class SQLiteTarget:
    """A SQLite file (created with its private directories when opened)."""

    path: Path

    def open(
        self, data_dir: Path | None = None, *, auto_migrate: bool = True, pool_size: int = 10
    ) -> Storage:
        """A :class:`~r13core.storage.sqlite.SQLiteStorage` on the file."""
        from r13core.storage.sqlite import SQLiteStorage

        path = self.path.absolute()  # a later chdir must not move the database
        make_private_dirs(path.parent)
        return SQLiteStorage(path, auto_migrate=auto_migrate)


def _sqlite(url: str) -> SQLiteTarget:
    rest = url.partition(":")[2]
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" in the host part
        raise InvalidValue(f"not a sqlite storage URL, e.g. {EXAMPLE}") from None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidValue("a sqlite storage URL takes no query or fragment")
    if rest.startswith("//"):
        if parts.netloc:
            raise InvalidValue(  # the host part is not repeated: it may hold a password
                "a sqlite storage URL names a file, not a host: "
                "write sqlite:///absolute/path or sqlite:relative/path"
            )
        rest = parts.path
    path = unquote(rest, errors="surrogateescape")
    if not path or path.endswith("/") or "\x00" in path:
        raise InvalidValue(f"a sqlite storage URL must name a file, e.g. {EXAMPLE}")
    return SQLiteTarget(Path(path))


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user, _, host = parts.netloc.rpartition("@")
        return parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}").geturl()
    except ValueError:
        return url.partition(":")[0] + "://…"


@dataclass(frozen=True)
class PostgresTarget:
    """A PostgreSQL database (libpq URL); ``repr`` and messages never show its password."""

    url: str = field(repr=False)
    display: str = ""

    def open(
        self, data_dir: Path | None = None, *, auto_migrate: bool = True, pool_size: int = 10
    ) -> Storage:
        """A :class:`~r13core.storage.postgres.PostgresStorage` (connects on first use).

        InvalidValue naming the missing extra when psycopg is not installed.
        """
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise InvalidValue(
                "PostgreSQL storage needs psycopg 3 and psycopg-pool: pip install 'r13[postgres]'"
            ) from None
        from r13core.storage.postgres import PostgresStorage

        return PostgresStorage(
            self.url, data_dir=data_dir, auto_migrate=auto_migrate, pool_size=pool_size
        )


def _postgres(url: str) -> PostgresTarget:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:  # the URL is not repeated: it may hold a password
        raise InvalidValue(f"not a PostgreSQL storage URL, e.g. {PG_EXAMPLE}") from None
    if parts.fragment or "#" in url:
        raise InvalidValue("a PostgreSQL storage URL takes no fragment")
    if "\x00" in url:
        raise InvalidValue(f"not a PostgreSQL storage URL, e.g. {PG_EXAMPLE}")
    return PostgresTarget(url, redact_url(url))


# scheme -> parser of that scheme's URLs: the one place a backend plugs in.
_PARSERS: Final[dict[str, Callable[[str], StorageTarget]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def parse_url(url: str) -> StorageTarget:
    """Check a storage URL; InvalidValue says what is wrong (never echoing credentials)."""
    url = url.strip()
    scheme, colon, _ = url.partition(":")
    scheme = scheme.lower()
    if not colon or not scheme.replace("+", "").isalnum() or not scheme[0].isalpha():
        raise InvalidValue(f"a storage URL starts with its scheme, e.g. {EXAMPLE}")
    if scheme in _PLANNED:
        raise InvalidValue(
            f"{_PLANNED[scheme]} storage ({scheme}://) is not supported yet; "
            f"use a sqlite URL, e.g. {EXAMPLE}"
        )
    parser = _PARSERS.get(scheme)
    if parser is None:
        known = ", ".join(sorted(_PARSERS))
        raise InvalidValue(f"unknown storage URL scheme {scheme!r} (supported: {known})")
    return parser(url)


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The URL of a SQLite file: ``sqlite:///abs/path`` or ``sqlite:relative/path``."""
    text = os.fspath(path)
    escaped = quote(text, safe="/", errors="surrogateescape")
    return f"sqlite://{escaped}" if text.startswith("/") else f"sqlite:{escaped}"


def open_storage(
    url: str, *, data_dir: Path | None = None, auto_migrate: bool = True, pool_size: int = 10
) -> Storage:
    """The storage a URL names (connections open lazily, per process and thread).

    ``data_dir``: the node's data dir (PostgreSQL keeps its change-signal files
    there). InvalidValue for a URL r13 cannot open: an unknown scheme, a bad
    path, a missing driver.
    """
    return parse_url(url).open(data_dir, auto_migrate=auto_migrate, pool_size=pool_size)
