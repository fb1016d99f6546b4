"""What each terminal command does: a translation into the r13core operation the CLI
and the admin API call, never a second implementation.

Every change goes through the audited operation with the session's
:class:`~r13core.audit.Actor` (``Identity.create_key``/``revoke_key``,
``AbuseControl.unblock``, ``ConfigChanges.patch`` for ``save``), which writes
exactly one audit event when it succeeds and none when it is refused. Reads
use the same views as the admin API (``MonitorView`` for metrics and alerts,
``Registry.search``/``packument`` for packages). Output is plain text lines:
r13core/terminal/interpreter.py dispatches, r13core/terminal/session.py sizes
it to the record's rows and cols.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NoReturn

from r13core.audit import Actor
from r13core.config import Config13, Feature, field_name
from r13core.errors import InvalidValue
from r13core.monitor.state import MonitorView
from r13core.names import PackageName
from r13core.services import Services
from r13core.terminal.staging import Staged, differences
from r13core.textforms import (
    add_key_options,
    describe_block,
    describe_key,
    describe_user,
    mode_name,
    parse_field_value,
    parse_permission,
    render_record,
    when,
)

# The figures `metrics` shows, in this order, when the sample has them.
METRIC_FIELDS = (
    "requests_per_s",
    "error_rate_percent",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "active_requests",
    "cpu_percent",
    "memory_percent",
    "memory_rss_bytes",
    "workers",
    "ws_connections",
    "ws_messages_per_s",
    "ws_heartbeat_ms",
    "publishes_per_s",
    "downloads_per_s",
    "cache_hit_rate",
    "packages",
    "versions",
    "requests_total",
    "config_generation",
)


class _Parser(argparse.ArgumentParser):
    """argparse for one command's options, raising instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidValue(f"{self.prog}: {message}")


def _need(args: Sequence[str], count: int, usage: str) -> None:
    if len(args) != count:
        raise InvalidValue(f"usage: {usage}")


