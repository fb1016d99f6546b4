"""The 13-byte record: its value type and its live, shared store.

Layout (the table in README.md, "The 13-byte record"), integers little-endian::

    0x00 version u8 (1)         0x09 terminalMode u8 (0 off, 1 line, 2 raw)
    0x01 registryHash u32       0x0A rows u8
    0x05 featureFlags u32       0x0B cols u8
                                0x0C reserved u8 (preserved as written)

:class:`Config13` is the immutable value with a pure-Python codec (the
oracle for the C one). :class:`ConfigStore` is the live record of a data
dir: every process that opens the same dir shares one copy in shared
memory (lock-free reads, a generation number that grows on every change)
backed by ``<data>/config.r13``. :class:`PyConfigStore` is the pure-Python
twin (file only, no shared memory), kept as the bench baseline.
"""

from __future__ import annotations

import enum
import fcntl
import os
import struct
from pathlib import Path
from typing import Any, Final, NamedTuple, Self

from r13core import cooperative
from r13core._ffi import NativeHandle, check, check_attach, ffi, lib
from r13core.errors import InvalidValue, RecordFileError

RECORD_SIZE: Final = 13
RECORD_VERSION: Final = 1
RECORD_FILE: Final = "config.r13"
_LAYOUT = struct.Struct("<BIIBBBB")
# r13_snapshot as C lays it out: u64 generation, 13 bytes, padding.
_SNAPSHOT = struct.Struct("<Q13s3x")
_SNAPSHOT_UNPACK = _SNAPSHOT.unpack_from
_READ = lib.r13_record_read
_WRITE = lib.r13_record_write


class Feature(enum.IntFlag):
    """Bits of ``featureFlags``. Bits 8-31 are reserved and preserved."""

    PREMIUM_TYPES = 1 << 0
    PRIVATE_REGISTRY = 1 << 1
    DEBUG = 1 << 2
    PROXY_MODE = 1 << 3
    BINARY_PROTOCOL = 1 << 4
    CACHE_ENABLED = 1 << 5
    METRICS = 1 << 6
    LOGGING = 1 << 7

    @classmethod
    def parse(cls, name: str) -> Feature:
        """The flag called ``name`` (any case, ``-`` or ``_``); else InvalidValue."""
        key = name.strip().upper().replace("-", "_")
        try:
            return cls[key]
        except KeyError:
            known = ", ".join(f.name or "" for f in cls)
            raise InvalidValue(f"unknown flag {name!r} (known: {known})") from None


class TerminalMode(enum.IntEnum):
    """What the admin terminal accepts."""

    OFF = 0
    LINE = 1
    RAW = 2


DEFAULT_FEATURES: Final = (
    Feature.PRIVATE_REGISTRY | Feature.CACHE_ENABLED | Feature.METRICS | Feature.LOGGING
)

# Field name -> (offset, size in bytes, maximum value).
FIELDS: Final[dict[str, tuple[int, int, int]]] = {
    "version": (0x00, 1, 0xFF),
    "registry_hash": (0x01, 4, 0xFFFFFFFF),
    "feature_flags": (0x05, 4, 0xFFFFFFFF),
    "terminal_mode": (0x09, 1, 0xFF),
    "rows": (0x0A, 1, 0xFF),
    "cols": (0x0B, 1, 0xFF),
    "reserved": (0x0C, 1, 0xFF),
}
# What each field and flag means (README.md's record table; GET /_api/config/layout).
FIELD_MEANINGS: Final[dict[str, str]] = {
    "version": "record format version, 1",
    "registry_hash": "u32 LE; FNV-1a of the public URL unless set",
    "feature_flags": "u32 LE; bits 0-7 the flags below, bits 8-31 reserved and preserved",
    "terminal_mode": "the admin terminal: 0 off, 1 line, 2 raw",
    "rows": "terminal rows",
    "cols": "terminal columns",
    "reserved": "preserved as written",
}
FEATURE_MEANINGS: Final[dict[str, str]] = {
    "PREMIUM_TYPES": "publish marks versions that ship TypeScript types",
    "PRIVATE_REGISTRY": "every read needs a key (off: anyone may read and install)",
    "DEBUG": "a debug line per request and the X-R13-Worker response header",
    "PROXY_MODE": "a package missing here is fetched from the uplink (R13_UPLINK_URL)",
    "BINARY_PROTOCOL": "offer the live channel's binary frames (r13.v1)",
    "CACHE_ENABLED": "the uplink keeps packuments (revalidated) and checked tarballs",
    "METRICS": "the monitor samples (charts, alerts, /metrics)",
    "LOGGING": "a log line per request (the access log)",
}
# The camelCase names of the README's record table, accepted everywhere a field is named.
_ALIASES: Final = {
    "registryhash": "registry_hash",
    "featureflags": "feature_flags",
    "terminalmode": "terminal_mode",
    "flags": "feature_flags",
}


