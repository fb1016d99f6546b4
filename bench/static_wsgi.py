"""The stack's own ceiling: pre-rendered files from memory, under r13's gunicorn.

``gunicorn --config python:app.gunicorn_conf bench.static_wsgi:application`` with
``R13_BENCH_DOCROOT`` naming a docroot that bench/static_nginx.py rendered (packuments
under ``full/`` and ``abbrev/``, tarballs at their URL paths). Each worker reads every
file into a dict once; a request is one dict lookup (the variant by ``Accept``, as
nginx-static chooses it) and the bytes: no routing, no access decision, no headers
beyond Content-Type and Content-Length. Under the same gunicorn configuration as r13
(worker class, workers, the response writer of app/gunicorn_conf.py), its req/s is what
no WSGI app on this stack can pass; ``python -m bench.compare --registries
r13,verdaccio,gunicorn-static`` measures r13 and the peer against it in one run.
Never serve this: it answers anyone everything it holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ABBREVIATED = "application/vnd.npm.install-v1+json"
JSON = [("Content-Type", "application/json")]
TGZ = [("Content-Type", "application/octet-stream")]
NOT_FOUND = b'{"error":"not found"}'


def load(docroot: Path) -> dict[tuple[str, str], bytes]:
    """(variant, URL path) -> bytes: ``full``/``abbrev`` packuments, ``tgz`` tarballs."""
    files: dict[tuple[str, str], bytes] = {}
    for path in docroot.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(docroot).as_posix()
        variant, _, rest = rel.partition("/")
        if variant in ("full", "abbrev") and rest.endswith(".json"):
            files[(variant, "/" + rest.removesuffix(".json"))] = path.read_bytes()
        elif rel.endswith(".tgz"):
            files[("tgz", "/" + rel)] = path.read_bytes()
    return files


def make_app(files: dict[tuple[str, str], bytes]) -> Callable[..., Iterable[bytes]]:
    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/-/ping":
            body = b"{}"
            start_response("200 OK", [*JSON, ("Content-Length", "2")])
            return [body]
        if path.endswith(".tgz"):
            body = files.get(("tgz", path), b"")
            headers = TGZ
        else:
            accept = environ.get("HTTP_ACCEPT", "")
            variant = "abbrev" if ABBREVIATED in accept else "full"
            body = files.get((variant, path), b"")
            headers = JSON
        if not body:
            start_response("404 Not Found", [*JSON, ("Content-Length", str(len(NOT_FOUND)))])
            return [NOT_FOUND]
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return application


application = make_app(load(Path(os.environ.get("R13_BENCH_DOCROOT", "."))))
