"""`r13 serve`: gunicorn (the gevent worker by default) hosting app.wsgi:application.

It first brings the metadata database's schema up to date (r13core/services.py
``migrate_database``; under an advisory lock with PostgreSQL, so nodes starting
together migrate once), or with R13_AUTO_MIGRATE=0 refuses to start while a
migration is pending (run ``r13 db migrate``); a schema newer than this r13 is
always refused. On first start it creates the data dir, the record, the database, the signing
key (and signs any version stored without a signature) and an admin key; the
admin key goes to ``<data>/admin.key`` (mode 0600) and is printed once with the
``.npmrc`` lines that use it. When no other process of the data dir is
running it removes every file in the blob store that no committed row refers
to (r13core/sweeper.py). Then the process becomes gunicorn's master
(app/cli/serve_process.py: in this process when `r13` is the process's own
command line, else by exec), so SIGTERM/SIGINT reach gunicorn's master directly
and stop it cleanly; the master keeps the data dir's instance lock (shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from app.cli import serve_process, services
from app.hosts import HostRebaser
from r13core.audit import Actor
from r13core.errors import R13Error, SchemaPending, SchemaTooNew
from r13core.identity import Identity
from r13core.locks import InstanceLock
from r13core.services import Services, migrate_database, open_services, schema_status
from r13core.settings import Settings
from r13core.sweeper import startup_sweep

ADMIN_KEY_FILE = "admin.key"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="start the registry (gunicorn, gevent workers)")
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


def ensure_signatures(services: Services) -> None:
    """The signing key (made on first start) and a signature on every stored version
    (versions published before r13 signed: r13core/registry/signing.py)."""
    if services.signing_keys.ensure():
        keyid = services.signing_keys.active_keyid()
        print(f"r13: created signing key {keyid} in {services.signing_keys.directory}",
              file=sys.stderr)  # fmt: skip
    packages, versions = services.registry.sign_unsigned(actor=Actor.system())
    if versions:
        print(f"r13: signed {versions} older version(s) of {packages} package(s)",
              file=sys.stderr)  # fmt: skip


def prepare(settings: Settings, instance: InstanceLock | None = None) -> InstanceLock:
    """Create what a first start needs (data dir, record, database, admin key); sweep orphans.

    Runs before gunicorn starts, over its own services (the one wiring,
    r13core/services.py), closed before it returns: every worker opens its own
    after fork. Returns the data dir's instance lock (``instance``, or a new one),
    held shared: the caller keeps it while it serves (or releases it).
    """
    if settings.storage.auto_migrate:
        applied, version = migrate_database(settings)
        if applied:
            print(f"r13: migrated the database to schema version {version}", file=sys.stderr)
    else:
        current, latest = schema_status(settings)
        if current != latest:
            # SchemaTooNew when newer; else the pending steps are the operator's to run.
            migrate_check = SchemaTooNew if current > latest else SchemaPending
            raise migrate_check(
                f"the database is at schema version {current}, this r13 knows {latest}: "
                + ("upgrade r13" if current > latest else "run `r13 db migrate` first")
                + " (R13_AUTO_MIGRATE=0)"
            )
    with open_services(settings) as services:
        return _first_start(services, instance or InstanceLock(services.data_dir))


def prepare_apart(settings: Settings) -> InstanceLock | int:
    """:func:`prepare` in a forked child; the instance lock, or the child's exit status.

    When gunicorn's master is this process (app/cli/serve_process.py), the workers
    fork from it and inherit what it holds: what preparing loads and allocates (the
    cryptography library for a first signing key: ~10 MB; every package document
    scanned for unsigned versions) stays in the child, which exits. The child locks
    the instance lock through the open descriptor it shares with this process, so the
    lock it leaves (shared) is this process's; if it could not take it (another server
    of the data dir runs) this process takes it shared, as :func:`prepare` would.
    """
    instance = InstanceLock(settings.storage.data_dir)
    instance.open()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child (tests/test_serve_start.py and every e2e server run it)
        status = 1
        try:
            prepare(settings, instance)
            status = 0
        except (R13Error, OSError) as exc:
            print(f"r13: {exc}", file=sys.stderr)  # as app/cli/__init__.py would
            status = 2
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(wait_status)
    if status != 0:
        instance.release()
        return status
    instance.shared()  # held already through the shared descriptor, or taken now
    return instance


def _first_start(services: Services, instance: InstanceLock) -> InstanceLock:
    settings = services.settings
    try:
        services.apply_feature_overrides()
        ensure_admin_key(services.data_dir, services.identity, settings.server.public_url)
        ensure_signatures(services)
        # Files left by publishes that crashed before their commit, and anything
        # else no committed row refers to: safe only while no other process runs.
        swept = startup_sweep(services.registry, instance)
        if swept is None:
            print(
                f"r13: another r13 process is using {services.data_dir}; "
                "its sweeper removes orphan files",
                file=sys.stderr,
            )
            instance.shared()
        elif swept:
            print(f"r13: removed {swept} orphan file(s) (unreferenced tarballs, temp "
                  "files)", file=sys.stderr)  # fmt: skip
    except BaseException:
        instance.release()
        raise
    return instance


def serve(args: argparse.Namespace) -> int:
    settings = services.settings(args)  # a bad variable has stopped `r13` already, named
    server = settings.server
    HostRebaser(server.public_url, server.allowed_hosts, listen_port=server.port)
    # gunicorn's master holds the lock for the server's life: this process, or the one
    # it execs into (app/cli/serve_process.py says which).
    if serve_process.in_process():
        prepared = prepare_apart(settings)
        if isinstance(prepared, int):
            return prepared  # the child said why
        try:
            serve_process.run(settings.environment())
        finally:
            prepared.release()
    else:
        instance = prepare(settings)
        instance.keep_across_exec()
        serve_process.exec_gunicorn(settings.environment())
    return 0  # pragma: no cover
