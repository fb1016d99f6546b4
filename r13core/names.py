"""Package names: npm's rules, and the only source of name-derived paths.

A :class:`PackageName` is a value that has passed every check, so code that
builds URLs, file names or storage keys from one needs no further escaping:
its parts contain only ``[A-Za-z0-9._-]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from r13core.errors import InvalidName, InvalidValue
from r13core.semver import parse_version

__all__ = ["MAX_NAME_LENGTH", "PackageName", "parse_version"]

MAX_NAME_LENGTH: Final = 214
# What encodeURIComponent leaves alone, minus ~'!()* that npm refuses in new names.
_PART_RE: Final = re.compile(r"[A-Za-z0-9._-]+")
_RESERVED: Final = frozenset({"node_modules", "favicon.ico", "__proto__"})


def _check_part(part: str, what: str, text: str, new: bool) -> None:
    if not part:
        raise InvalidName(f"invalid package name {text!r}: empty {what}")
    if not _PART_RE.fullmatch(part):
        raise InvalidName(
            f"invalid package name {text!r}: {what} may contain only letters, digits, "
            "'.', '_' and '-' (URL-safe)"
        )
    if part[0] in "._":
        raise InvalidName(f"invalid package name {text!r}: {what} cannot start with '.' or '_'")
    if ".." in part:
        raise InvalidName(f"invalid package name {text!r}: '..' is not allowed")
    if part.lower() in _RESERVED:
        raise InvalidName(f"invalid package name {text!r}: {part!r} is a reserved name")
    if new and part != part.lower():
        raise InvalidName(f"invalid package name {text!r}: new packages must be lowercase")


@dataclass(frozen=True, order=True)
class PackageName:
    """A valid npm package name: ``scope`` (without "@", or None) and ``bare``."""

    scope: str | None
    bare: str

    @classmethod
    def parse(cls, text: str, *, new: bool = False) -> PackageName:
        """Parse ``@scope/bare`` or ``bare`` by npm's rules; InvalidName otherwise.

        ``new=True`` adds the rules for names being created (lowercase only).
        """
        if not isinstance(text, str):
            raise InvalidName(f"a package name must be a string, not {type(text).__name__}")
        if not text:
            raise InvalidName("invalid package name '': empty")
        if len(text) > MAX_NAME_LENGTH:
            raise InvalidName(
                f"invalid package name {text[:40]!r}...: longer than {MAX_NAME_LENGTH} characters"
            )
        if text != text.strip():
            raise InvalidName(f"invalid package name {text!r}: leading or trailing spaces")
        if text.startswith("@"):
            scope, slash, bare = text[1:].partition("/")
            if not slash:
                raise InvalidName(f"invalid package name {text!r}: a scoped name is @scope/name")
            _check_part(scope, "scope", text, new)
            _check_part(bare, "name", text, new)
            return cls(scope, bare)
        _check_part(text, "name", text, new)
        return cls(None, text)

    @classmethod
    def from_url(cls, segment: str) -> PackageName:
        """Parse a raw URL segment: ``@scope%2fname``, ``@scope%2Fname`` or ``@scope/name``.

        Percent-decodes exactly once, then applies :meth:`parse`.
        """
        try:
            text = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise InvalidName(f"invalid package name {segment!r}: bad percent-encoding") from None
        return cls.parse(text)

    def __str__(self) -> str:
        return f"@{self.scope}/{self.bare}" if self.scope else self.bare

    @property
    def url(self) -> str:
        """The name as one URL path segment (``@scope%2fbare``)."""
        return f"@{self.scope}%2f{self.bare}" if self.scope else self.bare

    def tarball_file(self, version: str) -> str:
        """``bare-1.2.3.tgz`` (the version is checked: it becomes part of a path)."""
        return f"{self.bare}-{parse_version(version)}.tgz"

    def tarball_path(self, version: str) -> str:
        """``@scope/bare/-/bare-1.2.3.tgz``, relative to the registry's public URL."""
        return f"{self}/-/{self.tarball_file(version)}"

    def version_of_file(self, filename: str) -> str:
        """The version in a tarball file name of this package; InvalidName if it is not one.

        Accepts ``bare-1.2.3.tgz`` and, for scoped names, ``@scope/bare-1.2.3.tgz``
        (some clients send the full name, as npm does for attachment names).
        """
        for prefix in (f"{self.bare}-", f"{self}-"):
            if filename.startswith(prefix) and filename.endswith(".tgz"):
                version = filename[len(prefix) : -len(".tgz")]
                try:
                    return parse_version(version)
                except InvalidValue:
                    continue
        raise InvalidName(f"{filename!r} is not a tarball file name of {self}")
