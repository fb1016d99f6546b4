"""Semantic versions (semver 2.0) and npm's range syntax.

Written here rather than taken from PyPI: the Python ports of node-semver are
unmaintained, and r13 needs only three things, all small: strict version
parsing (publish), precedence (``latest`` after an unpublish), and range
matching for the usual forms (audit advisories, and refusing dist-tags that
look like ranges, as the public registry does). Ranges follow node-semver's
desugaring: ``^``, ``~``/``~>``, x-ranges (``1``, ``1.2.x``, ``*``), hyphen
ranges, ``<``/``<=``/``>``/``>=``/``=``, whitespace for "and", ``||`` for "or";
a prerelease version matches only a comparator set that names a prerelease of
the same major.minor.patch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from typing import Final

from r13core.errors import InvalidValue

MAX_VERSION_LENGTH: Final = 256
_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_VERSION_RE: Final = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A parsed semver 2.0 version; ordering is semver precedence (build ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse a strict semver 2.0 version; InvalidValue otherwise."""
        if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
            raise InvalidValue(f"invalid version {text!r}: longer than {MAX_VERSION_LENGTH}")
        m = _VERSION_RE.fullmatch(text)
        if m is None:
            raise InvalidValue(f"invalid version {text!r}: not semver 2.0 (like 1.2.3)")
        pre: tuple[int | str, ...] = ()
        if m.group(4):
            pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split("."))
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, m.group(5) or "")

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # No prerelease sorts after any prerelease; numeric ids before alphanumeric ones.
        ids = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, ids)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def parse_version(text: str) -> str:
    """``text`` if it is a strict semver 2.0 version (max 256 chars), else InvalidValue."""
    Version.parse(text)
    return text


def version_key(text: str) -> Version:
    """Sort key for version strings (invalid ones sort first, as 0.0.0-0)."""
    try:
        return Version.parse(text)
    except InvalidValue:
        return Version(0, 0, 0, (0,))


# -- ranges -------------------------------------------------------------------

_PARTIAL_RE: Final = re.compile(
    r"v?(?P<major>[0-9]+|[xX*])"
    r"(?:\.(?P<minor>[0-9]+|[xX*])"
    r"(?:\.(?P<patch>[0-9]+|[xX*])"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
    r")?)?"
)
_TOKEN_RE: Final = re.compile(r"(?P<op><=|>=|<|>|=|~>|~|\^)?(?P<ver>.*)", re.DOTALL)
_OP_SPACE_RE: Final = re.compile(r"(<=|>=|<|>|=|~>|~|\^)\s+")
_HYPHEN_RE: Final = re.compile(r" *(\S+) +- +(\S+) *")
# What a range may hold: printable ASCII and spaces (no tabs, newlines or controls).
_RANGE_CHARS: Final = re.compile(r"[ -~]*")

Comparator = tuple[str, Version]  # (op, version), op in <, <=, >, >=, =


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: tuple[int | str, ...]

    def floor(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)


def _parse_partial(text: str, source: str) -> _Partial:
    m = _PARTIAL_RE.fullmatch(text)
    if m is None or len(text) > MAX_VERSION_LENGTH:
        raise InvalidValue(f"invalid range {source!r}: cannot read {text!r}")

    def num(name: str) -> int | None:
        value = m.group(name)
        return None if value is None or value in "xX*" else int(value)

    major, minor, patch = num("major"), num("minor"), num("patch")
    # A wildcard makes everything after it a wildcard too (1.x.3 means 1.x).
    if major is None:
        minor = patch = None
    elif minor is None:
        patch = None
    pre: tuple[int | str, ...] = ()
    if m.group("pre") and patch is not None:
        pre = tuple(int(p) if p.isdigit() else p for p in m.group("pre").split("."))
    return _Partial(major, minor, patch, pre)


def _upper(p: _Partial, level: str) -> Version:
    """The exclusive upper bound ``<X-0`` one step above ``p`` at ``level``."""
    major = p.major or 0
    minor = p.minor or 0
    if level == "major":
        return Version(major + 1, 0, 0, (0,))
    if level == "minor":
        return Version(major, minor + 1, 0, (0,))
    return Version(major, minor, (p.patch or 0) + 1, (0,))


