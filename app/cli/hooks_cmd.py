"""`r13 hooks add | ls | rm | log | ping` on a data dir: webhooks (docs/webhooks.md).

Each change is one audited call into r13core/hooks/service.py, acting as ``cli``.
The running server's delivery worker sends what is queued (a ping too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from app.cli import services
from r13core.hooks import HOOK_TYPES, attempt_json, delivery_json, hook_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("hooks", help="webhooks: add, ls, rm, log, ping")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("add", help="add a hook on a package, a scope or an owner's packages")
    a.add_argument("type", choices=HOOK_TYPES, help="what the hook watches")
    a.add_argument("name", help="the package, the @scope, or the owner's user/key name")
    a.add_argument("endpoint", help="http:// or https:// URL the events are POSTed to")
    a.add_argument(
        "--secret",
        required=True,
        help="signs each body (x-npm-signature); '-' reads it from stdin",
    )
    a.add_argument("--owner", default=None, help="who manages the hook (default: cli)")
    a.set_defaults(handler=add)
    ls = actions.add_parser("ls", help="list hooks (every one, or an owner's)")
    ls.add_argument("--owner", default=None)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=list_hooks)
    rm = actions.add_parser("rm", help="remove a hook, its queue and its log")
    rm.add_argument("id")
    rm.set_defaults(handler=remove)
    log = actions.add_parser("log", help="a hook's deliveries and attempts, newest first")
    log.add_argument("id")
    log.add_argument("--limit", type=int, default=20)
    log.add_argument("--json", action="store_true", help="print JSON")
    log.set_defaults(handler=show_log)
    ping = actions.add_parser("ping", help="queue a test delivery (hook:ping)")
    ping.add_argument("id")
    ping.set_defaults(handler=ping_hook)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def add(args: argparse.Namespace) -> int:
    opened = services.of(args)
    secret = sys.stdin.readline().rstrip("\n") if args.secret == "-" else args.secret
    hook = opened.hooks.add(
        services.ACTOR,
        owner=args.owner or services.ACTOR.name,
        kind=args.type,
        name=args.name,
        endpoint=args.endpoint,
        secret=secret,
    )
    print(hook.id)
    return 0


def list_hooks(args: argparse.Namespace) -> int:
    hooks = services.of(args).hooks.find(owner=args.owner)
    if args.json:
        print(json.dumps([hook_json(h) for h in hooks], indent=2))
        return 0
    for h in hooks:
        last = "-" if h.last_status is None and h.last_error is None else (
            str(h.last_status) if h.last_status is not None else "error"
        )  # fmt: skip
        print(f"{h.id}  {h.owner:<12} {h.type:<7} {h.name:<30} {last:<5} {h.endpoint}")
    return 0


def remove(args: argparse.Namespace) -> int:
    services.of(args).hooks.remove(services.ACTOR, args.id)
    print(f"removed {args.id}")
    return 0


def show_log(args: argparse.Namespace) -> int:
    hooks = services.of(args).hooks
    deliveries = hooks.deliveries(args.id, limit=args.limit)
    attempts = hooks.attempts(args.id, limit=args.limit)
    if args.json:
        out = {
            "deliveries": [delivery_json(d) for d in deliveries],
            "attempts": [attempt_json(a) for a in attempts],
        }
        print(json.dumps(out, indent=2))
        return 0
    print("deliveries:")
    for d in deliveries:
        print(f"  {d.id}  {d.event:<22} {d.package:<30} {d.state:<9} attempts {d.attempts}")
    print("attempts:")
    for a in attempts:
        result = str(a.status) if a.status is not None else (a.error or "error")
        print(
            f"  {_when(a.at_ms)}  {a.delivery_id}  #{a.attempt}  {result}  {a.duration_ms:.1f} ms"
        )
    return 0


def ping_hook(args: argparse.Namespace) -> int:
    print(services.of(args).hooks.ping(services.ACTOR, args.id))
    return 0
