"""A strict, streaming reader of the tar inside a published tarball.

Why not ``tarfile``: the registry must see exactly the files the installing
client will write, and ``tarfile`` reads some archives differently from the
clients' own readers (node-tar for npm, tar-stream for yarn, pnpm's and bun's
own): it prefixes the ``prefix`` field of GNU headers, stops at the first zero
block, accepts checksums npm's reader rejects, and follows chains of pax/GNU
headers by recursion with each header's body read whole into memory. Here,
anything two readers could read two ways is refused instead:

- formats: POSIX ustar (with pax extended headers) and GNU; no V7 headers;
- the header checksum is the unsigned byte sum, as node-tar checks it;
- entry kinds: regular files and directories only (links, devices, fifos,
  sparse and contiguous files, volume labels... are refused by name);
- one pax header and/or one GNU long name per entry, not both giving a path;
  pax ``size`` must equal the header's size; no ``linkpath``, no sparse keys,
  no binary charset, at most 64 records; a global pax header may not set
  ``path`` or ``size``;
- names are strict UTF-8; a GNU header's prefix area must be empty;
- after the first all-zero block, every remaining byte must be zero (no
  entries hidden behind an end marker that only some readers honour).

Meta-header bodies are bounded (``max_meta``) before they are read. The reader
pulls bytes from ``read(n)`` (which returns fewer than ``n`` only at the end)
and never holds more than one meta body or one wanted file in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from r13core.errors import InvalidPublish

BLOCK: Final = 512
_ZERO: Final = bytes(BLOCK)
_POSIX: Final = b"ustar\x0000"
_GNU: Final = b"ustar  \x00"
_SKIP: Final = 64 * 1024
_MAX_PAX_RECORDS: Final = 64  # real headers carry a dozen at most

FILE: Final = "file"
DIRECTORY: Final = "directory"
_KINDS: Final = {
    b"0": FILE,
    b"\x00": FILE,
    b"5": DIRECTORY,
}
_REFUSED: Final = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a fifo",
    b"7": "a contiguous file",
    b"K": "a GNU long link name",
    b"S": "a GNU sparse file",
    b"D": "a GNU dump directory",
    b"M": "a GNU multi-volume continuation",
    b"V": "a volume label",
    b"N": "a GNU old long name",
    b"X": "a Solaris extended header",
}
# pax keys that would change what an entry is, where others readers may differ.
_PAX_REFUSED: Final = ("linkpath", "GNU.sparse.", "SCHILY.realsize", "SCHILY.filetype")


@dataclass(frozen=True)
class TarEntry:
    """One member: its path as the archive names it, kind, size, and data if asked for."""

    path: str
    kind: str
    size: int
    data: bytes | None = None


def _refuse(message: str) -> InvalidPublish:
    return InvalidPublish(f"tarball: {message}")


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(f"{what} is not valid UTF-8") from None


def _nts(field: bytes) -> bytes:
    """A NUL-terminated string field (every tar reader stops at the first NUL)."""
    end = field.find(b"\x00")
    return field if end < 0 else field[:end]


def _number(field: bytes, what: str) -> int:
    """An octal ASCII number (spaces/NULs around it), or GNU's base-256 form."""
    if field[:1] == b"\xff":
        raise _refuse(f"the {what} field of a header is negative")
    if field[0] & 0x80:  # high bit set: big-endian binary in the remaining bits
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    digits = field.replace(b"\x00", b" ").strip()
    if not digits:
        return 0
    if any(c not in b"01234567" for c in digits):
        raise _refuse(f"the {what} field of a header is not an octal number")
    return int(digits, 8)


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "checksum")
    return stored == sum(block[:148]) + 8 * 0x20 + sum(block[156:])


