"""API keys: creation (the secret is shown once), authentication, revocation, expiry.

A secret is ``r13_`` + 40 base62 characters of randomness (~238 bits) + 6 base62
characters of CRC32 over them. The fixed prefix and the checksum let secret
scanners recognise a leaked key without asking r13, and let r13 turn away
typos without a database lookup.

Only ``sha256(secret)`` is stored. A slow password hash (argon2, scrypt) buys
nothing here: it defends low-entropy human passwords against guessing, while
these secrets are 238 random bits that no one can enumerate, and a fast hash
lets every request find its key with one indexed lookup.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from r13core.errors import InvalidValue, NotFound, Unauthorized
from r13core.storage.base import KeyRecord, Storage

PREFIX: Final = "r13_"
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LEN: Final = 40
_CHECK_LEN: Final = 6
_SECRET_RE: Final = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{_RANDOM_LEN + _CHECK_LEN}}}$")
_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_BAD_KEY: Final = "invalid, revoked or expired key"


class Permission(enum.IntEnum):
    """What a key may do; each level implies the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True)
class KeyInfo:
    """A key as callers see it (never its secret)."""

    id: str
    permission: Permission
    created: datetime
    expires: datetime | None
    revoked: bool

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (times as ISO 8601)."""
        return {
            "id": self.id,
            "permission": self.permission.name.lower(),
            "created": _iso(self.created),
            "expires": _iso(self.expires) if self.expires else None,
            "revoked": self.revoked,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def new_secret() -> str:
    """A fresh secret: ``r13_`` + 40 random base62 characters + 6-character checksum."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LEN))
    return PREFIX + body + _checksum(body)


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` has a key's shape and a correct checksum (what scanners check)."""
    if not _SECRET_RE.match(text):
        return False
    body = text[len(PREFIX) : -_CHECK_LEN]
    return secrets.compare_digest(_checksum(body), text[-_CHECK_LEN:])


def hash_secret(secret: str) -> str:
    """The stored form of a secret (sha256 hex; see the module docstring for why)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(
        id=record.id,
        permission=Permission(record.permission),
        created=datetime.fromtimestamp(record.created, UTC),
        expires=datetime.fromtimestamp(record.expires, UTC) if record.expires else None,
        revoked=record.revoked,
    )


class KeyStore:
    """Keys kept in a :class:`Storage`. ``clock`` returns POSIX seconds (tests pass one)."""

    def __init__(self, db: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def create(
        self, id: str, permission: Permission, expires_days: float | None
    ) -> tuple[KeyInfo, str]:
        """Create a key; returns its info and the secret (shown this once, never stored).

        ``id`` is a label unique among keys (1-64 of ``A-Za-z0-9._@-``);
        ``expires_days`` None means the key never expires. InvalidValue for a bad
        id, permission or expiry, or an id already taken.
        """
        if not isinstance(id, str) or not _ID_RE.match(id):
            raise InvalidValue(f"invalid key id {id!r}: 1-64 of letters, digits and ._@-")
        try:
            perm = Permission(permission)
        except ValueError:
            raise InvalidValue(f"invalid permission {permission!r}") from None
        now = self._clock()
        expires = None
        if expires_days is not None:
            if not isinstance(expires_days, int | float) or not 0 < expires_days <= 36500:
                raise InvalidValue(f"expiry must be 0 < days <= 36500, not {expires_days!r}")
            expires = now + float(expires_days) * 86400.0
        secret = new_secret()
        record = KeyRecord(id, hash_secret(secret), int(perm), now, expires, False)
        if not self._db.add_key(record):
            raise InvalidValue(f"a key with id {id!r} already exists")
        return _info(record), secret

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first (revoked and expired ones included)."""
        return [_info(r) for r in self._db.list_keys()]

    def get(self, id: str) -> KeyInfo:
        """One key by id; NotFound if unknown."""
        record = self._db.get_key(id)
        if record is None:
            raise NotFound(f"no key {id!r}")
        return _info(record)

    def revoke(self, id: str) -> None:
        """Revoke a key at once (every worker sees it on its next lookup); NotFound if unknown."""
        if not self._db.revoke_key(id):
            raise NotFound(f"no key {id!r}")

    def authenticate(self, secret: str) -> KeyInfo:
        """The live key behind ``secret``; Unauthorized (one message for all causes) if none."""
        if not isinstance(secret, str) or not looks_like_secret(secret):
            raise Unauthorized(_BAD_KEY)
        record = self._db.key_by_hash(hash_secret(secret))
        if record is None or record.revoked:
            raise Unauthorized(_BAD_KEY)
        if record.expires is not None and record.expires <= self._clock():
            raise Unauthorized(_BAD_KEY)
        return _info(record)
