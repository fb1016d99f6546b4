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

import builtins
import enum
import hashlib
import ipaddress
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, NoReturn

from r13core.errors import InvalidValue, NameTaken, NotFound, Unauthorized
from r13core.patterns import parse_patterns
from r13core.storage.identity import IdentityStorage
from r13core.storage.identity import KeyRecord as KeyRecord  # for the web layer

PREFIX: Final = "r13_"
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LEN: Final = 40
_CHECK_LEN: Final = 6
_SECRET_RE: Final = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{_RANDOM_LEN + _CHECK_LEN}}}")
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_BAD_KEY: Final = "invalid, revoked or expired key"
MAX_DAYS: Final = 36500
KEY_PRINCIPAL: Final = "key:"
"""How a bare key is named wherever principals are compared or shown (``key:ci-publish``).

User names cannot hold ``:``, so no user can ever be named like a key."""
_CACHE_MAX: Final = 8192
MAX_BATCH: Final = 1000
"""Most keys :meth:`KeyStore.create_many` makes in one call."""
USAGE_FLUSH_SECONDS: Final = 5.0

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


MAX_CIDRS: Final = 64


def parse_cidrs(values: Iterable[object]) -> tuple[IPNetwork, ...]:
    """CIDR blocks (``10.0.0.0/8``, a bare address = one host); InvalidValue if malformed.

    The text must be exactly a block: no surrounding spaces or newlines (callers
    that read lists from the environment strip them first).
    """
    out = []
    for value in values:
        try:
            if not isinstance(value, str) or value != value.strip():
                raise ValueError(value)
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise InvalidValue(f"{value!r} is not a CIDR block") from None
        if len(out) > MAX_CIDRS:
            raise InvalidValue(f"more than {MAX_CIDRS} CIDR blocks")
    return tuple(out)


def capped_days(requested: float | None, limit_days: float | None) -> float | None:
    """A token's lifetime: ``requested`` days, at most ``limit_days`` (None: no limit).

    ``requested`` None means "the default", which is the limit itself.
    """
    if limit_days is None:
        return requested
    if requested is None:
        return limit_days
    return min(requested, limit_days)


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
    """The effective permission: the key's own, capped by its owner's role."""
    created: datetime
    expires: datetime | None
    revoked: bool
    owner: str | None = None
    rate_limit: int | None = None
    cidr: tuple[IPNetwork, ...] = ()
    packages: tuple[str, ...] = ()
    description: str = ""
    last_used: datetime | None = None
    use_count: int = 0

    @property
    def username(self) -> str:
        """Who acts with this key: its owner's user name, or ``key:<id>`` for a bare key.

        This is the principal's name everywhere names are compared or shown
        (maintainers, ``_npmUser``, rules, whoami, the audit log).
        """
        return self.owner if self.owner is not None else KEY_PRINCIPAL + self.id

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (times as ISO 8601; never the secret)."""
        return {
            "id": self.id,
            "permission": self.permission.name.lower(),
            "created": _iso(self.created),
            "expires": _iso(self.expires) if self.expires else None,
            "revoked": self.revoked,
            "owner": self.owner,
            "rateLimit": self.rate_limit,
            "cidr": [str(n) for n in self.cidr],
            "packages": list(self.packages),
            "description": self.description,
            "lastUsed": _iso(self.last_used) if self.last_used else None,
            "useCount": self.use_count,
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


_RANDOM_SPACE: Final = 62**_RANDOM_LEN


def new_secret() -> str:
    """A fresh secret: ``r13_`` + 40 random base62 characters + 6-character checksum.

    The 40 characters are one uniform draw below 62**40 written in base 62: the
    same distribution as 40 independent characters, from one call to the OS's
    random source instead of forty.
    """
    body = _base62(secrets.randbelow(_RANDOM_SPACE), _RANDOM_LEN)
    return PREFIX + body + _checksum(body)


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` has a key's shape and a correct checksum (what scanners check)."""
    if not _SECRET_RE.fullmatch(text):
        return False
    body = text[len(PREFIX) : -_CHECK_LEN]
    return secrets.compare_digest(_checksum(body), text[-_CHECK_LEN:])


def hash_secret(secret: str) -> str:
    """The stored form of a secret (sha256 hex; see the module docstring for why)."""
    return hashlib.sha256(secret.encode()).hexdigest()