def field_name(name: str) -> str:
    """Canonical field name for ``name`` (``terminalMode`` -> ``terminal_mode``)."""
    key = name.strip().replace("-", "_")
    if key in FIELDS:
        return key
    folded = key.replace("_", "").lower()
    if folded in _ALIASES:
        return _ALIASES[folded]
    for canonical in FIELDS:
        if canonical.replace("_", "") == folded:
            return canonical
    raise InvalidValue(f"unknown field {name!r} (known: {', '.join(FIELDS)})")


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit of ``text`` as UTF-8: the default registry identity."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


class _Fields(NamedTuple):
    version: int
    registry_hash: int
    feature_flags: int
    terminal_mode: int
    rows: int
    cols: int
    reserved: int


_FIELD_NAMES: Final = _Fields._fields
_LIMITS: Final = tuple(FIELDS[name][2] for name in _FIELD_NAMES)


class Config13(_Fields):
    """One decoded record: an immutable value with named fields.

    Construction validates every field (InvalidValue otherwise). Records that
    the C core already validated are decoded without a second check.
    """

    __slots__ = ()

    def __new__(
        cls,
        version: int = RECORD_VERSION,
        registry_hash: int = 0,
        feature_flags: int = int(DEFAULT_FEATURES),
        terminal_mode: int = int(TerminalMode.LINE),
        rows: int = 24,
        cols: int = 80,
        reserved: int = 0,
    ) -> Self:
        values = (version, registry_hash, feature_flags, terminal_mode, rows, cols, reserved)
        for name, value, limit in zip(_FIELD_NAMES, values, _LIMITS, strict=True):
            if type(value) is not int or not 0 <= value <= limit:
                raise InvalidValue(f"{name} must be an integer in 0..{limit}, not {value!r}")
        if version != RECORD_VERSION:
            raise InvalidValue(f"version must be {RECORD_VERSION}, not {version}")
        if terminal_mode > TerminalMode.RAW:
            raise InvalidValue(f"terminal_mode must be 0..2, not {terminal_mode}")
        return tuple.__new__(cls, values)

    @classmethod
    def _trusted(cls, data: bytes) -> Config13:
        # Only for bytes the C core has validated.
        return tuple.__new__(cls, _LAYOUT.unpack(data))

    def _replace(self, **changes: Any) -> Self:  # validate, unlike NamedTuple's
        values = self._asdict()
        values.update(changes)
        return type(self)(**values)

    @classmethod
    def defaults(cls, public_url: str | None = None) -> Config13:
        """The record a new data dir starts with."""
        return cls(registry_hash=fnv1a32(public_url) if public_url else 0)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Config13:
        """Decode 13 bytes (pure Python); InvalidValue if they are not a record."""
        if len(data) != RECORD_SIZE:
            raise InvalidValue(f"a record is {RECORD_SIZE} bytes, not {len(data)}")
        return cls(*_LAYOUT.unpack(bytes(data)))

    def to_bytes(self) -> bytes:
        """Encode as the 13 bytes of the record (pure Python)."""
        return _LAYOUT.pack(
            self.version,
            self.registry_hash,
            self.feature_flags,
            self.terminal_mode,
            self.rows,
            self.cols,
            self.reserved,
        )

    @property
    def features(self) -> Feature:
        """The known flags that are on (reserved bits are kept in feature_flags)."""
        return Feature(self.feature_flags & 0xFF)

    def has(self, flag: Feature) -> bool:
        """Whether every bit of ``flag`` is on."""
        mask: int = flag._value_  # IntFlag arithmetic is slow on a hot path
        return self.feature_flags & mask == mask

    def with_feature(self, flag: Feature, on: bool) -> Config13:
        """A copy with ``flag`` turned on or off."""
        mask = int(flag)
        flags = self.feature_flags | mask if on else self.feature_flags & ~mask
        return self._replace(feature_flags=flags & 0xFFFFFFFF)

    def with_field(self, name: str, value: int) -> Config13:
        """A copy with field ``name`` (any spelling) set to ``value``, validated."""
        return self._replace(**{field_name(name): value})

    def as_dict(self) -> dict[str, Any]:
        """Fields, flags by name and hex bytes, as the API and CLI show them."""
        return {
            "version": self.version,
            "registryHash": self.registry_hash,
            "featureFlags": self.feature_flags,
            "features": {f.name: self.has(f) for f in Feature},
            "terminalMode": self.terminal_mode,
            "rows": self.rows,
            "cols": self.cols,
            "reserved": self.reserved,
            "hex": self.to_bytes().hex(),
        }


