"""`r13 config show|set|enable|disable|export|import` on a data dir.

Changes go through r13core/config_changes.py, which audits each one that changes the
record (``config.change``, old -> new bytes).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from pathlib import Path

from app.cli import services
from r13core.config import RECORD_SIZE, Config13, ConfigStore, Feature, field_name
from r13core.config_changes import ConfigChanges
from r13core.errors import InvalidValue
from r13core.textforms import parse_field_value, render_record


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="show or change the 13-byte record")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("show", help="fields, flags by name and hex bytes").set_defaults(
        handler=show
    )
    s = actions.add_parser("set", help="set FIELD to VALUE")
    s.add_argument("field")
    s.add_argument("value")
    s.set_defaults(handler=set_field)
    for name, on in (("enable", True), ("disable", False)):
        e = actions.add_parser(name, help=f"{name} a feature flag")
        e.add_argument("flag")
        e.set_defaults(handler=toggle, on=on)
    x = actions.add_parser("export", help="print the record")
    x.add_argument("--format", choices=("hex", "base64", "bin"), default="hex")
    x.set_defaults(handler=export)
    i = actions.add_parser(
        "import", help="replace the record from FILE (hex, base64 or 13 raw bytes; - = stdin)"
    )
    i.add_argument("file")
    i.set_defaults(handler=import_)


def _open(args: argparse.Namespace) -> ConfigStore:
    return services.of(args).config


render = render_record
"""The record as `r13 config show` prints it (r13core/textforms.py)."""


def show(args: argparse.Namespace) -> int:
    store = _open(args)
    print(render(store.read()))
    return 0


def _changes(args: argparse.Namespace) -> ConfigChanges:
    return services.of(args).config_changes


def set_field(args: argparse.Namespace) -> int:
    name = field_name(args.field)
    value = parse_field_value(name, args.value)
    store = _open(args)
    _changes(args).set_field(services.ACTOR, name, value)
    print(render(store.read()))
    return 0


def toggle(args: argparse.Namespace) -> int:
    flag = Feature.parse(args.flag)
    _changes(args).set_feature(services.ACTOR, flag, args.on)
    print(f"{flag.name} {'enabled' if args.on else 'disabled'}")
    return 0


def export(args: argparse.Namespace) -> int:
    store = _open(args)
    raw = store.read_bytes()
    if args.format == "bin":
        sys.stdout.buffer.write(raw)
    elif args.format == "base64":
        print(base64.b64encode(raw).decode())
    else:
        print(raw.hex())
    return 0


def decode_import(blob: bytes) -> bytes:
    """13 raw bytes, or their hex or base64 text."""
    if len(blob) == RECORD_SIZE:
        return blob
    text = blob.decode("ascii", "replace").strip().replace(" ", "")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if len(raw) != RECORD_SIZE:
        raise InvalidValue(f"import needs a {RECORD_SIZE}-byte record (raw, hex or base64)")
    return raw


def import_(args: argparse.Namespace) -> int:
    blob = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    record = Config13.from_bytes(decode_import(blob))
    store = _open(args)
    _changes(args).replace(services.ACTOR, record)
    print(render(store.read()))
    return 0
