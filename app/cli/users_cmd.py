"""`r13 users add|list|passwd|remove|role` on a data dir.

Passwords are read from the terminal (twice), or from stdin with
``--password-stdin`` (one line) for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from app.cli import services
from r13core.textforms import describe_user
from r13core.users import Role


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="add, list, change or remove users")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    roles = [r.value for r in Role]
    a = actions.add_parser("add", help="add a user")
    a.add_argument("name")
    a.add_argument("--role", choices=roles, default=Role.PUBLISHER.value)
    a.add_argument("--email", default="")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument(
        "--reclaim",
        action="store_true",
        help="give out again the name of a removed user (the packages that list it as a "
        "maintainer become this user's); a key's id is never given out",
    )
    a.set_defaults(handler=add)
    actions.add_parser("list", help="every user and role").set_defaults(handler=list_)
    pw = actions.add_parser("passwd", help="set a user's password (revokes all its tokens)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(handler=passwd)
    r = actions.add_parser("remove", help="remove a user and revoke every key it owns")
    r.add_argument("name")
    r.set_defaults(handler=remove)
    ro = actions.add_parser(
        "role",
        help="change a user's role (its keys follow at once; a lower role revokes "
        "the tokens above it)",
    )
    ro.add_argument("name")
    ro.add_argument("role", choices=roles)
    ro.set_defaults(handler=role)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        from app.cli import UsageError

        raise UsageError("the passwords differ")
    return first


describe = describe_user


def add(args: argparse.Namespace) -> int:
    user = services.identity(args).add_user(
        services.ACTOR,
        args.name,
        _password(args),
        Role.parse(args.role),
        args.email,
        reclaim=args.reclaim,
    )
    print(describe(user))
    return 0


def list_(args: argparse.Namespace) -> int:
    for user in services.identity(args).users.list():
        print(describe(user))
    return 0


def passwd(args: argparse.Namespace) -> int:
    identity = services.identity(args)
    identity.users.get(args.name)  # an unknown user fails before the password is asked
    revoked = identity.set_password(services.ACTOR, args.name, _password(args))
    print(f"password of {args.name} changed; {_tokens(revoked)} revoked")
    return 0


def _tokens(ids: list[str]) -> str:
    return "1 token" if len(ids) == 1 else f"{len(ids)} tokens"


def remove(args: argparse.Namespace) -> int:
    services.identity(args).remove_user(services.ACTOR, args.name)
    print(f"removed {args.name}; its keys are revoked")
    return 0


def role(args: argparse.Namespace) -> int:
    user, revoked = services.identity(args).set_role(
        services.ACTOR, args.name, Role.parse(args.role)
    )
    print(describe(user))
    if revoked:
        print(f"{_tokens(revoked)} above the new role revoked")
    return 0
