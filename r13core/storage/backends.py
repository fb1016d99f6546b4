"""Storage URLs: which backend opens a URL, the one place a new backend plugs in.

``sqlite:///abs/path/registry.sqlite3`` names a file by its absolute path (an
empty host, as in ``file:///``); ``sqlite:relative/path.sqlite3`` (no slashes
after the colon) names one relative to the working directory, resolved when
the storage is opened. Percent-escapes in the path are decoded. Nothing else
is accepted: no host, no query, no fragment. The data dir's default is
``sqlite:///<data dir>/registry.sqlite3`` (:func:`sqlite_url`).

A new backend adds its scheme and URL parser to :data:`_PARSERS` (docs/storage.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import quote, unquote, urlsplit

from r13core.datadir import make_private_dirs
from r13core.errors import InvalidValue
from r13core.storage.base import Storage

EXAMPLE: Final = "sqlite:///var/lib/r13/registry.sqlite3"
# Schemes r13 knows of but cannot open yet: a clear answer instead of "unknown".
_PLANNED: Final = {"postgresql": "PostgreSQL", "postgres": "PostgreSQL"}


class StorageTarget(Protocol):
    """What a checked storage URL names; opening it makes the backend's object."""

    def open(self) -> Storage:
        """The storage (cheap: connections open lazily, per process and thread)."""
        ...


@dataclass(frozen=True)
class SQLiteTarget:
    """A SQLite file (created with its private directories when opened)."""

    path: Path

    def open(self) -> Storage:
        """A :class:`~r13core.storage.sqlite.SQLiteStorage` on the file."""
        from r13core.storage.sqlite import SQLiteStorage

        path = self.path.absolute()  # a later chdir must not move the database
        make_private_dirs(path.parent)
        return SQLiteStorage(path)


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


# scheme -> parser of that scheme's URLs: the one place a backend plugs in.
_PARSERS: Final[dict[str, Callable[[str], StorageTarget]]] = {"sqlite": _sqlite}


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


def open_storage(url: str) -> Storage:
    """The storage a URL names (connections open lazily, per process and thread).

    InvalidValue for a URL r13 cannot open: an unknown scheme, a bad path, or a
    backend not supported yet (``postgresql://``).
    """
    return parse_url(url).open()