def apply_patch(
    record: bytes | bytearray, mask: bytes | bytearray, values: bytes | bytearray
) -> bytes:
    """``record`` with the bits set in ``mask`` taken from ``values`` (the C patch's oracle)."""
    _check_patch(mask, values)
    return bytes((r & ~m | v & m) & 0xFF for r, m, v in zip(record, mask, values, strict=True))


def _check_patch(mask: bytes | bytearray, values: bytes | bytearray) -> None:
    if len(mask) != RECORD_SIZE or len(values) != RECORD_SIZE:
        raise InvalidValue(f"a patch is a {RECORD_SIZE}-byte mask and {RECORD_SIZE} values")


def _check_write(offset: int, data: bytes) -> None:
    if not data or offset < 0 or offset + len(data) > RECORD_SIZE:
        raise InvalidValue(
            f"write of {len(data)} byte(s) at offset {offset} does not fit the "
            f"{RECORD_SIZE}-byte record"
        )


class ConfigStore(NativeHandle):
    """The live record of ``data_dir``, shared by every process that opens it.

    ``config.r13`` is created from ``defaults`` when absent; a file of any
    other size raises :class:`RecordFileError`. Reads are lock-free and take
    nanoseconds; each update is validated, published to every process at
    once and written to the file (``save()`` fsyncs it). Safe to share
    between threads.
    """

    def __init__(
        self, data_dir: str | os.PathLike[str], *, defaults: Config13 | None = None
    ) -> None:
        self.path = Path(data_dir) / RECORD_FILE
        if ffi.sizeof("r13_snapshot") != _SNAPSHOT.size:
            raise ImportError("r13_snapshot layout differs from what r13core expects: rebuild")
        self._rec = ffi.new("r13_record *")
        self._local = cooperative.thread_local()  # greenlets never switch inside C
        self._cached: tuple[int, Config13] = (0, Config13())
        # Records already decoded, by their bytes: a change that comes back to a
        # known record (flags toggled on and off) is not decoded again.
        self._decoded: dict[bytes, Config13] = {}
        # Until open: a word that never matches a generation (they start at 1).
        self._generation: Any = memoryview(bytearray(8)).cast("Q")
        default_bytes = (defaults or Config13()).to_bytes()
        rc = lib.r13_record_open(self._rec, os.fsencode(data_dir), default_bytes)
        if rc == lib.R13_ESIZE:
            raise RecordFileError(
                f"{self.path} is not a {RECORD_SIZE}-byte r13 record; "
                "move it away or fix it with `r13 config import`"
            )
        check_attach(rc, data_dir, "record", "the live record")
        self._open = True
        # The live copy's generation word, read without a call into C: when it
        # has not moved since the last decode, read() returns that value.
        word = ffi.new("uint64_t **")
        check(lib.r13_record_generation_word(self._rec, word), f"mapping {self.path}")
        self._generation = memoryview(ffi.buffer(word[0], 8)).cast("Q")

    # -- reading -------------------------------------------------------------

    def _buffer(self) -> tuple[bytearray, Any, memoryview]:
        # One snapshot buffer per OS thread: the C call runs without the GIL, so
        # threads must not share it (greenlets of one thread may: none switches
        # between the C call and the unpacking). Python owns the memory; C only fills it.
        # The third item views the generation as a u64 without unpacking.
        try:
            triple: tuple[bytearray, Any, memoryview] = self._local.triple
        except AttributeError:
            buf = bytearray(_SNAPSHOT.size)
            ptr = ffi.from_buffer("r13_snapshot *", buf)
            triple = self._local.triple = (buf, ptr, memoryview(buf)[:8].cast("Q"))
        return triple

    def snapshot(self) -> tuple[int, bytes]:
        """(generation, bytes), consistent with each other."""
        buf, ptr, _ = self._buffer()
        check(lib.r13_record_read(self._rec, ptr))
        generation, raw = _SNAPSHOT_UNPACK(buf)
        return generation, raw

    def read(self) -> Config13:
        """The current record (decoded once per generation).

        While the live copy's generation number is the one last decoded (the
        usual case: records change rarely), that value is returned without a
        call into C; the generation is read from the shared word, and every
        change moves it before anyone can see the new bytes.
        """
        cached = self._cached
        if self._generation[0] == cached[0]:
            return cached[1]
        try:
            buf, ptr, _ = self._local.triple
        except AttributeError:
            buf, ptr, _ = self._buffer()
        rc = _READ(self._rec, ptr)
        if rc:
            check(rc, f"reading {self.path}")
        generation, raw = _SNAPSHOT_UNPACK(buf)
        value = self._decode(raw)
        self._cached = (generation, value)
        return value

    def _decode(self, raw: bytes) -> Config13:
        # Only for bytes the C core has validated.
        value = self._decoded.get(raw)
        if value is None:
            if len(self._decoded) >= 64:
                self._decoded.clear()
            value = self._decoded[raw] = Config13._trusted(raw)
        return value

    def read_bytes(self) -> bytes:
        """The current 13 bytes."""
        return self.snapshot()[1]

    def generation(self) -> int:
        """A number that grows on every change seen by this dir's live copy."""
        return self.snapshot()[0]

    def enabled(self, flag: Feature) -> bool:
        """Whether ``flag`` is on right now."""
        return self.read().has(flag)

    # -- writing -------------------------------------------------------------

    def _finish(self, rc: int, buf: bytearray, context: str) -> Config13:
        check(rc, context)
        generation, raw = _SNAPSHOT_UNPACK(buf)
        value = self._decode(raw)
        self._cached = (generation, value)
        return value

    def write_bytes(self, offset: int, data: bytes) -> Config13:
        """Write ``data`` at ``offset``; the result must still be a valid record."""
        size = len(data)
        if not size or offset < 0 or offset + size > RECORD_SIZE:
            _check_write(offset, bytes(data))
        try:
            buf, ptr, _ = self._local.triple
        except AttributeError:
            buf, ptr, _ = self._buffer()
        rc = _WRITE(self._rec, offset, data, size, ptr)
        if rc:  # the message is built only when it is needed
            check(rc, f"writing {size} byte(s) at offset {offset}")
        generation, raw = _SNAPSHOT_UNPACK(buf)
        value = self._decode(raw)
        self._cached = (generation, value)
        return value

    def set_feature(self, flag: Feature | int | str, on: bool) -> Config13:
        """Turn one feature bit (a Feature, a name, or a bit number 0..31) on or off."""
        bit = _bit_of(flag)
        buf, ptr, _ = self._buffer()
        rc = lib.r13_record_set_bit(self._rec, bit, 1 if on else 0, ptr)
        return self._finish(rc, buf, f"setting bit {bit}")

    def set_field(self, name: str, value: int) -> Config13:
        """Set one field by name, validated like every other write."""
        name = field_name(name)
        offset, size, limit = FIELDS[name]
        if type(value) is not int or not 0 <= value <= limit:
            raise InvalidValue(f"{name} must be an integer in 0..{limit}, not {value!r}")
        return self.write_bytes(offset, value.to_bytes(size, "little"))

    def replace(self, value: Config13 | bytes) -> Config13:
        """Replace the whole record."""
        data = value.to_bytes() if isinstance(value, Config13) else bytes(value)
        if len(data) != RECORD_SIZE:
            raise InvalidValue(f"a record is {RECORD_SIZE} bytes, not {len(data)}")
        buf, ptr, _ = self._buffer()
        rc = lib.r13_record_replace(self._rec, data, ptr)
        return self._finish(rc, buf, "replacing the record")

    def patch(self, mask: bytes, values: bytes) -> Config13:
        """Several edits as one change: bits set in ``mask`` come from ``values``.

        Every other bit keeps the live value at the moment of the change
        (:func:`apply_patch`), so the terminal's staged edits never undo a
        change another process made to other bits meanwhile.
        """
        _check_patch(mask, values)
        buf, ptr, _ = self._buffer()
        rc = lib.r13_record_patch(self._rec, bytes(mask), bytes(values), ptr)
        return self._finish(rc, buf, "applying staged edits")

    def save(self) -> None:
        """Make the last change durable (fsync)."""
        check(lib.r13_record_save(self._rec), f"saving {self.path}")

    # -- life ----------------------------------------------------------------

    def _release(self) -> None:
        # Stop reading the shared word before it is unmapped: read() then calls
        # into C, which refuses a closed record.
        self._generation = memoryview(bytearray(8)).cast("Q")
        self._cached = (-1, self._cached[1])
        lib.r13_record_close(self._rec)


