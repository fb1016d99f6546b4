"""`r13 serve`: gunicorn with the gthread worker hosting app.wsgi:application."""

from __future__ import annotations

import argparse
import os
import sys

from app.main import open_config
from r13core.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="start the registry (gunicorn, gthread workers)")
    p.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("R13_DATA", args.data)
    settings = Settings.from_env()
    # Create the data dir and the record before any worker starts.
    open_config(settings).close()
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
