"""Users: a name, a role and a password kept only as a memory-hard hash.

Passwords are hashed with the standard library's scrypt (RFC 7914; N=2**14,
r=8, p=1: 16 MiB and ~50 ms per check), which is memory-hard like argon2 and
needs no extra dependency. The stored form names its parameters, so they can
be raised later without breaking existing hashes.

A role is the ceiling of every key the user owns: a reader's token can only
read, a publisher's can write, an admin's can administer.

User names and key ids share one name space (ignoring case): a name a key has
or had can never become a user's, and a removed user's name is kept from
strangers (docs/identity.md, "Principals"). A new password revokes every token
of the user; a lower role revokes the tokens above the new ceiling.
"""

from __future__ import annotations

import base64
import builtins
import enum
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from r13core.errors import InvalidValue, NameTaken, NotFound, Unauthorized
from r13core.keys import Permission
from r13core.storage.identity import IdentityStorage
from r13core.storage.identity import UserRecord as UserRecord  # for the web layer
from r13core.storage.identity import WebLoginRecord as WebLoginRecord  # for the web layer

_N: Final = 2**14
_R: Final = 8
_P: Final = 1
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Deliberately loose (one @, a dot in the domain, no spaces or controls): npm sends
# what the user typed, and r13 only shows it back.
_EMAIL_RE: Final = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
MAX_EMAIL: Final = 254
_BAD_LOGIN: Final = "wrong user name or password"
MIN_PASSWORD: Final = 8
MAX_PASSWORD: Final = 1024


class Role(enum.Enum):
    """What a user is; each maps to the highest permission its keys can have."""

    READER = "reader"
    PUBLISHER = "publisher"
    ADMIN = "admin"

    @property
    def ceiling(self) -> Permission:
        """The highest permission a key of this user gets."""
        return _CEILING[self]

    @classmethod
    def parse(cls, text: str) -> Role:
        """``reader``, ``publisher`` or ``admin``; InvalidValue otherwise."""
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            raise InvalidValue(f"role must be reader, publisher or admin, not {text!r}") from None


_CEILING: Final = {
    Role.READER: Permission.READ,
    Role.PUBLISHER: Permission.WRITE,
    Role.ADMIN: Permission.ADMIN,
}


def ceiling_of(role: str | None) -> Permission | None:
    """The ceiling for a stored role string (None for an unknown role or a gone user)."""
    try:
        return _CEILING[Role(role)] if role is not None else None
    except ValueError:
        return None


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), a fresh salt each time."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# A hash checked when the user does not exist, so an unknown name costs the same time.
@functools.cache
def _dummy_hash() -> str:
    """A hash to check a password against when the user does not exist (same time as
    a real check). Made on first use: a scrypt at import would cost every process
    that imports this module (each worker's start) ~50 ms."""
    return hash_password(secrets.token_hex(8))


@dataclass(frozen=True)
class User:
    """A user as callers see it (never the password hash)."""

    name: str
    role: Role
    email: str
    created: float

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {
            "name": self.name,
            "role": self.role.value,
            "email": self.email,
            "created": self.created,
        }


def _user(record: UserRecord) -> User:
    return User(record.name, Role.parse(record.role), record.email, record.created)


def check_name(name: object) -> str:
    """A valid user name (npm's: lower case, 1-64 of ``a-z0-9._-``); InvalidValue otherwise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidValue(f"invalid user name {name!r}: 1-64 of a-z, 0-9 and ._-")
    return name


def check_email(email: object) -> str:
    """A plausible email address or ``""``; InvalidValue otherwise."""
    if email == "":
        return ""
    if not isinstance(email, str) or len(email) > MAX_EMAIL or not _EMAIL_RE.fullmatch(email):
        raise InvalidValue(f"invalid email {email!r}")
    return email


def _check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidValue(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


class UserStore:
    """Users kept in an :class:`IdentityStorage`."""

    def __init__(self, db: IdentityStorage, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def add(
        self, name: str, password: str, role: Role, email: str = "", *, reclaim: bool = False
    ) -> User:
        """Create a user; InvalidValue for a bad name, email or password, NameTaken for a
        name a user or key has (or had).

        ``reclaim``: an admin re-creates a removed user's name on purpose (the
        packages that still list that name as a maintainer become the new
        user's); never allowed for a key's name.
        """
        record = UserRecord(
            check_name(name),
            hash_password(_check_password(password)),
            role.value,
            check_email(email),
            self._clock(),
        )
        if not self._db.add_user(record, reclaim=reclaim):
            holder = self._db.name_holder(name)
            if holder == "key":
                raise NameTaken(f"user name {name!r} is taken: it is (or was) a key's id")
            if holder == "former user":
                raise NameTaken(
                    f"user name {name!r} belonged to a removed user; only an admin can give "
                    "it out again (r13 users add --reclaim)"
                )
            raise NameTaken(f"user {name!r} already exists")
        return _user(record)

    def get(self, name: str) -> User:
        """One user; NotFound if absent."""
        record = self._db.get_user(name)
        if record is None:
            raise NotFound(f"no user {name!r}")
        return _user(record)

    def list(self) -> list[User]:
        """Every user, by name."""
        return [_user(r) for r in self._db.list_users()]

    def exists(self, name: str) -> bool:
        """Whether a user of that name exists."""
        return self._db.get_user(name) is not None

    def authenticate(self, name: str, password: str) -> User:
        """The user if the password is right; Unauthorized (one message) otherwise."""
        record = self._db.get_user(name) if isinstance(name, str) else None
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            raise Unauthorized(_BAD_LOGIN)
        if record is None:
            verify_password(password, _dummy_hash())
            raise Unauthorized(_BAD_LOGIN)
        if not verify_password(password, record.password_hash):
            raise Unauthorized(_BAD_LOGIN)
        return _user(record)

    def set_password(self, name: str, password: str) -> builtins.list[str]:
        """Replace the password and revoke every token of the user (one transaction).

        A password change is what someone does who fears a leak: a token made
        with the old password must not outlive it. Returns the revoked key ids;
        NotFound if the user is absent.
        """
        record = self._require(name)
        updated = UserRecord(
            record.name,
            hash_password(_check_password(password)),
            record.role,
            record.email,
            record.created,
        )
        revoked = self._db.update_user_revoking(updated, above=0)
        if revoked is None:
            raise NotFound(f"no user {name!r}")
        return revoked

    def set_role(self, name: str, role: Role) -> tuple[User, builtins.list[str]]:
        """Change the role; tokens above the new ceiling are revoked (one transaction).

        The role caps every key of the user at its next use anyway; revoking the
        ones above a lower role keeps a later promotion from reviving them. Keys
        within the new ceiling keep working. Returns the user and the revoked key
        ids; NotFound if absent.
        """
        record = self._require(name)
        updated = UserRecord(
            record.name, record.password_hash, role.value, record.email, record.created
        )
        revoked = self._db.update_user_revoking(updated, above=int(role.ceiling))
        if revoked is None:
            raise NotFound(f"no user {name!r}")
        return _user(updated), revoked

    def remove(self, name: str) -> None:
        """Delete the user and revoke its keys; NotFound if absent.

        The name stays reserved: see :meth:`add` (``reclaim``).
        """
        if not self._db.remove_user(name):
            raise NotFound(f"no user {name!r}")

    def _require(self, name: str) -> UserRecord:
        record = self._db.get_user(name)
        if record is None:
            raise NotFound(f"no user {name!r}")
        return record