def feature_bit(flag: Feature | int | str) -> int:
    """The bit number (0..31) of a single Feature, its name or a bit number; InvalidValue."""
    return _bit_of(flag)


def _bit_of(flag: Feature | int | str) -> int:
    if isinstance(flag, str):
        flag = Feature.parse(flag)
    if isinstance(flag, Feature):
        value = int(flag)
        if value == 0 or value & (value - 1):
            raise InvalidValue(f"{flag!r} is not a single flag")
        return value.bit_length() - 1
    if type(flag) is not int or not 0 <= flag <= 31:
        raise InvalidValue(f"feature bit must be 0..31, not {flag!r}")
    return flag


class PyConfigStore:
    """Pure-Python twin of :class:`ConfigStore`: the file alone, no shared memory.

    Every read is a ``pread`` of the file; writers serialise on an flock.
    Kept as the baseline the benches compare the C path with, and as an
    oracle for update semantics.
    """

    def __init__(
        self, data_dir: str | os.PathLike[str], *, defaults: Config13 | None = None
    ) -> None:
        self.path = Path(data_dir) / RECORD_FILE
        if not self.path.exists():
            tmp = self.path.with_name(f".{RECORD_FILE}.{os.getpid()}.py.tmp")
            tmp.write_bytes((defaults or Config13()).to_bytes())
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        if os.fstat(self._fd).st_size != RECORD_SIZE:
            os.close(self._fd)
            raise RecordFileError(f"{self.path} is not a {RECORD_SIZE}-byte r13 record")
        self._generation = 0

    def read_bytes(self) -> bytes:
        data: bytes = os.pread(self._fd, RECORD_SIZE, 0)
        return data

    def read(self) -> Config13:
        return Config13.from_bytes(self.read_bytes())

    def _update(self, change: Any) -> Config13:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = bytearray(self.read_bytes())
            change(current)
            value = Config13.from_bytes(current)
            os.pwrite(self._fd, bytes(current), 0)
            self._generation += 1
            return value
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def write_bytes(self, offset: int, data: bytes) -> Config13:
        _check_write(offset, data)

        def change(buf: bytearray) -> None:
            buf[offset : offset + len(data)] = data

        return self._update(change)

    def set_feature(self, flag: Feature | int | str, on: bool) -> Config13:
        mask = 1 << _bit_of(flag)

        def change(buf: bytearray) -> None:
            flags = int.from_bytes(buf[5:9], "little")
            flags = flags | mask if on else flags & ~mask
            buf[5:9] = flags.to_bytes(4, "little")

        return self._update(change)

    def replace(self, value: Config13 | bytes) -> Config13:
        data = value.to_bytes() if isinstance(value, Config13) else bytes(value)

        def change(buf: bytearray) -> None:
            if len(data) != RECORD_SIZE:
                raise InvalidValue(f"a record is {RECORD_SIZE} bytes, not {len(data)}")
            buf[:] = data

        return self._update(change)

    def patch(self, mask: bytes, values: bytes) -> Config13:
        _check_patch(mask, values)

        def change(buf: bytearray) -> None:
            buf[:] = apply_patch(bytes(buf), mask, values)

        return self._update(change)

    def save(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# -- the C codec, exposed for property tests against the Python one ------------


def native_pack(cfg: Config13) -> bytes:
    """Encode through ``r13_config_pack`` (validates in C)."""
    c = ffi.new("r13_config *")
    (
        c.version,
        c.registry_hash,
        c.feature_flags,
        c.terminal_mode,
        c.rows,
        c.cols,
        c.reserved,
    ) = cfg
    out = ffi.new("uint8_t[13]")
    check(lib.r13_config_pack(c, out), "packing the record")
    return bytes(ffi.buffer(out))


def native_unpack(data: bytes) -> Config13:
    """Decode through ``r13_config_unpack`` (validates in C)."""
    if len(data) != RECORD_SIZE:
        raise InvalidValue(f"a record is {RECORD_SIZE} bytes, not {len(data)}")
    c = ffi.new("r13_config *")
    check(lib.r13_config_unpack(data, c), "unpacking the record")
    return Config13._trusted(
        _LAYOUT.pack(
            c.version, c.registry_hash, c.feature_flags, c.terminal_mode, c.rows, c.cols, c.reserved
        )
    )
