"""r13 as `r13 serve` runs it, except that its keys read a clock the test moves.

``R13_TEST_CLOCK`` names a file holding seconds to add to the real time (no file: 0),
so a test expires a key that every worker has cached by writing that file, instead of
sleeping past the expiry and depending on how fast the machine got there.
``python -m tests.e2e.clocked_app`` (from the repo root) prepares the data dir like
`r13 serve` and execs gunicorn with :func:`build` as the app factory.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import falcon

from app.cli.serve_cmd import prepare
from app.main import create_app
from r13core.keys import KeyStore
from r13core.services import open_services
from r13core.settings import Settings


def clock() -> float:
    """The real time plus the skew in ``$R13_TEST_CLOCK``."""
    try:
        skew = float(Path(os.environ["R13_TEST_CLOCK"]).read_text() or 0)
    except FileNotFoundError:
        skew = 0.0
    return time.time() + skew


def build() -> falcon.App[falcon.Request, falcon.Response]:
    """The app of app/wsgi.py, with a key store on :func:`clock` (one per worker)."""
    services = open_services(Settings.from_env())
    services.keys = KeyStore(services.storage, clock=clock)  # before anything uses the keys
    return create_app(services, root_pid=os.getppid())


def main() -> None:
    prepare(Settings.from_env())
    app = "tests.e2e.clocked_app:build()"
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf", app]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
