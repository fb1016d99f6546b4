"""Changing the 13-byte record, audited: set a field, toggle a flag, write bytes, replace it.

Every way to change the live record (`r13 config`, the terminal's ``save``, the live
channel's 0x01/0x02 frames) goes through :class:`ConfigChanges`: the change is applied
to the shared record (every worker sees it on its next read), made durable (fsync), and
then — when the record really changed — one ``config.change`` event is appended with
the old and new bytes in hex (target ``config.r13``). A change that leaves the record
as it was writes no event.

"Old" is the record as this process read it just before its change: if another process
changes the record at the same instant, that change is inside this event's old/new
pair (the log stays truthful about the bytes before and after, not about whose write
made each bit). The record itself and its C core are in r13core/config.py.

On a node of a cluster (PostgreSQL, docs/cluster.md) ``shared`` is the record's row in
the database (r13core/cluster/record.py): each change is then the same edit applied
to the row inside one transaction — the database orders concurrent changes from every
node, and "old" is the row's bytes before this change — and the result is written into
this node's record after the commit; the other nodes apply it from the NOTIFY.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

from r13core.audit import Actor, AuditLog
from r13core.config import (
    FIELDS,
    RECORD_SIZE,
    Config13,
    ConfigStore,
    Feature,
    apply_patch,
    feature_bit,
    field_name,
)
from r13core.errors import InvalidValue

log = logging.getLogger("r13.config")

TARGET: Final = "config.r13"


Edit = Callable[[bytes], bytes]
"""A change as a pure function of the record's bytes (validated by its caller)."""


class SharedRecord(Protocol):
    """Where a cluster keeps the record of truth (r13core/cluster/record.py)."""

    def change(self, edit: Edit) -> tuple[bytes, bytes]:
        """Apply ``edit`` to the shared record and to this node's; (old, new)."""
        ...


def _field_edit(name: str, value: int) -> Edit:
    key = field_name(name)
    offset, size, limit = FIELDS[key]
    if type(value) is not int or not 0 <= value <= limit:
        raise InvalidValue(f"{key} must be an integer in 0..{limit}, not {value!r}")
    return _bytes_edit(offset, value.to_bytes(size, "little"))


def _feature_edit(flag: Feature | int | str, on: bool) -> Edit:
    mask = 1 << feature_bit(flag)

    def edit(raw: bytes) -> bytes:
        flags = int.from_bytes(raw[5:9], "little")
        flags = flags | mask if on else flags & ~mask
        return raw[:5] + flags.to_bytes(4, "little") + raw[9:]

    return edit


def _bytes_edit(offset: int, data: bytes) -> Edit:
    data = bytes(data)
    if not data or offset < 0 or offset + len(data) > RECORD_SIZE:
        raise InvalidValue(
            f"write of {len(data)} byte(s) at offset {offset} does not fit the "
            f"{RECORD_SIZE}-byte record"
        )
    return lambda raw: raw[:offset] + data + raw[offset + len(data) :]


def _patch_edit(mask: bytes, values: bytes) -> Edit:
    apply_patch(bytes(RECORD_SIZE), mask, values)  # checks the sizes now
    return lambda raw: apply_patch(raw, mask, values)


def _replace_edit(record: Config13 | bytes) -> Edit:
    data = record.to_bytes() if isinstance(record, Config13) else bytes(record)
    if len(data) != RECORD_SIZE:
        raise InvalidValue(f"a record is {RECORD_SIZE} bytes, not {len(data)}")
    return lambda raw: data


class ConfigChanges:
    """The audited changes of ``store``'s record, logged to ``audit`` (through ``shared``
    first on a node of a cluster)."""

    def __init__(
        self, store: ConfigStore, audit: AuditLog, *, shared: SharedRecord | None = None
    ) -> None:
        self.store = store
        self.audit = audit
        self.shared = shared
        self._announcers: list[Callable[[], None]] = []

    def on_applied(self, announce: Callable[[], None]) -> None:
        """Call ``announce()`` as soon as a change is in the shared record, before it is
        made durable and audited (an fsync and a database commit later): the live
        channel tells its clients then (r13core/services.py, app/main.py)."""
        self._announcers.append(announce)

    def _change(
        self, actor: Actor, apply: Callable[[], Config13], edit: Callable[[], Edit]
    ) -> Config13:
        if self.shared is not None:
            old, raw_new = self.shared.change(edit())
            new = Config13.from_bytes(raw_new)
        else:
            old = self.store.read_bytes()
            new = apply()
        if new.to_bytes() != old:
            for announce in self._announcers:
                try:
                    announce()
                except Exception:  # the change stands; the hubs still see it on their tick
                    log.exception("could not announce a record change")
        self.store.save()
        raw = new.to_bytes()
        if raw != old:
            self.audit.safe_record_by(actor, "config.change", TARGET, old=old.hex(), new=raw.hex())
        return new

    def set_field(self, actor: Actor, name: str, value: int) -> Config13:
        """Set field ``name`` (any spelling: ``terminalMode``, ``terminal_mode``) to ``value``."""
        return self._change(
            actor, lambda: self.store.set_field(name, value), lambda: _field_edit(name, value)
        )

    def set_feature(self, actor: Actor, flag: Feature | int | str, on: bool) -> Config13:
        """Turn one feature bit (a Feature, its name, or a bit number 0..31) on or off."""
        return self._change(
            actor, lambda: self.store.set_feature(flag, on), lambda: _feature_edit(flag, on)
        )

    def write_bytes(self, actor: Actor, offset: int, data: bytes) -> Config13:
        """Write ``data`` at ``offset`` (the live channel's config frame)."""
        return self._change(
            actor, lambda: self.store.write_bytes(offset, data), lambda: _bytes_edit(offset, data)
        )

    def patch(self, actor: Actor, mask: bytes, values: bytes) -> Config13:
        """Apply several edits as ONE change (the terminal's ``save``): the bits set in
        ``mask`` take their value from ``values``, the others stay as they are live.
        One ``config.change`` event, or none when nothing changed."""
        return self._change(
            actor, lambda: self.store.patch(mask, values), lambda: _patch_edit(mask, values)
        )

    def replace(self, actor: Actor, record: Config13 | bytes) -> Config13:
        """Replace the whole record (`r13 config import`)."""
        return self._change(
            actor, lambda: self.store.replace(record), lambda: _replace_edit(record)
        )
