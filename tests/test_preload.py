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
import gc, json, os, sys, threading, _thread
import gunicorn.app.wsgiapp, gunicorn.arbiter  # what the master has loaded before the config
from functools import cached_property
patched = None
# The OS-level lock types, taken before gevent replaces _thread's.
REAL = (type(_thread.allocate_lock()), _thread.RLock)

def fds():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed by now
    return sorted(found)

def real_locks(objs):
    # functools.cached_property holds an RLock of the interpreter's own (functools is
    # loaded before any patching, in every process): each class with one has it, in the
    # master or in a worker alike. Any other OS-level lock is what this test looks for.
    return sum(
        isinstance(o, REAL)
        and not any(isinstance(r, cached_property) for r in gc.get_referrers(o))
        for o in objs
    )
def census():
    import sqlite3, mmap, socket
    objs = gc.get_objects()
    return {
        "locks": real_locks(objs),
        "held": sum(
            isinstance(o, REAL) and (o._is_owned() if isinstance(o, _thread.RLock) else o.locked())
            for o in objs
        ),
        "sqlite": sum(isinstance(o, sqlite3.Connection) for o in objs),
        "mmaps": sum(isinstance(o, mmap.mmap) for o in objs),
        "sockets": sum(isinstance(o, socket.socket) for o in objs),
        "fds": fds(),
        "threads": len(os.listdir("/proc/self/task")),
    }
gc.collect()
before = census()
import app.gunicorn_conf as conf
gc.collect()
after = census()
missing = [m for m in conf.PRELOAD if m not in sys.modules]
if os.environ["R13_WORKER_CLASS"] == "gevent":
    from gevent import monkey
    patched = all(monkey.is_module_patched(m) for m in ("threading", "socket", "time", "select"))
print(json.dumps({"before": before, "after": after, "missing": missing, "patched": patched,
                  "app_built": "app.wsgi" in sys.modules}))
"""


def master_probe(tmp_path: Path, worker_class: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "R13_DATA": str(tmp_path / "data"),
        "R13_PUBLIC_URL": "http://127.0.0.1:4873",
        "R13_WORKER_CLASS": worker_class,
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_master_preloads_the_app_modules_but_opens_nothing_a_worker_would_share(
    tmp_path: Path,
) -> None:
    for worker_class in ("gevent", "gthread"):
        result = master_probe(tmp_path, worker_class)
        before, after = result["before"], result["after"]
        assert result["missing"] == [], worker_class
        assert result["app_built"] is False  # modules only: the app is built in each worker
        # Nothing newly held across the fork (the main thread always holds its own).
        assert after["held"] == before["held"], worker_class
        assert after["threads"] == before["threads"] == 1, worker_class
        assert after["sqlite"] == after["mmaps"] == 0, worker_class
        assert after["sockets"] == before["sockets"], worker_class
        opened = sorted(set(after["fds"]) - set(before["fds"]))
        assert not (tmp_path / "data").exists()  # nothing made or opened in the data dir
        if worker_class == "gevent":
            assert result["patched"] is True  # patched before the app's modules loaded
            # Every lock those modules made is gevent's: none blocks a worker's hub.
            assert after["locks"] <= before["locks"]
            # Only the hub's event loop, which gunicorn's worker re-creates after fork
            # (gunicorn/workers/ggevent.py: hub.reinit()).
            assert all(fd.startswith("anon_inode:") for fd in opened), opened
        else:
            assert opened == [], opened
