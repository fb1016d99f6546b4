"""How a package document is stored: a small head row plus one row per version.

A registry document (r13core/registry/documents.py) grows with every version; storing it
whole made every publish read, parse, re-serialise and rewrite all of it (and its WAL
pages). Both backends instead keep:

* the **head** (``packages.doc``): every top-level field except ``versions`` and the
  per-version ``time`` and ``attestations`` — name, created, modified, dist-tags,
  maintainers, readme, the latest version's descriptive fields;
* one **version row** (``package_versions``) per version: its manifest, its publish time,
  its provenance attestations, and ``pos``, the version's place in the document's
  ``versions`` (insertion order, which the served packument keeps).

:func:`split` and :func:`join` convert between the two exactly: ``join(*split(doc))``
equals ``doc`` (same keys, same values, same order inside ``versions`` and ``time``), so a
packument rendered from the joined document is byte-identical to one rendered from the
whole document. What cannot be put in rows without changing the document stays in the
head as it was (``layout``):

* :data:`WHOLE` — the document has no ``versions`` or no ``time`` object (not a
  registry document): stored whole in the head, no version rows;
* :data:`ROWS` — ``versions`` in rows. ``time`` is in the rows too when its keys are
  exactly the versions in the same order (what every r13 write keeps); otherwise the
  head keeps ``time`` whole. ``attestations`` are in the rows when every key is a
  version; otherwise the head keeps them whole.

A publish (r13core/registry/publish.py) reads the head and the few versions it checks
and writes one version row plus the head: its cost does not grow with the package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

JSONDict = dict[str, Any]

WHOLE: Final = 0
ROWS: Final = 1


@dataclass(frozen=True)
class VersionRow:
    """One version of a package as stored: manifest, publish time, attestations."""

    version: str
    manifest: Any
    time: Any = None
    attestations: Any = None


@dataclass(frozen=True)
class PackageHead:
    """A package's head row: its rev, layout and the document without its versions."""

    name: str
    rev: int
    layout: int
    top: JSONDict


def split(doc: JSONDict) -> tuple[int, JSONDict, list[VersionRow]]:
    """``(layout, head, rows)`` of a whole document (rows in ``versions`` order)."""
    versions, times = doc.get("versions"), doc.get("time")
    if not isinstance(versions, dict) or not isinstance(times, dict):
        return WHOLE, dict(doc), []
    top = {k: v for k, v in doc.items() if k != "versions"}
    row_times = list(times) == list(versions)
    if row_times:
        del top["time"]
    atts = doc.get("attestations")
    row_atts = (
        isinstance(atts, dict)
        and bool(atts)
        and all(v in versions and a is not None for v, a in atts.items())
    )
    if row_atts:
        del top["attestations"]
    rows = [
        VersionRow(
            v,
            m,
            times[v] if row_times else None,
            atts.get(v) if row_atts and isinstance(atts, dict) else None,
        )
        for v, m in versions.items()
    ]
    return ROWS, top, rows


def join(layout: int, top: JSONDict, rows: list[VersionRow]) -> JSONDict:
    """The whole document from its head and version rows (the inverse of :func:`split`)."""
    if layout == WHOLE:
        return top
    doc = dict(top)
    doc["versions"] = {r.version: r.manifest for r in rows}
    if "time" not in doc:
        doc["time"] = {r.version: r.time for r in rows}
    found = {r.version: r.attestations for r in rows if r.attestations is not None}
    if found:
        doc["attestations"] = {**(doc.get("attestations") or {}), **found}
    return doc


__all__ = ["ROWS", "WHOLE", "PackageHead", "VersionRow", "join", "split"]


# -- the columns of a version row, as both backends store them (TEXT, compact JSON) --------


def compact(value: object) -> str:
    """JSON text as the rows store it (compact; key order kept)."""
    return json.dumps(value, separators=(",", ":"))


def row_values(name: str, pos: int, row: VersionRow) -> tuple[object, ...]:
    """``(name, version, pos, manifest, time, attestations)``: one row's insert parameters."""
    atts = None if row.attestations is None else compact(row.attestations)
    return (name, row.version, pos, compact(row.manifest), compact(row.time), atts)


def rows_values(name: str, rows: Iterable[VersionRow]) -> list[tuple[object, ...]]:
    """:func:`row_values` of every row, ``pos`` counted from 0 in order."""
    return [row_values(name, pos, row) for pos, row in enumerate(rows)]


def version_row(version: str, manifest: str, time: str, attestations: str | None) -> VersionRow:
    """A row read back from its columns."""
    atts = None if attestations is None else json.loads(attestations)
    return VersionRow(version, json.loads(manifest), json.loads(time), atts)


def record_rows(result: Sequence[Sequence[Any]]) -> list[VersionRow]:
    """The version rows of a document query's result (``kind, pos, version, manifest, time,
    attestations`` per row, the head first): every row after the head."""
    return [version_row(v, m, t, a) for _, _, v, m, t, a in result[1:]]
