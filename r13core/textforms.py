"""How records read as text, shared by the `r13` command line and the terminal.

One place for the text forms of the 13-byte record, keys, users and blocks, and
for parsing the values an admin types (a field's value, a key's permission), so
`r13 config show` and the terminal's `config show` print the same lines and
accept the same spellings (app/cli/*_cmd.py, r13core/terminal/).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from r13core.abuse import BlockRecord
from r13core.config import Config13, Feature, TerminalMode
from r13core.errors import InvalidValue
from r13core.keys import KeyInfo, Permission
from r13core.users import User


def render_record(cfg: Config13) -> str:
    """The record as `r13 config show` prints it: fields, flags by name, hex bytes."""
    raw = cfg.to_bytes()
    lines = [
        f"version        {cfg.version}",
        f"registryHash   0x{cfg.registry_hash:08x} ({cfg.registry_hash})",
        f"featureFlags   0x{cfg.feature_flags:08x}",
    ]
    for flag in Feature:
        lines.append(f"  {'on ' if cfg.has(flag) else 'off'} {flag.name}")
    extra = cfg.feature_flags & ~0xFF
    if extra:
        lines.append(f"  reserved bits 0x{extra:08x}")
    lines += [
        f"terminalMode   {cfg.terminal_mode} ({mode_name(cfg.terminal_mode)})",
        f"rows           {cfg.rows}",
        f"cols           {cfg.cols}",
        f"reserved       {cfg.reserved}",
        f"hex            {' '.join(f'{b:02x}' for b in raw)}",
    ]
    return "\n".join(lines)


def mode_name(mode: int) -> str:
    """``off``, ``line`` or ``raw``."""
    return TerminalMode(mode).name.lower()


def parse_field_value(name: str, text: str) -> int:
    """The integer an admin means for field ``name`` (canonical name): decimal, ``0x``
    hex, ``0o``/``0b``; terminalMode also by name (``off``, ``line``, ``raw``)."""
    if name == "terminal_mode" and not text.strip().lstrip("-").isdigit():
        try:
            return int(TerminalMode[text.strip().upper()])
        except KeyError:
            raise InvalidValue(f"terminalMode must be 0..2 or off/line/raw, not {text!r}") from None
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise InvalidValue(f"{name}: {text!r} is not a number") from None


def parse_permission(text: str) -> Permission:
    """``read``, ``write`` or ``admin`` (any case)."""
    try:
        return Permission[text.strip().upper()]
    except KeyError:
        known = ", ".join(p.name.lower() for p in Permission)
        raise InvalidValue(f"unknown permission {text!r} (known: {known})") from None


def describe_key(info: KeyInfo) -> str:
    """One line per key, as `r13 keys list` prints it (never the secret)."""
    d = info.as_dict()
    state = "revoked" if info.revoked else "active"
    expires = d["expires"] or "never"
    line = (
        f"{d['id']:<24} {d['permission']:<6} {state:<8} created {d['created']}  expires {expires}"
    )
    extras = [f"owner {info.owner}"] if info.owner else []
    if info.rate_limit:
        extras.append(f"limit {info.rate_limit}")
    if info.cidr:
        extras.append("cidr " + ",".join(str(n) for n in info.cidr))
    if info.packages:
        extras.append("packages " + ",".join(info.packages))
    return "  ".join([line, *extras])


def describe_user(user: User) -> str:
    """One line per user, as `r13 users list` prints it."""
    return f"{user.name:<24} {user.role.value:<10} {user.email}"


def when(at: float | None) -> str:
    """A UTC time to the second (``never`` for None)."""
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe_block(record: BlockRecord) -> str:
    """One line per block: the address or IPv6 prefix, until when, its kind, why."""
    return f"{record.ip:<43} until {when(record.expires):<22} {record.kind:<6} {record.reason}"


def add_key_options(parser: argparse.ArgumentParser) -> None:
    """The options of a new key after its id and permission (`r13 keys create`, the
    terminal's `keys create`): expiry, own rate limit, CIDR allow-list, package
    patterns, owner."""
    parser.add_argument(
        "--expires", type=float, default=None, metavar="DAYS", help="default: never"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="its own requests per SECURITY_RATE_LIMIT_WINDOW (default: the global)",
    )
    parser.add_argument(
        "--cidr",
        action="append",
        default=[],
        metavar="BLOCK",
        help="allowed client addresses, e.g. 10.0.0.0/8 (repeatable)",
    )
    parser.add_argument(
        "--packages",
        action="append",
        default=[],
        metavar="PATTERN",
        help="packages it may touch, e.g. '@mycompany/*' (repeatable)",
    )
    parser.add_argument("--owner", default=None, help="make it a token of this user")
