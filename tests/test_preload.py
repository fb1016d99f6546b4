"""What gunicorn's master loads before it forks (app/gunicorn_conf.py ``PRELOAD``).

The master imports the app's modules so the workers start with them; it must not
open anything a worker would then share: no OS-level lock (a gevent worker blocks its
whole hub on one: under gevent the config patches before it imports any of r13), no
thread, no socket, no SQLite connection, no file of the data dir. A fresh interpreter
does what gunicorn's master does (gunicorn's own modules, then the config) and reports
what the config's imports created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import gc, json, os, sys, threading, _thread  # threading: the main thread holds its lock
from functools import cached_property
# The OS-level lock types, taken before gevent (if at all) replaces _thread's.
REAL = (type(_thread.allocate_lock()), _thread.RLock)

def real_locks(objs):
    # functools.cached_property holds an RLock of the interpreter's own (functools is
    # loaded before any patching, in every process): each class with one has it, in the
    # master or in a worker alike. Any other OS-level lock is what this test looks for.
    return sum(
        isinstance(o, REAL)
        and not any(isinstance(r, cached_property) for r in gc.get_referrers(o))
        for o in objs
    )

def fds():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed by now
    return sorted(found)

def census():
    import sqlite3, socket
    gc.collect()
    objs = gc.get_objects()
    return {
        "locks": real_locks(objs),
        "held": sum(
            isinstance(o, REAL) and (o._is_owned() if isinstance(o, _thread.RLock) else o.locked())
            for o in objs
        ),
        "sqlite": sum(isinstance(o, sqlite3.Connection) for o in objs),
        "mapped": sorted({line.split()[-1] for line in open("/proc/self/maps")
                          if line.split()[-1].startswith(os.environ["R13_DATA"])}),
        "sockets": sum(isinstance(o, socket.socket) and o.fileno() >= 0 for o in objs),
        "fds": fds(),
        "threads": len(os.listdir("/proc/self/task")),
    }

from app.cli import main, serve_process
serve_process.patch_early()  # what `r13 serve` does first (main() does it again: a no-op)
before = census()

def at_fork(environ):
    # Where `r13 serve` would start gunicorn's arbiter: it loads the config (and the
    # preload) first, then forks the workers. Report what the process holds then.
    os.environ.update(environ)
    import app.gunicorn_conf as conf
    patched = None
    if serve_process.gevent_worker():
        from gevent import monkey
        patched = all(monkey.is_module_patched(m) for m in ("threading", "socket", "time"))
    print(json.dumps({"before": before, "after": census(), "patched": patched,
                      "missing": [m for m in conf.PRELOAD if m not in sys.modules],
                      "app_built": "app.wsgi" in sys.modules}))
    sys.exit(0)

serve_process.run = at_fork
sys.argv = ["r13", "serve"]
main()
"""


def serve_probe(tmp_path: Path, worker_class: str) -> dict[str, Any]:
    """`r13 serve` up to the fork, in a fresh interpreter: what it holds then."""
    env = {
        **os.environ,
        "R13_DATA": str(tmp_path / worker_class),
        "R13_PUBLIC_URL": "http://127.0.0.1:4873",
        "R13_WORKER_CLASS": worker_class,
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_r13_serve_preloads_the_app_modules_but_holds_nothing_a_worker_would_share(
    tmp_path: Path,
) -> None:
    for worker_class in ("gevent", "gthread"):
        result = serve_probe(tmp_path, worker_class)
        before, after = result["before"], result["after"]
        assert result["missing"] == [], worker_class
        assert result["app_built"] is False  # modules only: the app is built in each worker
        # Nothing newly held across the fork (the main thread always holds its own).
        assert after["held"] == before["held"], worker_class
        assert after["threads"] == before["threads"] == 1, worker_class
        # The data dir was prepared over services that are closed again by now.
        assert after["sqlite"] == after["sockets"] == 0, worker_class
        data = str(tmp_path / worker_class)
        # Held on purpose: the data dir's instance lock (for the server's life) and the
        # auth counter the key cache reads (r13core/storage/signals.py: each process
        # maps its own, a worker reopens it after fork); under gevent the hub's event
        # loop, which gunicorn's worker re-creates after fork (hub.reinit()).
        kept = {f"{data}/.r13-instance.lock", f"{data}/registry.sqlite3-authgen"}
        opened = set(after["fds"]) - set(before["fds"])
        assert {fd for fd in opened if not fd.startswith("anon_inode:")} <= kept, opened
        assert set(after["mapped"]) <= kept, after["mapped"]
        if worker_class == "gevent":
            assert result["patched"] is True  # patched before any of r13 loaded
            # Every lock r13's modules made is gevent's: none blocks a worker's hub.
            assert after["locks"] <= before["locks"], (before, after)
        else:
            assert not any(fd.startswith("anon_inode:") for fd in opened), opened


def test_gunicorn_started_on_its_own_preloads_nothing_under_gevent(tmp_path: Path) -> None:
    # `python -m gunicorn --config python:app.gunicorn_conf`: nobody patched the master,
    # so it must not import the app (the workers patch, then import, as gunicorn does).
    code = (
        "import json, sys, app.gunicorn_conf as conf; "
        "print(json.dumps([m for m in conf.PRELOAD if m in sys.modules]))"
    )
    env = {**os.environ, "R13_DATA": str(tmp_path / "d"), "R13_WORKER_CLASS": "gevent"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
