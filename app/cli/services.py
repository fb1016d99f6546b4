"""What `r13` commands open on the data dir (``--data``), and who they act as.

Every command builds its objects through the one wiring, r13core/services.py
(``open_services``), from the settings with ``--data`` as the data dir: the
same storage URL, the same rules and prefixes as the server. A command on the
data dir needs no server and no key: it acts as ``cli`` (r13core/audit.py
``Actor.cli``, no client address). Each change it makes is one call into
r13core, which writes the audit event (r13core/identity.py, r13core/abuse.py,
r13core/config_changes.py).
"""

from __future__ import annotations

import argparse

from r13core.abuse import Blocklist
from r13core.audit import Actor, AuditLog
from r13core.identity import Identity
from r13core.services import Services, open_services
from r13core.settings import Settings

ACTOR = Actor.cli()


def settings(args: argparse.Namespace) -> Settings:
    """The settings of this command: the environment's, with ``--data`` as the data dir."""
    found: Settings | None = getattr(args, "settings", None)
    if found is None:
        found = Settings.from_env().with_data_dir(args.data)
        args.settings = found
    return found


def of(args: argparse.Namespace) -> Services:
    """This command's services (opened once; closed by the command line when it ends)."""
    opened: Services | None = getattr(args, "services", None)
    if opened is None:
        opened = args.services = open_services(settings(args))
    return opened


def audit(args: argparse.Namespace) -> AuditLog:
    """The audit log of ``--data``."""
    return of(args).audit


def identity(args: argparse.Namespace) -> Identity:
    """Keys, users and their audited operations over ``--data`` (created if absent)."""
    return of(args).identity


def blocklist(args: argparse.Namespace) -> Blocklist:
    """The blocks of ``--data``, keyed by the R13_IPV6_PREFIX the server counts by."""
    return of(args).blocks
