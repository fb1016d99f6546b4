"""What `r13` commands open on the data dir (``--data``), and who they act as.

A command on the data dir needs no server and no key: it acts as ``cli``
(r13core/audit.py ``Actor.cli``, no client address). Each change it makes is one
call into r13core, which writes the audit event (r13core/identity.py,
r13core/abuse.py, r13core/config_changes.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.main import open_storage
from r13core.abuse import Blocklist
from r13core.audit import Actor, AuditLog
from r13core.identity import Identity
from r13core.settings import SecuritySettings

ACTOR = Actor.cli()


def audit(args: argparse.Namespace) -> AuditLog:
    """The audit log of ``--data``."""
    return AuditLog(open_storage(Path(args.data)))


def identity(args: argparse.Namespace) -> Identity:
    """Keys, users and their audited operations over ``--data`` (created if absent)."""
    return Identity.over(open_storage(Path(args.data)))


def blocklist(args: argparse.Namespace) -> Blocklist:
    """The blocks of ``--data``, keyed by the R13_IPV6_PREFIX the server counts by.

    A bad security variable stops the command here, named (as it would stop the server).
    """
    prefix = SecuritySettings.from_env(os.environ).ipv6_prefix
    return Blocklist(open_storage(Path(args.data)), ipv6_prefix=prefix)
