"""The storage contract every backend implements (tests/storage_contract.py checks it).

Two halves:

* :class:`Storage` keeps metadata: one JSON document per package (the
  registry's own shape, see :mod:`r13core.registry`) with a change counter
  ``rev``, the tarball rows that point into the blob store, the set of every
  version ever published (tombstones, so a version is never reused), cached
  packument renders, advisories and API keys. Writes to package state happen
  inside :meth:`Storage.write`, one exclusive transaction; its commit is the
  publish point.
* :class:`BlobStore` keeps tarball bytes, content-addressed by sha512.

``rev`` values come from one counter shared by all packages of a store and
only grow, so ``(name, rev)`` never names two different states, even when a
package is deleted and published again; caches keyed by it stay correct in
every process.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from r13core.storage.usage import UsageStorage

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class PackageRecord:
    """A package's stored document and the rev of the change that wrote it."""

    name: str
    rev: int
    doc: JSONDict


@dataclass(frozen=True)
class TarballRecord:
    """A published version's tarball: the blob's sha512 (hex) and size."""

    name: str
    version: str
    sha512: str
    size: int


@dataclass(frozen=True)
class RenderRecord:
    """Cached packument bytes for one package state.

    ``key`` says what else the bytes depend on (the public URL), so a render
    made for another URL is not served.
    """

    rev: int
    key: str
    body: bytes
    gzip: bytes
    etag: str


@dataclass(frozen=True)
class AdvisoryRecord:
    """A security advisory as an admin entered it (``data`` holds its fields)."""

    id: int
    package: str
    data: JSONDict


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
    (``2001:db8:1:2::/64``; see r13core/security.py ``client_key``). ``kind`` is
    ``"manual"`` (an admin's: refuses everything) or ``"auto"`` (made by strikes:
    requests with a valid key still pass).
    """

    ip: str
    reason: str
    created: float
    expires: float | None
    kind: str = "manual"


@dataclass(frozen=True)
class AuditRecord:
    """One audit event: who did what to which target, when and from where."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    ip: str
    detail: JSONDict


AUDIT_GENESIS: Final = "0" * 64
"""The ``prev_hash`` of the first event of a chain."""


