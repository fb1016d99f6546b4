"""r13's own signing keys: a key ring in the data dir, created on first use, rotated by an admin.

Layout (``<data>/signing/``, directory 0700, files 0600, r13core/datadir.py)::

    ring.json          {"keys": [{keyid, key, created, expires, file}]}, oldest first
    <hex>.pem          one PKCS#8 private key per entry (never leaves the data dir)
    .lock              flock: one creation or rotation at a time, across processes

The active key is the last entry; it has ``expires: null``. A rotation makes
a new key, gives the old active key an ``expires`` of now + :data:`ROTATION_GRACE`
and keeps it listed, so every signature it made stays verifiable: npm compares a
key's ``expires`` with each version's publish time, and every version the old
key signed was published before the rotation. The grace covers a worker that
read the ring just before a rotation and signs one more publish with the old key
(and clocks of several nodes that differ a little).

Every file is written temp → fsync → rename → fsync dir, the private key before
the ring that names it, so a crash leaves either the old ring or the new one,
never a ring naming a key that is not there. Processes notice a rotation on their
next signature: the ring's stat (inode, size, mtime) is compared on each use,
one ``stat`` call. Creation and rotation are audited (``signing.create``,
``signing.rotate``) with who did it (:class:`r13core.audit.Actor`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from r13core import locks
from r13core.audit import Actor, AuditLog
from r13core.datadir import FILE_MODE, make_private_dirs, narrow_file, open_private
from r13core.errors import InvalidValue
from r13core.signatures import PublicKey, keyid_of, public_key_der, sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec


RING: Final = "ring.json"
LOCK: Final = ".lock"
ROTATION_GRACE: Final = 300.0
"""Seconds an old key stays valid for new publishes after a rotation (see the module doc)."""
MAX_RING: Final = 1024 * 1024


def iso(ts: float) -> str:
    """A Unix time as npm writes times: ``2026-11-28T12:00:00.000Z``."""
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True)
class RingEntry:
    """One key of the ring: its public half as served, when made, and its private key file."""

    public: PublicKey
    created: str
    file: str

    def as_json(self) -> dict[str, Any]:
        return {**self.public.as_json(), "created": self.created, "file": self.file}

    @classmethod
    def from_json(cls, obj: Any) -> RingEntry:
        if not isinstance(obj, dict):
            raise InvalidValue("ring entry must be an object")
        created, file = obj.get("created"), obj.get("file")
        if not isinstance(created, str) or not isinstance(file, str) or "/" in file:
            raise InvalidValue("ring entry needs created and a plain file name")
        return cls(PublicKey.from_json(obj), created, file)


@dataclass(frozen=True)
class Signature:
    """One ``dist.signatures`` entry."""

    keyid: str
    sig: str

    def as_json(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": self.sig}


class SigningKeys:
    """The data dir's key ring: sign versions, list public keys, rotate.

    ``audit`` records creation and rotation; ``clock`` gives Unix time (tests
    pass their own). Safe to share between threads; each process keeps the
    active private key in memory and reloads it when the ring file changes.
    """

    def __init__(
        self, directory: Path, audit: AuditLog, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = Path(directory)
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: tuple[RingEntry, ...] = ()
        self._active: ec.EllipticCurvePrivateKey | None = None

    # -- reading ----------------------------------------------------------------------

    def _ring_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.directory / RING)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read_ring(self) -> tuple[RingEntry, ...]:
        fd = open_private(self.directory / RING, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_RING + 1)
        if len(raw) > MAX_RING:
            raise InvalidValue(f"{self.directory / RING} is larger than {MAX_RING} bytes")
        try:
            doc = json.loads(raw)
            entries = tuple(RingEntry.from_json(e) for e in doc["keys"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidValue(f"{self.directory / RING} is not a key ring: {exc}") from None
        if not entries or entries[-1].public.expires is not None:
            raise InvalidValue(f"{self.directory / RING} has no active key (the last one)")
        return entries

    def _load_private(self, entry: RingEntry) -> ec.EllipticCurvePrivateKey:
        fd = open_private(self.directory / entry.file, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            pem = f.read(64 * 1024)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise InvalidValue(f"{entry.file} is not an ECDSA P-256 private key")
        if keyid_of(public_key_der(key)) != entry.public.keyid:
            raise InvalidValue(f"{entry.file} does not hold key {entry.public.keyid}")
        return key

    def _current(self) -> tuple[tuple[RingEntry, ...], ec.EllipticCurvePrivateKey]:
        """The ring and the active private key, reloaded if the ring file changed."""
        stamp = self._ring_stamp()
        with self._lock:
            if stamp is not None and stamp == self._stamp and self._active is not None:
                return self._entries, self._active
        if stamp is None:
            self.ensure()
            stamp = self._ring_stamp()
        entries = self._read_ring()
        active = self._load_private(entries[-1])
        with self._lock:
            self._stamp, self._entries, self._active = stamp, entries, active
        return entries, active

    def public_keys(self) -> list[PublicKey]:
        """Every key of the ring (rotated ones with their ``expires``), oldest first."""
        return [e.public for e in self._current()[0]]

    def ring(self) -> list[RingEntry]:
        """The ring's entries, oldest first (the last is active)."""
        return list(self._current()[0])

    def active_keyid(self) -> str:
        """The key id new signatures are made with."""
        return self._current()[0][-1].public.keyid

    def sign(self, name: str, version: str, integrity: str) -> Signature:
        """A signature of ``name@version:integrity`` with the active key."""
        entries, key = self._current()
        return Signature(entries[-1].public.keyid, sign(key, name, version, integrity))

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_private_dirs(self.directory)
        fd = open_private(self.directory / LOCK)
        try:
            locks.flock(fd, fcntl.LOCK_EX)  # waits on gevent's hub, not in the kernel
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _write_file(self, name: str, data: bytes) -> None:
        path = self.directory / name
        tmp = self.directory / f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _new_entry(self, now: float) -> RingEntry:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = PublicKey.from_der(public_key_der(key))
        file = f"{hashlib.sha256(public.der).hexdigest()[:32]}.pem"
        self._write_file(file, pem)  # before the ring that names it
        return RingEntry(public, iso(now), file)

    def _save_ring(self, entries: list[RingEntry]) -> None:
        doc = {"keys": [e.as_json() for e in entries]}
        self._write_file(RING, (json.dumps(doc, indent=2) + "\n").encode())

    def ensure(self, actor: Actor | None = None) -> bool:
        """Create the ring with its first key unless it exists; whether it was created.

        Audited as ``signing.create`` by ``actor`` (default: r13 itself).
        """
        if self._ring_stamp() is not None:
            narrow_file(self.directory / RING)
            return False
        with self._locked():
            if self._ring_stamp() is not None:
                return False
            entry = self._new_entry(self._clock())
            self._save_ring([entry])
        self._audit.safe_record_by(actor or Actor.system(), "signing.create", entry.public.keyid)
        return True

    def rotate(self, actor: Actor) -> tuple[PublicKey, PublicKey]:
        """Make a new active key; the old one gets an ``expires`` and stays listed.

        Returns ``(new, old)`` (old with its expiry). Audited as ``signing.rotate``
        (target: the new key id; ``previous``, ``expires``).
        """
        self.ensure(actor)
        with self._locked():
            entries = list(self._read_ring())
            now = self._clock()
            old = entries[-1]
            expired = RingEntry(
                PublicKey(
                    old.public.keyid,
                    old.public.key,
                    iso(now + ROTATION_GRACE),
                    old.public.keytype,
                    old.public.scheme,
                ),
                old.created,
                old.file,
            )
            new = self._new_entry(now)
            self._save_ring([*entries[:-1], expired, new])
        self._audit.safe_record_by(
            actor,
            "signing.rotate",
            new.public.keyid,
            previous=old.public.keyid,
            expires=expired.public.expires,
        )
        return new.public, expired.public


__all__ = ["RING", "ROTATION_GRACE", "RingEntry", "Signature", "SigningKeys", "iso"]
