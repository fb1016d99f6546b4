"""Change signals over PostgreSQL: a node-local counter file plus ``NOTIFY`` to the others.

A :class:`NotifyingSignal` is what the PostgreSQL storage exposes as
``auth_changes`` and ``package_changes`` (the same attribute names as SQLite's).
Reading it is as cheap as SQLite's: :meth:`NotifyingSignal.version` reads
``local``, a :class:`~r13core.storage.signals.FileChangeSignal` in the node's
data dir, shared by every process of this node. :meth:`NotifyingSignal.bump`
(called after the change committed) bumps that file, so every worker of this
node sees the change at once, then sends ``SELECT pg_notify('r13_signal',
<name>)`` on an autocommit connection, so the other nodes hear of it.

Each node runs one listener (r13core/cluster, not in this module) that
``LISTEN``s on :data:`CHANNEL` and, for every notification, bumps the ``local``
of the signal it names — and bumps every local once after each (re)connect,
because NOTIFY is never replayed: whatever a node missed while disconnected
reloads from the tables. A node's own notifications come back to it too; the
extra local bump only costs one spurious cache reload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from r13core.storage.signals import ChangeSignal, FileChangeSignal

log = logging.getLogger("r13.storage")

CHANNEL: Final = "r13_signal"
"""The LISTEN/NOTIFY channel of every storage change signal; the payload is the signal's name."""
AUTH: Final = "auth"
"""The name of the identity signal (keys, users, blocks): ``storage.auth_changes``."""
PACKAGES: Final = "packages"
"""The name of the package signal: ``storage.package_changes``."""


class NotifyingSignal(ChangeSignal):
    """A node-local :class:`FileChangeSignal` (``local``) whose bumps also ``NOTIFY`` the cluster.

    ``notify(channel, payload)`` sends one notification (an autocommit
    ``SELECT pg_notify(...)``); a failure to send is logged and swallowed: the
    change is committed, this node already knows, and the other nodes resync on
    their next reconnect.
    """

    def __init__(
        self, name: str, local: FileChangeSignal, notify: Callable[[str, str], None]
    ) -> None:
        self.name = name
        self.local = local
        self._notify = notify

    def version(self) -> int:
        """The node-local counter (one 8-byte load from a shared mapping)."""
        return self.local.version()

    def bump(self) -> None:
        """Bump this node's counter, then tell the other nodes (after the commit)."""
        self.local.bump()
        try:
            self._notify(CHANNEL, self.name)
        except Exception:  # the change is committed; peers resync on reconnect
            log.exception("could not NOTIFY %s of a %s change", CHANNEL, self.name)