def _pax_records(body: bytes) -> dict[str, str]:
    """Parse ``<len> <key>=<value>\\n`` records strictly; a repeated key is refused."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        if body[pos] == 0:  # zero padding at the end, and nothing after it
            if body.count(0, pos) != len(body) - pos:
                raise _refuse("a pax extended header is malformed")
            break
        space = body.find(b" ", pos, pos + 20)
        if space < 0 or not body[pos:space].isdigit():
            raise _refuse("a pax extended header is malformed")
        length = int(body[pos:space])
        record = body[pos : pos + length]
        if length <= space - pos + 1 or len(record) != length or not record.endswith(b"\n"):
            raise _refuse("a pax extended header record has a wrong length")
        key_raw, eq, value_raw = record[space - pos + 1 : -1].partition(b"=")
        if not eq or not key_raw:
            raise _refuse("a pax extended header record has no key")
        key = _text(key_raw, "a pax header key")
        if key in records:
            raise _refuse(f"a pax extended header sets {key!r} twice")
        records[key] = _text(value_raw, f"the pax {key!r} value")
        if len(records) > _MAX_PAX_RECORDS:
            raise _refuse(f"a pax extended header has more than {_MAX_PAX_RECORDS} records")
        pos += length
    if records.get("hdrcharset", "").upper() == "BINARY":
        raise _refuse("a pax header declares binary (non-UTF-8) names")
    for key in records:
        if key.startswith(_PAX_REFUSED):
            raise _refuse(
                f"the pax key {key!r} is not allowed (links and sparse files are refused)"
            )
    return records


def read_tar(
    read: Callable[[int], bytes],
    *,
    max_entries: int,
    max_meta: int = 64 * 1024,
    want: Callable[[str, int], bool] = lambda path, size: False,
) -> Iterator[TarEntry]:
    """Yield the regular files and directories of the tar that ``read`` returns.

    ``want(path, size)`` says whether to keep a file's bytes (in ``data``);
    other files are skipped as they stream by. InvalidPublish (naming the check)
    for anything refused; the caller checks the paths themselves.
    """
    entries = 0
    globals_seen = 0
    pending_pax: dict[str, str] | None = None
    pending_long: str | None = None
    while True:
        block = read(BLOCK)
        if not block:
            if pending_pax is not None or pending_long is not None:
                raise _refuse("the archive ends after an extended header, without its entry")
            return
        if len(block) < BLOCK:
            raise _refuse("the archive ends inside a header")
        if block == _ZERO:
            if pending_pax is not None or pending_long is not None:
                raise _refuse("an extended header is followed by the end of the archive")
            _rest_is_zero(read)
            return
        if not _checksum_ok(block):
            raise _refuse("a header's checksum is wrong")
        magic = block[257:265]
        if magic not in (_POSIX, _GNU):
            raise _refuse("a header is not in ustar, pax or GNU format")
        flag = block[156:157]
        size = _number(block[124:136], "size")
        name = _nts(block[0:100])
        if magic == _POSIX:
            prefix = _nts(block[345:500])
            raw_path = prefix + b"/" + name if prefix else name
        else:
            if block[345:500].strip(b"\x00"):
                raise _refuse("a GNU header carries data in its prefix area")
            raw_path = name

        if flag in (b"x", b"g", b"L"):
            if size > max_meta:
                raise _refuse(f"an extended header is larger than {max_meta} bytes")
            body = _read_exact(read, _padded(size))[:size]
            if flag == b"g":
                if pending_pax is not None or pending_long is not None:
                    raise _refuse("a global pax header sits between an entry and its header")
                records = _pax_records(body)
                if "path" in records or "size" in records:
                    raise _refuse("a global pax header may not set path or size")
                globals_seen += 1
                if globals_seen > 8:
                    raise _refuse("too many global pax headers")
            elif flag == b"x":
                if pending_pax is not None:
                    raise _refuse("an entry has two pax extended headers")
                pending_pax = _pax_records(body)
            else:
                if pending_long is not None:
                    raise _refuse("an entry has two GNU long names")
                long_name = body.rstrip(b"\x00")
                if b"\x00" in long_name:
                    raise _refuse("a GNU long name holds a NUL byte")
                pending_long = _text(long_name, "a GNU long name")
            continue

        kind = _KINDS.get(flag)
        if kind is None:
            what = _REFUSED.get(flag, f"of unknown type {flag!r}")
            shown = _text(raw_path, "an entry name")[:200]
            raise _refuse(f"entry {shown!r} is {what}; only regular files and directories")
        entries += 1
        if entries > max_entries:
            raise _refuse(f"more than {max_entries} entries")

        path = _text(raw_path, "an entry name")
        pax = pending_pax or {}
        if "path" in pax and pending_long is not None:
            raise _refuse(f"entry {pending_long[:200]!r} is named by both a pax header and GNU")
        if "path" in pax:
            path = pax["path"]
        elif pending_long is not None:
            path = pending_long
        pax_size = pax.get("size")
        if pax_size is not None and (not pax_size.isdigit() or int(pax_size) != size):
            raise _refuse(f"entry {path[:200]!r} has a pax size that differs from its header")
        pending_pax, pending_long = None, None

        if kind == DIRECTORY:
            if size:
                raise _refuse(f"directory {path[:200]!r} has a size")
            yield TarEntry(path, kind, 0)
            continue
        if path.endswith("/"):
            # Old tars marked directories as files with a trailing slash; node-tar
            # still reads a type-NUL one so, others as a file. Ambiguous: refused.
            raise _refuse(f"entry {path[:200]!r} is a file whose name ends with '/'")
        if want(path, size):
            data = _read_exact(read, _padded(size))[:size]
            yield TarEntry(path, kind, size, data)
        else:
            _skip(read, _padded(size))
            yield TarEntry(path, kind, size)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    data = read(n)
    if len(data) != n:
        raise _refuse("the archive ends inside an entry")
    return data


def _skip(read: Callable[[int], bytes], n: int) -> None:
    while n:
        step = min(n, _SKIP)
        if len(read(step)) != step:
            raise _refuse("the archive ends inside an entry")
        n -= step


def _rest_is_zero(read: Callable[[int], bytes]) -> None:
    """After the end marker only zero padding may follow: no entries hidden behind it."""
    while chunk := read(_SKIP):
        if chunk.count(0) != len(chunk):
            raise _refuse("data follows the end-of-archive marker")


__all__ = ["DIRECTORY", "FILE", "TarEntry", "read_tar"]
