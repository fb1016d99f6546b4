"""The terminal's staged edits of the 13-byte record, applied as one change by ``save``.

``set FIELD VALUE``, ``enable FLAG`` and ``disable FLAG`` do not touch the live
record: each adds its bits to a patch (a 13-byte mask and 13 bytes of values).
``save`` hands the patch to :meth:`r13core.config_changes.ConfigChanges.patch`,
which applies every staged edit in ONE update of the shared record (one
generation, one broadcast, one ``config.change`` audit event): the bits the
admin edited take the staged values, every other bit keeps what is live at that
moment, so a flag another admin flipped meanwhile is not undone.

An edit is checked when it is staged: the live record with every staged edit
applied must be a valid record, or the edit is refused (and not staged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from r13core.config import FIELDS, RECORD_SIZE, Config13, Feature, apply_patch, field_name
from r13core.textforms import mode_name

Buffer = bytes | bytearray
_FLAGS_OFFSET = FIELDS["feature_flags"][0]

# The record table's names, for what `status` prints.
DISPLAY_NAMES = {
    "version": "version",
    "registry_hash": "registryHash",
    "feature_flags": "featureFlags",
    "terminal_mode": "terminalMode",
    "rows": "rows",
    "cols": "cols",
    "reserved": "reserved",
}


@dataclass
class Staged:
    """Edits waiting for ``save``: the patch and, for people, what was typed."""

    mask: bytearray = field(default_factory=lambda: bytearray(RECORD_SIZE))
    values: bytearray = field(default_factory=lambda: bytearray(RECORD_SIZE))
    edits: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.edits)

    def preview(self, live: Config13) -> Config13:
        """``live`` with every staged edit applied (what ``save`` would make it now)."""
        return Config13.from_bytes(apply_patch(live.to_bytes(), self.mask, self.values))

    def _stage(self, live: Config13, mask: Buffer, values: Buffer, edit: str) -> Config13:
        new_mask = bytearray(m | n for m, n in zip(self.mask, mask, strict=True))
        new_values = bytearray(apply_patch(self.values, mask, values))
        # Raises InvalidValue (nothing staged) when the result is not a record.
        result = Config13.from_bytes(apply_patch(live.to_bytes(), new_mask, new_values))
        self.mask, self.values = new_mask, new_values
        self.edits.append(edit)
        return result

    def set_field(self, live: Config13, name: str, value: int) -> Config13:
        """Stage field ``name`` (canonical) = ``value``; the preview after it."""
        canonical = field_name(name)
        live.with_field(canonical, value)  # the record's own range check and message
        offset, size, _limit = FIELDS[canonical]
        mask = bytearray(RECORD_SIZE)
        values = bytearray(RECORD_SIZE)
        mask[offset : offset + size] = b"\xff" * size
        values[offset : offset + size] = value.to_bytes(size, "little")
        return self._stage(live, mask, values, f"set {DISPLAY_NAMES[canonical]} {value}")

    def set_feature(self, live: Config13, flag: Feature, on: bool) -> Config13:
        """Stage ``flag`` on or off; the preview after it."""
        bits = int(flag).to_bytes(4, "little")
        mask = bytearray(RECORD_SIZE)
        values = bytearray(RECORD_SIZE)
        mask[_FLAGS_OFFSET : _FLAGS_OFFSET + 4] = bits
        if on:
            values[_FLAGS_OFFSET : _FLAGS_OFFSET + 4] = bits
        return self._stage(live, mask, values, f"{'enable' if on else 'disable'} {flag.name}")

    def clear(self) -> None:
        """Forget every staged edit."""
        self.mask = bytearray(RECORD_SIZE)
        self.values = bytearray(RECORD_SIZE)
        self.edits.clear()


def differences(old: Config13, new: Config13) -> list[str]:
    """What changes from ``old`` to ``new``, one line per field or flag (``DEBUG off -> on``)."""
    lines: list[str] = []
    for flag in Feature:
        if old.has(flag) != new.has(flag):
            lines.append(f"{flag.name} {_onoff(old.has(flag))} -> {_onoff(new.has(flag))}")
    if old.feature_flags & ~0xFF != new.feature_flags & ~0xFF:
        lines.append(
            f"reserved flag bits 0x{old.feature_flags & ~0xFF:08x} -> "
            f"0x{new.feature_flags & ~0xFF:08x}"
        )
    for name in ("version", "registry_hash", "terminal_mode", "rows", "cols", "reserved"):
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        if name == "terminal_mode":
            lines.append(
                f"terminalMode {before} ({mode_name(before)}) -> {after} ({mode_name(after)})"
            )
        elif name == "registry_hash":
            lines.append(f"registryHash 0x{before:08x} -> 0x{after:08x}")
        else:
            lines.append(f"{DISPLAY_NAMES[name]} {before} -> {after}")
    return lines


def _onoff(on: bool) -> str:
    return "on" if on else "off"