_CEILINGS: Final = {
    "reader": Permission.READ,
    "publisher": Permission.WRITE,
    "admin": Permission.ADMIN,
}


def _info(record: KeyRecord) -> KeyInfo:
    permission = Permission(record.permission)
    if record.packages and permission > Permission.WRITE:
        # A key limited to packages never administers (create() refuses such keys;
        # this covers ones stored before it did).
        permission = Permission.WRITE
    revoked = record.revoked
    if record.owner is not None:
        # The owner's role is the ceiling; a key whose owner is gone is dead.
        ceiling = _CEILINGS.get(record.role or "")
        if ceiling is None:
            revoked = True
        elif ceiling < permission:
            permission = ceiling
    return KeyInfo(
        id=record.id,
        permission=permission,
        created=datetime.fromtimestamp(record.created, UTC),
        expires=datetime.fromtimestamp(record.expires, UTC) if record.expires else None,
        revoked=revoked,
        owner=record.owner,
        rate_limit=record.rate_limit,
        cidr=parse_cidrs(record.cidr),
        packages=record.packages,
        description=record.description,
        last_used=datetime.fromtimestamp(record.last_used, UTC) if record.last_used else None,
        use_count=record.use_count,
    )


def new_key_id(stem: str) -> str:
    """A fresh key id ``<stem>-<8 hex>`` (for tokens made by npm login and npm token)."""
    return f"{stem[:50]}-{secrets.token_hex(4)}"


