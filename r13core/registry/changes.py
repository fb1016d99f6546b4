"""Every change to a package goes through :func:`change_package`.

A publish, a deprecation, an unpublish, an owner change and a dist-tag move are
all the same five steps inside one write transaction (SQLite ``BEGIN
IMMEDIATE``; the commit is the publish point):

1. read the package as the transaction sees it (NotFound, unless ``create``
   starts a new one);
2. ask ``check_owner`` with its maintainers as they are *now* — the app decided
   early, before the body arrived, and this is the decision that counts: a
   package someone else created, or an owner removed, while the request was on
   its way is not changed (Forbidden);
3. check the ``_rev`` the client sent, when it sent one (RevConflict);
4. apply the change to a :class:`Draft` of the document;
5. save it (with its search summary and a new ``modified``) if it changed;
6. queue the webhook deliveries the change makes (r13core/hooks/events.py), in
   the same transaction: a committed change always has them, a rolled-back one
   none (``sender`` names who acts; without it nothing is queued).

What happens after the commit — listeners, deleting unpublished tarballs, the
audit event — is the caller's (r13core/registry/service.py), and only once the
transaction has committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from r13core.hooks.events import Snapshot, derive, snapshot
from r13core.registry.documents import (
    check_rev,
    copy_top_fields,
    existing,
    latest_of,
    now,
    owner_names,
)
from r13core.registry.search import summarize
from r13core.storage.packages import JSONDict, PackageStorage, WriteTxn

T = TypeVar("T")

OwnerCheck = Callable[[list[str]], None]
"""Raises (Forbidden) unless the caller may change a package with these maintainers."""

UNCHECKED: Final = object()
"""``rev=UNCHECKED``: the client sent no ``_rev``; the change applies to whatever is current."""


@dataclass
class Draft:
    """A package being changed inside one write transaction.

    ``doc`` is the stored document (or the one ``create`` started: ``new``),
    mutable; ``now`` is this change's timestamp. A change function edits
    ``doc`` and calls :meth:`touch`, or uses :meth:`remove_versions` or
    :meth:`delete`; ``tx`` is there for the rows beside the document
    (tarballs, used versions).
    """

    tx: WriteTxn
    name: str
    doc: JSONDict
    now: str
    new: bool = False
    changed: bool = False
    deleted: bool = False
    removed: list[str] = field(default_factory=list)

    def touch(self) -> None:
        """Mark the document changed: it is saved with a new ``modified``."""
        self.changed = True

    def remove_versions(self, versions: Iterable[str]) -> None:
        """Unpublish ``versions`` (their numbers stay used); tags follow, ``latest`` moves.

        Tags pointing at a removed version go; ``latest`` moves to the highest
        remaining stable version (whose fields become the top-level ones).
        """
        doc = self.doc
        for v in versions:
            del doc["versions"][v]
            doc["time"].pop(v, None)
            doc.get("attestations", {}).pop(v, None)
            self.tx.remove_tarball(self.name, v)
            self.removed.append(v)
        tags = {t: v for t, v in doc["dist-tags"].items() if v in doc["versions"]}
        if "latest" not in tags:
            latest = latest_of(doc["versions"])
            if latest is not None:
                tags["latest"] = latest
        doc["dist-tags"] = tags
        latest_manifest = doc["versions"].get(tags.get("latest", ""))
        if latest_manifest is not None:
            copy_top_fields(doc, latest_manifest, None)
        self.changed = True

    def delete(self) -> None:
        """Remove the whole package (every version's number stays used)."""
        self.tx.delete_package(self.name)
        self.removed.extend(self.doc["versions"])
        self.deleted = True


@dataclass(frozen=True)
class Committed(Generic[T]):
    """What a committed change did.

    ``value`` is what the change function returned; ``rev`` the package's rev
    after the commit (None once it is gone, or when a new package was not
    written); ``removed`` the versions it unpublished.
    """

    name: str
    value: T
    rev: int | None
    removed: tuple[str, ...] = ()
    changed: bool = False


def change_package(
    storage: PackageStorage,
    name: str,
    apply: Callable[[Draft], T],
    *,
    rev: object = UNCHECKED,
    check_owner: OwnerCheck | None = None,
    create: Callable[[str], JSONDict] | None = None,
    sender: str | None = None,
    saved: Callable[[str, int, JSONDict], None] | None = None,
) -> Committed[T]:
    """Read, check, apply and write one package in one transaction (the module docstring).

    ``create(now)`` starts the document of a package that does not exist yet
    (a first publish); without it, an absent package is NotFound. Anything
    ``apply`` raises rolls the whole transaction back. ``sender``: who acts, as
    the webhooks' events name them (None: queue no event). ``saved(name, rev, doc)``
    is told the document once it has committed (r13core/registry/recent.py remembers it).
    """
    with storage.write() as tx:
        done, draft = change_in(
            tx, name, apply, rev=rev, check_owner=check_owner, create=create, sender=sender
        )
    if saved is not None and draft.changed and not draft.deleted and done.rev is not None:
        saved(name, done.rev, draft.doc)
    return done


def change_in(
    tx: WriteTxn,
    name: str,
    apply: Callable[[Draft], T],
    *,
    rev: object = UNCHECKED,
    check_owner: OwnerCheck | None = None,
    create: Callable[[str], JSONDict] | None = None,
    sender: str | None = None,
) -> tuple[Committed[T], Draft]:
    """:func:`change_package`'s steps inside a write transaction the caller holds (and
    commits); the change and its draft."""
    stamp = now()
    record = tx.package(name) if create is not None else existing(tx, name)
    if record is None:
        assert create is not None
        draft = Draft(tx, name, create(stamp), stamp, new=True)
        after: int | None = None
    else:
        if check_owner is not None:
            check_owner(owner_names(record.doc))
        if rev is not UNCHECKED:
            check_rev(record, rev)
        draft = Draft(tx, name, record.doc, stamp)
        after = record.rev
    # Only when some hook exists (one cheap read) is the state before kept.
    before = snapshot(None if draft.new else draft.doc) if sender and tx.any_hooks() else None
    value = apply(draft)
    if draft.deleted:
        after = None
    elif draft.changed:
        draft.doc["modified"] = stamp
        after = tx.save_package(name, draft.doc, summary=summarize(name, draft.doc))
    if before is not None and sender and (draft.deleted or draft.changed):
        _queue_hooks(tx, draft, before, sender)
    done = Committed(name, value, after, tuple(draft.removed), draft.changed or draft.deleted)
    return done, draft


def _queue_hooks(tx: WriteTxn, draft: Draft, before: Snapshot, sender: str) -> None:
    """Queue the change's webhook deliveries inside its transaction (step 6)."""
    after = None if draft.deleted else draft.doc
    events = derive(draft.name, before, after, sender=sender, time=draft.now, new=draft.new)
    if not events:
        return
    owners = sorted(set(before.maintainers) | set(snapshot(after).maintainers))
    hooks = tx.hooks_for(draft.name, owners)
    if hooks:
        now_ms = int(time.time() * 1000)
        tx.enqueue_hooks([(hook, event) for event in events for hook in hooks], now_ms)


__all__ = ["UNCHECKED", "Committed", "Draft", "OwnerCheck", "change_in", "change_package"]