class Commands:
    """The handlers, over one process's services, acting as ``actor``."""

    def __init__(self, services: Services, actor: Actor, staged: Staged) -> None:
        self.services = services
        self.actor = actor
        self.staged = staged

    @cached_property
    def monitor(self) -> MonitorView:
        return MonitorView(self.services.data_dir)

    def live(self) -> Config13:
        return self.services.config.read()

    # -- the record -----------------------------------------------------------------

    def status(self, mode: int) -> list[str]:
        live = self.live()
        lines = [
            f"session        {mode_name(mode)} mode, acting as {self.actor.name}",
            "record         " + " ".join(f"{b:02x}" for b in live.to_bytes()),
            "flags on       " + (", ".join(f.name or "" for f in Feature if live.has(f)) or "none"),
            f"terminal       {mode_name(live.terminal_mode)}, {live.rows} rows x {live.cols} cols",
        ]
        if not self.staged:
            return [*lines, "staged         nothing (set, enable, disable stage edits)"]
        lines.append("staged         " + "; ".join(self.staged.edits))
        changes = differences(live, self.staged.preview(live))
        lines += [f"  on save: {c}" for c in changes] or ["  on save: no change to the record"]
        lines.append("save applies them as one change; discard drops them")
        return lines

    def config_show(self) -> list[str]:
        lines = render_record(self.live()).splitlines()
        if self.staged:
            lines.append(f"({len(self.staged.edits)} staged edit(s) not saved: see status)")
        return lines

    def config_export(self, args: Sequence[str]) -> list[str]:
        raw = self.live().to_bytes()
        fmt = args[0] if args else "hex"
        if len(args) > 1 or fmt not in ("hex", "base64"):
            raise InvalidValue("usage: config export [hex|base64]")
        if fmt == "base64":
            import base64

            return [base64.b64encode(raw).decode()]
        return [raw.hex()]

    def stage_set(self, args: Sequence[str]) -> list[str]:
        _need(args, 2, "set FIELD VALUE")
        name = field_name(args[0])
        preview = self.staged.set_field(self.live(), name, parse_field_value(name, args[1]))
        return [f"staged: {self.staged.edits[-1]} (save applies it)", *self._pending(preview)]

    def stage_flag(self, args: Sequence[str], on: bool) -> list[str]:
        _need(args, 1, f"{'enable' if on else 'disable'} FLAG")
        preview = self.staged.set_feature(self.live(), Feature.parse(args[0]), on)
        return [f"staged: {self.staged.edits[-1]} (save applies it)", *self._pending(preview)]

    def _pending(self, preview: Config13) -> list[str]:
        changes = differences(self.live(), preview)
        return [f"  on save: {c}" for c in changes] or ["  on save: no change to the record"]

    def save(self) -> list[str]:
        if not self.staged:
            return ["nothing staged"]
        before = self.live()
        after = self.services.config_changes.patch(
            self.actor, bytes(self.staged.mask), bytes(self.staged.values)
        )
        count = len(self.staged.edits)
        self.staged.clear()
        changes = differences(before, after)
        if not changes:
            return [f"saved {count} edit(s): the record was already so (no change)"]
        return [f"saved {count} edit(s) as one change:", *(f"  {c}" for c in changes)]

    def discard(self) -> list[str]:
        count = len(self.staged.edits)
        self.staged.clear()
        return [f"discarded {count} staged edit(s)"]

    # -- keys, blocks, users --------------------------------------------------------

    def keys_list(self) -> list[str]:
        return [describe_key(k) for k in self.services.identity.keys.list()] or ["no keys"]

    def keys_create(self, args: Sequence[str]) -> list[str]:
        parser = _Parser(prog="keys create", add_help=False)
        parser.add_argument("id")
        parser.add_argument("permission")
        add_key_options(parser)
        ns = parser.parse_args(list(args))
        info, secret = self.services.identity.create_key(
            self.actor,
            ns.id,
            parse_permission(ns.permission),
            ns.expires,
            owner=ns.owner,
            rate_limit=ns.rate_limit,
            cidr=ns.cidr,
            packages=ns.packages,
        )
        return [describe_key(info), f"secret (shown once): {secret}"]

    def keys_revoke(self, args: Sequence[str]) -> list[str]:
        _need(args, 1, "keys revoke ID")
        self.services.identity.revoke_key(self.actor, args[0])
        return [f"revoked {args[0]}"]

    def blocks_list(self) -> list[str]:
        return [describe_block(b) for b in self.services.blocks.active()] or ["no blocks"]

    def blocks_unblock(self, args: Sequence[str]) -> list[str]:
        _need(args, 1, "blocks unblock IP")
        return [f"unblocked {self.services.abuse.unblock(self.actor, args[0])}"]

    def users(self) -> list[str]:
        return [describe_user(u) for u in self.services.identity.users.list()] or ["no users"]

    # -- the monitor ----------------------------------------------------------------

    def metrics(self) -> list[str]:
        sample = self.monitor.latest()
        if sample is None:
            on = self.live().has(Feature.METRICS)
            why = "the server's sampler has not taken one" if on else "METRICS is off"
            return [f"no sample yet ({why})"]
        lines = [f"sample {sample.get('seq')} at {when(sample.get('ts'))}"]
        for name in METRIC_FIELDS:
            if name in sample:
                lines.append(f"  {name:<20} {_figure(sample[name])}")
        return lines

    def alerts(self) -> list[str]:
        view = self.monitor.alerts()
        active = view["active"]
        lines = [f"{len(active)} active alert(s)"]
        for alert in active:
            lines.append(f"  ACTIVE  {_alert(alert)}")
        recent = [a for a in view["recent"] if a.get("state") != "active"][:10]
        if recent:
            lines.append("recently cleared:")
            lines += [f"  cleared {_alert(a)} until {when(a.get('ended'))}" for a in recent]
        return lines

    # -- packages -------------------------------------------------------------------

    def packages_list(self, args: Sequence[str]) -> list[str]:
        if args:
            raise InvalidValue("usage: packages list (packages search TEXT to filter)")
        return self._search("")

    def packages_search(self, args: Sequence[str]) -> list[str]:
        if not args:
            raise InvalidValue("usage: packages search TEXT")
        return self._search(" ".join(args))

    def _search(self, text: str) -> list[str]:
        found = self.services.registry.search(text, size=250)
        lines = []
        for obj in found["objects"]:
            pkg = obj["package"]
            lines.append(
                f"{pkg['name']:<32} {pkg.get('version', ''):<12} {pkg.get('description', '')}"
            )
        total = found["total"]
        if total > len(lines):
            lines.append(f"... {total - len(lines)} more (narrow with packages search TEXT)")
        return lines or ["no packages" if not text else f"no package matches {text!r}"]

    def packages_info(self, args: Sequence[str]) -> list[str]:
        _need(args, 1, "packages info NAME")
        doc: dict[str, Any] = json.loads(
            self.services.registry.packument(PackageName.parse(args[0]), abbreviated=False).body
        )
        tags = doc.get("dist-tags", {})
        versions = list(doc.get("versions", {}))
        maintainers = [m.get("name", "") for m in doc.get("maintainers", [])]
        times = doc.get("time", {})
        lines = [
            f"name         {doc.get('name')}",
            f"description  {doc.get('description', '')}",
            "dist-tags    " + ", ".join(f"{t}: {v}" for t, v in tags.items()),
            f"versions     {len(versions)}: " + ", ".join(versions[-10:]),
            "maintainers  " + ", ".join(maintainers),
            f"modified     {times.get('modified', '')}",
        ]
        return lines


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _alert(alert: dict[str, Any]) -> str:
    return (
        f"{alert.get('rule')}: {alert.get('metric')} {_figure(alert.get('value'))} > "
        f"{_figure(alert.get('threshold'))} (peak {_figure(alert.get('peak'))}) "
        f"since {when(alert.get('started'))}"
    )