class KeyStore:
    """Keys kept in an :class:`IdentityStorage`. ``clock`` returns POSIX seconds (tests pass one).

    :meth:`authenticate` is on every request's path, so it keeps an in-process
    cache of live keys by secret. The cache is checked against
    ``IdentityStorage.auth_version()`` (the storage's change signal,
    r13core/storage/signals.py, moved by every committed change to keys, users
    or blocks in any thread, worker or the CLI), so a revocation, rotation or
    role change made anywhere is seen by every worker on its next request;
    expiry is checked on every hit against the clock. Usage (count, last used) is
    counted in memory without a lock and written in one batch every few seconds:
    the count is approximate (two threads counting the same key at the same
    instant may lose one), the time is not.
    """

    def __init__(self, db: IdentityStorage, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._cache: dict[str, tuple[KeyInfo, float]] = {}
        self._epoch = 0
        self._seen = threading.local()
        self._usage: dict[str, list[float]] = {}
        self._usage_lock = threading.Lock()
        self._flushed = clock()

    def create(
        self,
        id: str,
        permission: Permission,
        expires_days: float | None,
        *,
        owner: str | None = None,
        rate_limit: int | None = None,
        cidr: Iterable[object] = (),
        packages: Iterable[object] = (),
        description: str = "",
    ) -> tuple[KeyInfo, str]:
        """Create a key; returns its info and the secret (shown this once, never stored).

        ``id`` is a label unique among keys and user names, ignoring case (1-64 of
        ``A-Za-z0-9._@-``); ``expires_days`` None means the key never expires.
        ``owner`` makes it a user's token (the user's role caps its permission);
        ``rate_limit`` is its own requests per window; ``cidr`` and ``packages``
        restrict where it may be used from and which packages it may touch (a
        key limited to packages cannot be an admin key). InvalidValue for a bad
        id, permission, expiry, limit, CIDR or pattern; NameTaken for an id that
        a key or a user has (or had).
        """
        record, secret = self._new_record(
            id,
            permission,
            expires_days,
            owner=owner,
            rate_limit=rate_limit,
            cidr=cidr,
            packages=packages,
            description=description,
        )
        if not self._db.add_key(record):
            self._name_taken(id)
        stored = self._db.get_key(id)
        return _info(stored if stored is not None else record), secret

    def create_many(
        self,
        ids: Sequence[str],
        permission: Permission,
        expires_days: float | None,
        *,
        owner: str | None = None,
        rate_limit: int | None = None,
        cidr: Iterable[object] = (),
        packages: Iterable[object] = (),
        description: str = "",
    ) -> builtins.list[tuple[KeyInfo, str]]:
        """Create one key per id, alike but for the id and secret, as ONE change.

        The keys are stored in one transaction (one commit, not one per key): all
        of them or, when an id is taken (or repeated), none, raising NameTaken.
        Options and errors as for :meth:`create`; at most :data:`MAX_BATCH` ids.
        Returns each key's info and secret in the order of ``ids``.
        """
        if isinstance(ids, str) or not 1 <= len(ids) <= MAX_BATCH:
            raise InvalidValue(f"give 1..{MAX_BATCH} key ids")
        cidr = cidr if isinstance(cidr, str) else tuple(cidr)
        packages = packages if isinstance(packages, str) else tuple(packages)
        made = [
            self._new_record(
                key_id,
                permission,
                expires_days,
                owner=owner,
                rate_limit=rate_limit,
                cidr=cidr,
                packages=packages,
                description=description,
            )
            for key_id in ids
        ]
        taken = self._db.add_keys([record for record, _ in made])
        if taken is not None:
            folded = [key_id.casefold() for key_id in ids]
            if folded.count(taken.casefold()) > 1:
                raise NameTaken(f"key id {taken!r} is given more than once")
            self._name_taken(taken)
        if owner is None:  # nothing stored differs from what was made
            return [(_info(record), secret) for record, secret in made]
        out = []
        for record, secret in made:
            stored = self._db.get_key(record.id)
            out.append((_info(stored if stored is not None else record), secret))
        return out

    def _name_taken(self, key_id: str) -> NoReturn:
        holder = self._db.name_holder(key_id)
        what = "a user" if holder == "user" else "a key"
        raise NameTaken(f"key id {key_id!r} is taken: {what} has (or had) that name")

    def _new_record(
        self,
        id: str,
        permission: Permission,
        expires_days: float | None,
        *,
        owner: str | None,
        rate_limit: int | None,
        cidr: Iterable[object],
        packages: Iterable[object],
        description: str,
    ) -> tuple[KeyRecord, str]:
        """A checked key record with a fresh secret (not stored); InvalidValue as create()."""
        if not isinstance(id, str) or not _ID_RE.fullmatch(id):
            raise InvalidValue(f"invalid key id {id!r}: 1-64 of letters, digits and ._@-")
        try:
            perm = Permission(permission)
        except ValueError:
            raise InvalidValue(f"invalid permission {permission!r}") from None
        now = self._clock()
        expires = None
        if expires_days is not None:
            if (
                not isinstance(expires_days, int | float)
                or isinstance(expires_days, bool)
                or not 0 < expires_days <= MAX_DAYS
            ):
                raise InvalidValue(f"expiry must be 0 < days <= {MAX_DAYS}, not {expires_days!r}")
            expires = now + float(expires_days) * 86400.0
        if rate_limit is not None and (
            not isinstance(rate_limit, int)
            or isinstance(rate_limit, bool)
            or not 1 <= rate_limit <= 2**31
        ):
            raise InvalidValue(f"rate limit must be a whole number >= 1, not {rate_limit!r}")
        networks = parse_cidrs(cidr)
        patterns = parse_patterns(packages)
        if patterns and perm > Permission.WRITE:
            raise InvalidValue(
                "a key limited to packages cannot have admin permission (admin is registry-wide)"
            )
        if not isinstance(description, str) or len(description) > 1024:
            raise InvalidValue("description must be a string of at most 1024 characters")
        secret = new_secret()
        record = KeyRecord(
            id,
            hash_secret(secret),
            int(perm),
            now,
            expires,
            False,
            owner=owner,
            rate_limit=rate_limit,
            cidr=tuple(str(n) for n in networks),
            packages=patterns,
            description=description,
        )
        return record, secret

    def create_token(
        self,
        owner: str,
        permission: Permission,
        expires_days: float | None,
        **options: object,
    ) -> tuple[KeyInfo, str]:
        """A key for user ``owner`` under a fresh id ``npm-<owner>-<8 hex>`` (npm logins, tokens).

        ``options`` as for :meth:`create`. A fresh id that happens to be taken (a user
        could sign up with such a name) is drawn again.
        """
        for _ in range(8):
            try:
                return self.create(
                    new_key_id(f"npm-{owner}"),
                    permission,
                    expires_days,
                    owner=owner,
                    **options,  # type: ignore[arg-type]
                )
            except NameTaken:
                continue
        raise NameTaken(f"could not find a free key id for {owner!r}")

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first (revoked and expired ones included)."""
        self.flush_usage()
        return [_info(r) for r in self._db.list_keys()]

    def owned_by(self, owner: str) -> builtins.list[KeyInfo]:
        """Every key of user ``owner``, oldest first."""
        self.flush_usage()
        return [_info(r) for r in self._db.keys_of(owner)]

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
        self._invalidate()

    def revoke_owned(self, owner: str, *, above: Permission | None = None) -> builtins.list[str]:
        """Revoke the live keys of user ``owner`` (only those with more than ``above``).

        Returns the ids revoked. Every worker sees it on its next request.
        """
        ids = self._db.revoke_keys_of(owner, above=None if above is None else int(above))
        self._invalidate()
        return ids

    def revoke_secret(self, secret: str) -> KeyInfo | None:
        """Revoke the key behind ``secret`` (npm logout); None when no key matches."""
        if not isinstance(secret, str) or not looks_like_secret(secret):
            return None
        record = self._db.key_by_hash(hash_secret(secret))
        if record is None:
            return None
        self._db.revoke_key(record.id)
        self._invalidate()
        return _info(replace(record, revoked=True))

    def rotate(self, id: str) -> tuple[KeyInfo, str]:
        """A new secret for key ``id`` (same settings); the old one stops working at once."""
        record = self._db.get_key(id)
        if record is None:
            raise NotFound(f"no key {id!r}")
        if record.revoked:
            raise InvalidValue(f"key {id!r} is revoked")
        secret = new_secret()
        updated = replace(record, secret_hash=hash_secret(secret))
        self._db.update_key(updated)
        self._invalidate()
        return _info(updated), secret

    def live(self) -> builtins.list[KeyInfo]:
        """Every key that works now: not revoked (nor its owner removed), not expired."""
        now = self._clock()
        return [
            k
            for k in (_info(r) for r in self._db.list_keys())
            if not k.revoked and (k.expires is None or k.expires.timestamp() > now)
        ]

    def _invalidate(self) -> None:
        self._epoch += 1
        self._cache.clear()

    def authenticate(self, secret: str, *, version: object = None) -> KeyInfo:
        """The live key behind ``secret``; Unauthorized (one message for all causes) if none.

        ``version``: ``IdentityStorage.auth_version()`` if the caller has just read it (the
        security middleware reads it once per request for keys and blocks alike).
        """
        if version is None:
            version = self._db.auth_version()
        seen = self._seen
        if getattr(seen, "version", None) != version:
            seen.version = version
            self._invalidate()
        hit = self._cache.get(secret)
        now = self._clock()
        if hit is not None:
            info, expires = hit
            if expires > now:
                self._count_use(info.id, now)
                return info
        if not isinstance(secret, str) or not looks_like_secret(secret):
            raise Unauthorized(_BAD_KEY)
        epoch = self._epoch
        record = self._db.key_by_hash(hash_secret(secret))
        if record is None or record.revoked:
            raise Unauthorized(_BAD_KEY)
        if record.expires is not None and record.expires <= now:
            raise Unauthorized(_BAD_KEY)
        info = _info(record)
        if info.revoked:  # the owner is gone
            raise Unauthorized(_BAD_KEY)
        # Only cache what was read after the last invalidation began (see class docstring).
        if epoch == self._epoch:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[secret] = (info, record.expires if record.expires is not None else 1e300)
        self._count_use(info.id, now)
        return info

    def _count_use(self, key_id: str, now: float) -> None:
        usage = self._usage.get(key_id)
        if usage is None:
            self._usage[key_id] = [1, now]
        else:
            usage[0] += 1
            usage[1] = now
        if now - self._flushed >= USAGE_FLUSH_SECONDS:
            self.flush_usage()

    def flush_usage(self) -> None:
        """Write the counted uses to storage (also done every few seconds by authenticate)."""
        if not self._usage_lock.acquire(blocking=False):
            return
        try:
            self._flushed = self._clock()
            usage, self._usage = self._usage, {}
            batch = [(key_id, int(n), at) for key_id, (n, at) in usage.items()]
            if batch:
                self._db.record_key_usage(batch)
        finally:
            self._usage_lock.release()