def audit_hash(
    prev_hash: str,
    event_id: int,
    at: float,
    actor: str,
    action: str,
    target: str,
    ip: str,
    detail_text: str,
) -> str:
    """The hash that links an audit event into the chain (every backend computes this).

    sha256 over the previous event's hash and the event's canonical content: a
    JSON array of id, time, actor, action, target, address and the detail exactly
    as stored. Editing, removing or inserting an event breaks the link at that
    event or the one after it (docs/identity.md, "Tamper-evident audit log").
    """
    canonical = json.dumps(
        [event_id, float(at), actor, action, target, ip, detail_text],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditLink:
    """An audit event as stored, for checking the chain (``detail_text`` unparsed)."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    ip: str
    detail_text: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """What :attr:`hash` must be, given :attr:`prev_hash` and the content."""
        return audit_hash(
            self.prev_hash,
            self.id,
            self.at,
            self.actor,
            self.action,
            self.target,
            self.ip,
            self.detail_text,
        )


NameHolder = Literal["user", "former user", "key"]


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


class WriteTxn(abc.ABC):
    """The operations allowed inside :meth:`Storage.write` (one exclusive transaction)."""

    @abc.abstractmethod
    def package(self, name: str) -> PackageRecord | None:
        """The package as of this transaction, or None."""

    @abc.abstractmethod
    def save_package(self, name: str, doc: JSONDict, *, summary: JSONDict | None = None) -> int:
        """Insert or replace the package's document (and search summary); returns its new rev."""

    @abc.abstractmethod
    def delete_package(self, name: str) -> None:
        """Remove the package, its tarball rows and renders (tombstones stay)."""

    @abc.abstractmethod
    def used_version(self, name: str, version: str) -> str | None:
        """The sha512 of the first publish of ``name@version``, or None if never used."""

    @abc.abstractmethod
    def mark_used(self, name: str, version: str, sha512: str) -> None:
        """Record that ``name@version`` is taken, forever (no-op if already recorded)."""

    @abc.abstractmethod
    def add_tarball(self, record: TarballRecord) -> None:
        """Point ``name@version`` at a blob (replaces an existing row)."""

    @abc.abstractmethod
    def remove_tarball(self, name: str, version: str) -> None:
        """Forget ``name@version``'s tarball row (the blob stays until a sweep)."""


class Storage(UsageStorage, abc.ABC):
    """Metadata storage. Safe to use from several threads and (after fork) processes.

    Concerns with their own module come in as bases (:class:`UsageStorage`).
    """

    # -- package state ----------------------------------------------------

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[WriteTxn]:
        """An exclusive write transaction: committed on normal exit, rolled back on error."""

    @abc.abstractmethod
    def package(self, name: str) -> PackageRecord | None:
        """The committed package, or None."""

    @abc.abstractmethod
    def package_rev(self, name: str) -> int | None:
        """The package's current rev (a cheap lookup), or None if absent."""

    @abc.abstractmethod
    def packages(self) -> Iterator[PackageRecord]:
        """Every package, in name order."""

    @abc.abstractmethod
    def summaries(self) -> Iterator[tuple[str, JSONDict]]:
        """(name, search summary) of every package, by name; ``{}`` where none was saved."""

    @abc.abstractmethod
    def tarball(self, name: str, version: str) -> TarballRecord | None:
        """The tarball row of ``name@version``, or None."""

    @abc.abstractmethod
    def used_version(self, name: str, version: str) -> str | None:
        """The sha512 of the first publish of ``name@version``, or None if never used."""

    @abc.abstractmethod
    def blob_refs(self) -> set[str]:
        """The sha512 of every blob a tarball row refers to."""

    def blobs_in_use(self, hashes: Iterable[str]) -> set[str]:
        """Those of ``hashes`` that some tarball row refers to (backends may index it)."""
        return set(hashes) & self.blob_refs()

    @abc.abstractmethod
    def counts(self) -> tuple[int, int]:
        """(packages, published versions)."""

    # -- render cache -------------------------------------------------------

    @abc.abstractmethod
    def render(self, name: str, kind: str) -> RenderRecord | None:
        """The cached render of ``kind`` for ``name`` (any rev; the caller checks)."""

    @abc.abstractmethod
    def save_render(self, name: str, kind: str, record: RenderRecord) -> bool:
        """Cache a render; stored only if ``record.rev`` is still the package's rev."""

    # -- advisories ---------------------------------------------------------

    @abc.abstractmethod
    def add_advisory(self, package: str, data: JSONDict) -> int:
        """Store an advisory; returns its new id."""

    @abc.abstractmethod
    def advisories(self, packages: list[str] | None = None) -> list[AdvisoryRecord]:
        """Advisories for ``packages`` (all when None), by id."""

    @abc.abstractmethod
    def remove_advisory(self, advisory_id: int) -> bool:
        """Delete an advisory; False if there was none with that id."""

    # -- keys ---------------------------------------------------------------

    @abc.abstractmethod
    def add_key(self, record: KeyRecord) -> bool:
        """Store a key; False (nothing stored) if the id is taken.

        Taken means: by any key ever stored, or by a user name present or past,
        ignoring case. The check and the insert are one transaction, so two
        requests racing for one name cannot both win (nor can a user and a key).
        """

    @abc.abstractmethod
    def get_key(self, key_id: str) -> KeyRecord | None:
        """The key with this id, or None."""

    @abc.abstractmethod
    def key_by_hash(self, secret_hash: str) -> KeyRecord | None:
        """The key whose secret hashes to ``secret_hash``, or None."""

    @abc.abstractmethod
    def list_keys(self) -> list[KeyRecord]:
        """Every key, by creation time."""

    @abc.abstractmethod
    def revoke_key(self, key_id: str) -> bool:
        """Mark a key revoked; False if there is no such key."""

    @abc.abstractmethod
    def update_key(self, record: KeyRecord) -> bool:
        """Replace a key's row by id (secret hash, permission, limits...); False if absent."""

    @abc.abstractmethod
    def keys_of(self, owner: str) -> list[KeyRecord]:
        """Every key owned by user ``owner``, by creation time."""

    @abc.abstractmethod
    def revoke_keys_of(self, owner: str, *, above: int | None = None) -> list[str]:
        """Revoke the live keys of ``owner`` (with permission > ``above`` when given); their ids."""

    @abc.abstractmethod
    def record_key_usage(self, usage: list[tuple[str, int, float]]) -> None:
        """Add (key id, uses, last used) batches to the keys' counters."""

    def auth_version(self) -> object:
        """A cheap token that changes whenever keys, users or blocks may have changed.

        In-process caches of those compare it per request. The default (a new
        object every call) disables such caching for backends that cannot tell.
        """
        return object()

    # -- users ------------------------------------------------------------------

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

    # -- IP blocks --------------------------------------------------------------

    @abc.abstractmethod
    def add_block(self, record: BlockRecord) -> None:
        """Block a client (replacing an existing block of it), with its kind."""

    @abc.abstractmethod
    def remove_block(self, ip: str) -> bool:
        """Lift a block; False if the IP was not blocked."""

    @abc.abstractmethod
    def list_blocks(self) -> list[BlockRecord]:
        """Every stored block (expired ones included until purged), by IP."""

    # -- audit log (append-only) ------------------------------------------------

    @abc.abstractmethod
    def append_audit(
        self, at: float, actor: str, action: str, target: str, ip: str, detail: JSONDict
    ) -> int:
        """Append one event; returns its id. Events are never changed or removed.

        Each event is chained to the one before it (:func:`audit_hash`); ids follow
        each other with no gaps.
        """

    @abc.abstractmethod
    def audit_links(self, *, after: int = 0, limit: int = 1000) -> list[AuditLink]:
        """Events with id > ``after``, oldest first, at most ``limit``, as stored."""

    @abc.abstractmethod
    def audit_events(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Events newest first, with id < ``before`` when given, filtered, at most ``limit``."""

    # -- shared counters (security metrics) -------------------------------------

    @abc.abstractmethod
    def add_counters(self, deltas: list[tuple[str, str, int]]) -> None:
        """Add (kind, label, delta) to the shared counters."""

    @abc.abstractmethod
    def counters(self) -> list[tuple[str, str, int]]:
        """Every (kind, label, count)."""

    # -- web logins -------------------------------------------------------------

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

    # -- life ---------------------------------------------------------------

    def close(self) -> None:
        """Release connections held by this process (optional)."""


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: sha512 hex digest, size, and whether this put created it."""

    sha512: str
    size: int
    created: bool


class BlobStore(abc.ABC):
    """Content-addressed tarball bytes, named by their sha512 (lowercase hex)."""

    @abc.abstractmethod
    def put(self, data: bytes) -> BlobInfo:
        """Store ``data`` durably and verified; a second put of the same bytes is a no-op."""

    @abc.abstractmethod
    def path(self, sha512: str) -> Path | None:
        """A local file holding the blob (for sendfile), or None if absent."""

    @abc.abstractmethod
    def read(self, sha512: str) -> bytes | None:
        """The blob's bytes, or None if absent."""

    @abc.abstractmethod
    def delete(self, sha512: str) -> bool:
        """Remove a blob; False if it was absent."""

    @abc.abstractmethod
    def hashes(self) -> Iterator[str]:
        """Every stored blob's sha512."""

    @abc.abstractmethod
    def hold(self) -> AbstractContextManager[None]:
        """Shared hold: while any is held, no sweep or deletion removes a file.

        A publish holds it from before its :meth:`put` until after its commit, so
        a blob it reuses cannot vanish before the row that refers to it exists.
        """

    @abc.abstractmethod
    def sweeping(self) -> AbstractContextManager[None]:
        """Exclusive: waits until no :meth:`hold` is held; removals happen inside."""

    @abc.abstractmethod
    def orphans(self, known: set[str], *, min_age: float) -> list[Path]:
        """Stored files that are not a blob in ``known``, older than ``min_age`` s (a list only).

        Unreferenced blobs, temp files of puts that died, anything else found in the store.
        """

    @abc.abstractmethod
    def remove_orphans(self, paths: Iterable[Path], known: set[str], *, min_age: float) -> int:
        """Remove those of ``paths`` still unreferenced by ``known`` and older than ``min_age``.

        Called inside :meth:`sweeping` with ``known`` read after the lock was taken.
        Returns how many files went.
        """

    def prune(self) -> int:
        """Remove empty containers (directories), when no other process uses the store."""
        return 0

    def sweep_orphans(self, known: set[str], *, min_age: float = 3600.0) -> int:
        """Remove every orphan older than ``min_age`` s (see :meth:`orphans`); how many went.

        The age guard keeps a sweep from deleting the file of a publish that has
        written it but not yet committed when the caller's ``known`` is stale.
        """
        candidates = self.orphans(known, min_age=min_age)
        if not candidates:
            return 0
        with self.sweeping():
            return self.remove_orphans(candidates, known, min_age=min_age)
