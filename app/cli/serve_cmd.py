"""`r13 serve`: gunicorn with the gthread worker hosting app.wsgi:application.

On first start it creates the data dir, the record, the database and an admin
key; the key goes to ``<data>/admin.key`` (mode 0600) and is printed once with
the ``.npmrc`` lines that use it. When no other process of the data dir is
running it removes every file in the blob store that no committed row refers
to (r13core/sweeper.py). Then the process becomes gunicorn (exec), so
SIGTERM/SIGINT reach gunicorn's master directly and stop it cleanly; the
master keeps the data dir's instance lock (shared) across the exec.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from app.http import HostRebaser
from app.main import open_config, open_services
from r13core.identity import Identity
from r13core.locks import InstanceLock
from r13core.settings import SecuritySettings, Settings
from r13core.sweeper import startup_sweep

ADMIN_KEY_FILE = "admin.key"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="start the registry (gunicorn, gthread workers)")
    p.set_defaults(handler=serve)


def npmrc_lines(public_url: str, secret: str) -> list[str]:
    """The two ``.npmrc`` lines that point npm at this registry with ``secret``."""
    parts = urlsplit(public_url)
    path = parts.path.rstrip("/") + "/"
    return [f"registry={public_url.rstrip('/')}/", f"//{parts.netloc}{path}:_authToken={secret}"]


def ensure_admin_key(data_dir: Path, identity: Identity, public_url: str) -> str | None:
    """Create the first admin key unless one exists (r13core/identity.py
    ``Identity.first_admin_key``); save and show it; returns its secret when created."""
    made = identity.first_admin_key()
    if made is None:
        return None
    info, secret = made
    path = data_dir / ADMIN_KEY_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    print(f"r13: created admin key {info.id!r}; saved in {path} (mode 0600).", file=sys.stderr)
    print("r13: it is shown only now. To use it, put these lines in .npmrc:", file=sys.stderr)
    for line in npmrc_lines(public_url, secret):
        print(f"    {line}", file=sys.stderr)
    return secret


def prepare(settings: Settings) -> InstanceLock:
    """Create what a first start needs (data dir, record, database, admin key); sweep orphans.

    Runs in the process that then execs gunicorn; the database connection made
    here is closed first, and every worker opens its own after fork. Returns
    the data dir's instance lock, held shared: the caller keeps it while it
    serves (or releases it).
    """
    instance = InstanceLock(settings.data_dir)
    try:
        with open_config(settings) as config:
            services = open_services(settings, config)
            try:
                identity = Identity.over(services.storage)
                ensure_admin_key(settings.data_dir, identity, settings.public_url)
                # Files left by publishes that crashed before their commit, and anything
                # else no committed row refers to: safe only while no other process runs.
                swept = startup_sweep(services.registry, instance)
                if swept is None:
                    print(
                        f"r13: another r13 process is using {settings.data_dir}; "
                        "its sweeper removes orphan files",
                        file=sys.stderr,
                    )
                    instance.shared()
                elif swept:
                    print(f"r13: removed {swept} orphan file(s) (unreferenced tarballs, temp "
                          "files)", file=sys.stderr)  # fmt: skip
            finally:
                services.storage.close()
    except BaseException:
        instance.release()
        raise
    return instance


def serve(args: argparse.Namespace) -> int:
    os.environ["R13_DATA"] = str(args.data)
    settings = Settings.from_env()
    # Fail here, with one line naming the variable, rather than in every worker's boot.
    SecuritySettings.from_env(os.environ)
    HostRebaser(settings.public_url, settings.allowed_hosts, listen_port=settings.port)
    instance = prepare(settings)
    instance.keep_across_exec()  # gunicorn's master holds it for the server's life
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:app.gunicorn_conf",
        "app.wsgi:application",
    ]
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover
