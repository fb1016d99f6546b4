"""The identity concern of storage: keys, users, their one name space, web logins, IP blocks.

Only hashes of secrets are kept (r13core/keys.py, r13core/users.py). Users and
keys share one name space, ignoring case, for ever: a name once held by a key
or a user is never given to someone else (docs/identity.md). Every committed
change to keys, users or blocks bumps the storage's change signal
(:attr:`IdentityStorage.auth_changes`, r13core/storage/signals.py), so every
worker's cache of them sees it on its next lookup.
tests/storage_contracts/identity.py is the contract.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from r13core.storage.signals import ChangeSignal


@dataclass(frozen=True)
class KeyRecord:
    """An API key as stored: only the hash of its secret is kept.

    Times are POSIX seconds; ``expires`` None means never.
    """

    id: str
    secret_hash: str
    permission: int
    created: float
    expires: float | None
    revoked: bool
    # Who owns it (a user name, or None for a bare key; docs/identity.md), its own rate
    # limit (requests per window, None = the default), CIDR allow-list, package
    # patterns, a free-text description, and usage (flushed in batches).
    owner: str | None = None
    rate_limit: int | None = None
    cidr: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    description: str = ""
    last_used: float | None = None
    use_count: int = 0
    role: str | None = None
    """The owner's role when read with the key (None: no owner, or the owner is gone)."""


@dataclass(frozen=True)
class UserRecord:
    """A user: the password is kept only as a memory-hard hash (see r13core/users.py)."""

    name: str
    password_hash: str
    role: str
    email: str
    created: float


@dataclass(frozen=True)
class BlockRecord:
    """A client refused until ``expires`` (POSIX seconds; None = until unblocked).

    ``ip`` is the client as limits count it: an IPv4 address, or an IPv6 prefix
    (``2001:db8:1:2::/64``; see r13core/abuse.py ``client_key``). ``kind`` is
    ``"manual"`` (an admin's: refuses everything) or ``"auto"`` (made by strikes:
    requests with a valid key still pass).
    """

    ip: str
    reason: str
    created: float
    expires: float | None
    kind: str = "manual"


@dataclass(frozen=True)
class WebLoginRecord:
    """A pending ``npm login --auth-type=web``: approved once ``username`` is set.

    No token is kept here: it is made when npm collects it, so an approval that is
    never collected leaves nothing behind once the login expires.
    """

    id: str
    done_hash: str
    created: float
    expires: float
    username: str | None = None


NameHolder = Literal["user", "former user", "key"]