def _desugar(op: str, p: _Partial) -> list[Comparator]:
    floor = p.floor()
    if op in ("~", "~>"):
        if p.major is None:
            return []
        return [(">=", floor), ("<", _upper(p, "major" if p.minor is None else "minor"))]
    if op == "^":
        if p.major is None:
            return []
        if p.major > 0 or p.minor is None:
            level = "major"
        elif p.minor > 0 or p.patch is None:
            level = "minor"
        else:
            level = "patch"
        return [(">=", floor), ("<", _upper(p, level))]
    if p.major is None:  # *, x, >*, <*
        return [("<", Version(0, 0, 0, (0,)))] if op in ("<", ">") else []
    if p.patch is not None:
        return [(op or "=", floor)]
    level = "major" if p.minor is None else "minor"
    if op in ("", "="):
        return [(">=", floor), ("<", _upper(p, level))]
    if op == ">":
        u = _upper(p, level)
        return [(">=", Version(u.major, u.minor, u.patch))]
    if op == ">=":
        return [(">=", floor)]
    if op == "<":
        return [("<", Version(floor.major, floor.minor, floor.patch, (0,)))]
    return [("<", _upper(p, level))]  # <=


def _parse_set(text: str, source: str) -> list[Comparator]:
    text = text.strip()
    hyphen = _HYPHEN_RE.fullmatch(text)
    if hyphen:
        lo = _parse_partial(hyphen.group(1), source)
        hi = _parse_partial(hyphen.group(2), source)
        out: list[Comparator] = [] if lo.major is None else [(">=", lo.floor())]
        if hi.major is not None:
            if hi.patch is not None:
                out.append(("<=", hi.floor()))
            else:
                out.append(("<", _upper(hi, "major" if hi.minor is None else "minor")))
        return out
    text = _OP_SPACE_RE.sub(r"\1", text)
    comparators: list[Comparator] = []
    for token in text.split():
        m = _TOKEN_RE.fullmatch(token)
        assert m is not None  # the pattern matches any string
        op, ver = m.group("op") or "", m.group("ver")
        if ver.startswith("="):  # "=v1.2.3" forms
            ver = ver[1:]
        comparators.extend(_desugar(op, _parse_partial(ver, source)))
    return comparators


@dataclass(frozen=True)
class Range:
    """A parsed npm range: a union of comparator sets."""

    source: str
    sets: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        """Parse an npm range; InvalidValue if it is not one."""
        if not isinstance(text, str) or len(text) > 1024 or not _RANGE_CHARS.fullmatch(text):
            raise InvalidValue(f"invalid range {text!r}")
        sets = tuple(tuple(_parse_set(part, text)) for part in text.split("||"))
        return cls(text, sets)

    def matches(self, version: str | Version) -> bool:
        """Whether ``version`` satisfies the range (invalid versions never do)."""
        if isinstance(version, str):
            try:
                version = Version.parse(version)
            except InvalidValue:
                return False
        return any(_test_set(cs, version) for cs in self.sets)


def _test_set(comparators: tuple[Comparator, ...], v: Version) -> bool:
    for op, bound in comparators:
        if not _compare(op, v, bound):
            return False
    if v.prerelease:
        # As node-semver: a prerelease passes only if the set names a prerelease
        # of the same major.minor.patch.
        return any(
            b.prerelease and (b.major, b.minor, b.patch) == (v.major, v.minor, v.patch)
            for _, b in comparators
        )
    return True


def _compare(op: str, v: Version, bound: Version) -> bool:
    if op == "<":
        return v < bound
    if op == "<=":
        return v <= bound
    if op == ">":
        return v > bound
    if op == ">=":
        return v >= bound
    return v == bound


def is_valid_range(text: str) -> bool:
    """Whether ``text`` parses as a version or range (npm's ``semver.validRange``)."""
    try:
        Range.parse(text)
    except InvalidValue:
        return False
    return True


def satisfies(version: str, range_text: str) -> bool:
    """Whether ``version`` is in ``range_text``; InvalidValue if the range is bad."""
    return Range.parse(range_text).matches(version)
