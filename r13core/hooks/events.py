"""Which webhook events a package change makes, decided by comparing before and after.

Every package change goes through one helper (r13core/registry/changes.py); it
takes a :class:`Snapshot` of the document before the change function runs and,
after it, asks :func:`derive` for the events, which it queues in the same write
transaction. Comparing states rather than trusting each operation's own account
means a ``PUT /:pkg/-rev/:rev`` that unpublishes a version, deprecates another
and changes the owners at once produces all three kinds of event.

The events are those of the npm registry's hooks:

* ``package:publish`` — a new version (``version``); the tags the publish set
  are in ``change.dist-tags``;
* ``package:unpublish`` — one per removed version (``change.deleted`` when the
  whole package went);
* ``package:dist-tag`` / ``package:dist-tag-rm`` — a tag set or moved / removed,
  on its own (tags a publish or unpublish moved are part of that event);
* ``package:deprecate`` / ``package:undeprecate`` — a version's message set or
  changed / cleared;
* ``package:owner`` / ``package:owner-rm`` — a maintainer added / removed
  (``change.maintainer``), not for a package's first publish.

The body (without the ``id`` each delivery adds) is
``{event, name, type: "package", version, sender: {username}, payload, change,
time}``; ``payload`` is the relevant part of the packument: name, dist-tags,
maintainers, the times, and the version's own document when the event is
about a version (the whole packument of a package with many versions would
make each queued row large; docs/webhooks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r13core.storage.hooks import HookEvent

JSONDict = dict[str, Any]

EVENTS = (
    "package:publish",
    "package:unpublish",
    "package:dist-tag",
    "package:dist-tag-rm",
    "package:deprecate",
    "package:undeprecate",
    "package:owner",
    "package:owner-rm",
)


@dataclass(frozen=True)
class Snapshot:
    """What :func:`derive` compares: versions and their deprecations, tags, maintainers."""

    deprecated: dict[str, str | None]
    tags: dict[str, str]
    maintainers: tuple[str, ...]


def owner_names(doc: JSONDict) -> list[str]:
    """The maintainers' names of a stored document."""
    return [str(m.get("name", "")) for m in doc.get("maintainers") or [] if isinstance(m, dict)]


def snapshot(doc: JSONDict | None) -> Snapshot:
    """The parts of ``doc`` events are derived from (an empty one for a new package)."""
    if doc is None:
        return Snapshot({}, {}, ())
    versions = doc.get("versions") or {}
    return Snapshot(
        {v: (m.get("deprecated") if isinstance(m, dict) else None) for v, m in versions.items()},
        dict(doc.get("dist-tags") or {}),
        tuple(owner_names(doc)),
    )


def _payload(name: str, doc: JSONDict | None, version: str | None) -> JSONDict:
    if doc is None:
        return {"name": name, "deleted": True}
    times = doc.get("time") or {}
    payload: JSONDict = {
        "_id": name,
        "name": name,
        "dist-tags": dict(doc.get("dist-tags") or {}),
        "maintainers": list(doc.get("maintainers") or []),
        "time": {k: times[k] for k in ("created", "modified") if k in times},
    }
    for field in ("created", "modified"):
        if field in doc and field not in payload["time"]:
            payload["time"][field] = doc[field]
    if version is not None:
        manifest = (doc.get("versions") or {}).get(version)
        if manifest is not None:
            payload["versions"] = {version: manifest}
        if version in times:
            payload["time"][version] = times[version]
    return payload


def derive(
    name: str,
    before: Snapshot,
    after: JSONDict | None,
    *,
    sender: str,
    time: str,
    new: bool = False,
) -> list[HookEvent]:
    """The events that took ``name`` from ``before`` to ``after`` (None: deleted), in order.

    ``new``: the package did not exist before (its first maintainers are no event).
    """
    now = snapshot(after)
    events: list[HookEvent] = []

    def emit(event: str, version: str | None, change: JSONDict) -> None:
        body = {
            "event": event,
            "name": name,
            "type": "package",
            "version": version,
            "sender": {"username": sender},
            "payload": _payload(name, after, version),
            "change": change,
            "time": time,
        }
        events.append(HookEvent(name, event, body))

    added = [v for v in now.deprecated if v not in before.deprecated]
    removed = [v for v in before.deprecated if v not in now.deprecated]
    tag_changes = {t: v for t, v in now.tags.items() if before.tags.get(t) != v}
    tags_gone = [t for t in before.tags if t not in now.tags]
    for version in added:
        tags = {t: v for t, v in tag_changes.items() if v == version}
        emit("package:publish", version, {"version": version, "dist-tags": tags})
    for version in removed:
        emit(
            "package:unpublish",
            version,
            {"version": version, "deleted": after is None, "dist-tags": now.tags},
        )
    if not added and not removed:
        for tag, version in tag_changes.items():
            emit("package:dist-tag", version, {"dist-tag": tag, "version": version})
        for tag in tags_gone:
            emit("package:dist-tag-rm", before.tags[tag], {"dist-tag": tag})
    for version, message in now.deprecated.items():
        if version not in before.deprecated or before.deprecated[version] == message:
            continue
        if message:
            emit("package:deprecate", version, {"version": version, "deprecated": message})
        else:
            emit("package:undeprecate", version, {"version": version})
    if not new and after is not None:
        for owner in now.maintainers:
            if owner not in before.maintainers:
                emit("package:owner", None, {"maintainer": owner})
        for owner in before.maintainers:
            if owner not in now.maintainers:
                emit("package:owner-rm", None, {"maintainer": owner})
    return events


__all__ = ["EVENTS", "Snapshot", "derive", "owner_names", "snapshot"]