class IdentityStorage(Protocol):
    """Keys, users, names, web logins and blocks. Safe across threads and (after fork) processes."""

    auth_changes: ChangeSignal | None = None
    """Bumped after every committed change to keys, users or blocks (None: cannot tell)."""

    def auth_version(self) -> object:
        """A cheap token that changes whenever keys, users or blocks may have changed.

        In-process caches of those compare it per request. Without a change
        signal it is a new object every call, which disables such caching.
        (Changes made behind the backend's back, e.g. with the sqlite3 shell,
        are not seen until the next change made through r13 or a restart.)
        """
        changes = self.auth_changes
        return object() if changes is None else changes.version()

    # -- keys ---------------------------------------------------------------

    @abc.abstractmethod
    def add_key(self, record: KeyRecord) -> bool:
        """Store a key; False (nothing stored) if the id is taken.

        Taken means: by any key ever stored, or by a user name present or past,
        ignoring case. The check and the insert are one transaction, so two
        requests racing for one name cannot both win (nor can a user and a key).
        """

    def add_keys(self, records: Sequence[KeyRecord]) -> str | None:
        """Store several keys as one change: all of them, or none and the first taken id.

        "Taken" as for :meth:`add_key`, and also an id that appears twice in
        ``records`` (ignoring case). A backend stores them in one transaction (one
        commit for the batch: SQLite's is r13core/storage/sqlite/identity.py); this
        default, for a backend that has not, checks every name first and then adds
        the keys one by one, so a name claimed in between leaves the batch partly
        stored and returns that id.
        """
        seen: set[str] = set()
        for record in records:
            folded = record.id.casefold()
            if folded in seen or self.name_holder(record.id) is not None:
                return record.id
            seen.add(folded)
        for record in records:
            if not self.add_key(record):
                return record.id
        return None

    @abc.abstractmethod
    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key with this id, or None."""

    @abc.abstractmethod
    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The key whose secret hashes to ``secret_hash``, or None."""

    @abc.abstractmethod
    def list_keys(self) -> list[KeyRecord]:
        """Every key, by creation time (then id)."""

    def keys_of(self, owner: str) -> list[KeyRecord]:
        """Every key owned by user ``owner``, by creation time (backends may index it)."""
        return [key for key in self.list_keys() if key.owner == owner]

    @abc.abstractmethod
    def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked; False if there is no such key."""

    @abc.abstractmethod
    def update_key(self, record: KeyRecord) -> bool:
        """Replace a key's row by id (secret hash, permission, limits...); False if absent."""

    @abc.abstractmethod
    def revoke_keys_of(self, owner: str, *, above: int | None = None) -> list[str]:
        """Revoke the live keys of ``owner`` (with permission > ``above`` when given); their ids."""

    @abc.abstractmethod
    def record_key_usage(self, usage: list[tuple[str, int, float]]) -> None:
        """Add (key id, uses, last used) batches to the keys' counters."""

    # -- users --------------------------------------------------------------

    @abc.abstractmethod
    def add_user(self, record: UserRecord, *, reclaim: bool = False) -> bool:
        """Store a user; False if the name is taken (see :meth:`name_holder`).

        Taken means: by a user, by any key id ever stored, or by a removed user
        (unless ``reclaim``: an admin re-creating a removed user on purpose),
        ignoring case; checked and inserted in one transaction.
        """

    @abc.abstractmethod
    def name_holder(self, name: str) -> NameHolder | None:
        """Who has (or had) ``name``, ignoring case: a user, a removed user, a key; or None."""

    @abc.abstractmethod
    def get_user(self, name: str) -> UserRecord | None:
        """The user, or None."""

    @abc.abstractmethod
    def list_users(self) -> list[UserRecord]:
        """Every user, by name."""

    @abc.abstractmethod
    def update_user(self, record: UserRecord) -> bool:
        """Replace a user's password hash, role and email; False if absent."""

    @abc.abstractmethod
    def update_user_revoking(self, record: UserRecord, *, above: int) -> list[str] | None:
        """:meth:`update_user` and :meth:`revoke_keys_of` (``above``) in one transaction.

        The revoked key ids; None (nothing changed) if the user is absent.
        """

    @abc.abstractmethod
    def remove_user(self, name: str) -> bool:
        """Delete a user and revoke every key it owns (one transaction); False if absent."""

    # -- web logins ---------------------------------------------------------

    @abc.abstractmethod
    def add_web_login(self, record: WebLoginRecord) -> None:
        """Store a pending web login (and drop expired ones)."""

    @abc.abstractmethod
    def get_web_login(self, login_id: str) -> WebLoginRecord | None:
        """The pending web login, or None."""

    @abc.abstractmethod
    def approve_web_login(self, login_id: str, username: str) -> bool:
        """Mark the login approved by ``username``; False if absent or approved already."""

    @abc.abstractmethod
    def take_web_login(self, login_id: str, now: float) -> WebLoginRecord | None:
        """Remove and return an approved login that has not expired at ``now``, or None.

        Only one caller can take it, so one approval gives one token.
        """

    # -- IP blocks ----------------------------------------------------------

    @abc.abstractmethod
    def add_block(self, record: BlockRecord) -> None:
        """Block a client (replacing an existing block of it), with its kind."""

    @abc.abstractmethod
    def remove_block(self, ip: str) -> bool:
        """Lift a block; False if the IP was not blocked."""

    @abc.abstractmethod
    def list_blocks(self) -> list[BlockRecord]:
        """Every stored block (expired ones included until purged), by IP."""
