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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from r13core.audit import Actor, AuditLog
from r13core.config import Config13, ConfigStore, Feature

log = logging.getLogger("r13.config")

TARGET: Final = "config.r13"


class ConfigChanges:
    """The audited changes of ``store``'s record, logged to ``audit``."""

    def __init__(self, store: ConfigStore, audit: AuditLog) -> None:
        self.store = store
        self.audit = audit
        self._announcers: list[Callable[[], None]] = []

    def on_applied(self, announce: Callable[[], None]) -> None:
        """Call ``announce()`` as soon as a change is in the shared record, before it is
        made durable and audited (an fsync and a database commit later): the live
        channel tells its clients then (r13core/services.py, app/main.py)."""
        self._announcers.append(announce)

    def _change(self, actor: Actor, apply: Callable[[], Config13]) -> Config13:
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
        return self._change(actor, lambda: self.store.set_field(name, value))

    def set_feature(self, actor: Actor, flag: Feature | int | str, on: bool) -> Config13:
        """Turn one feature bit (a Feature, its name, or a bit number 0..31) on or off."""
        return self._change(actor, lambda: self.store.set_feature(flag, on))

    def write_bytes(self, actor: Actor, offset: int, data: bytes) -> Config13:
        """Write ``data`` at ``offset`` (the live channel's config frame)."""
        return self._change(actor, lambda: self.store.write_bytes(offset, data))

    def patch(self, actor: Actor, mask: bytes, values: bytes) -> Config13:
        """Apply several edits as ONE change (the terminal's ``save``): the bits set in
        ``mask`` take their value from ``values``, the others stay as they are live.
        One ``config.change`` event, or none when nothing changed."""
        return self._change(actor, lambda: self.store.patch(mask, values))

    def replace(self, actor: Actor, record: Config13 | bytes) -> Config13:
        """Replace the whole record (`r13 config import`)."""
        return self._change(actor, lambda: self.store.replace(record))
