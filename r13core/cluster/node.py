"""A node's name: R13_NODE_ID, else one made once and kept in the data dir.

The kept id is ``<host name>-<6 hex digits>`` (the host name cut to what an id
allows), written to ``<data>/node-id`` the first time: it stays the same across
restarts of the node and differs between two data dirs on one host.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from r13core.cluster.database import ClusterDB
from r13core.datadir import make_private_dirs
from r13core.settings import Settings

NODE_ID_FILE: Final = "node-id"
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def node_id(data_dir: str | os.PathLike[str], configured: str | None = None) -> str:
    """``configured`` (R13_NODE_ID) if given, else the data dir's kept id (made if absent)."""
    if configured:
        return configured
    path = Path(data_dir) / NODE_ID_FILE
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if _ID.fullmatch(kept):
        return kept
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48].strip("-._") or "node"
    made = f"{host}-{secrets.token_hex(3)}"
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{NODE_ID_FILE}.{os.getpid()}")
    tmp.write_text(made + "\n")
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # the first process to make one wins; the others read it
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    kept = path.read_text().strip()
    return kept if _ID.fullmatch(kept) else made


@dataclass(frozen=True)
class Cluster:
    """This node's place in the cluster: who it is, where it says it is, the database."""

    db: ClusterDB
    node_id: str
    node_url: str
    stale_after_ms: int

    @classmethod
    def of(cls, settings: Settings, storage: object = None) -> Cluster:
        """The cluster of ``settings`` (only when :attr:`Settings.clustered`), borrowing
        connections from ``storage``'s pool when it has one (the PostgreSQL storage)."""
        url = settings.storage.database_url
        if url is None or not settings.clustered:
            raise ValueError("not a node of a cluster: R13_DATABASE_URL is not postgresql://")
        return cls(
            db=ClusterDB(url, pooled=getattr(storage, "connection", None)),
            node_id=node_id(settings.data_dir, settings.cluster.node_id),
            node_url=settings.cluster.node_url or settings.server.public_url,
            stale_after_ms=settings.cluster.stale_after_ms,
        )
