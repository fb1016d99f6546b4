"""``GET /_dashboard`` and its static files (docs/dashboard.md).

Every file under ``app/static/dashboard/`` (the page, its modules, its stylesheet and
the libraries the build copies from npm into ``vendor/``) is served under
``/_dashboard/static/<digest>/<path>``: ``<digest>`` covers every file, so a changed file
is a new URL and each response may be cached for a year (``immutable``). The page itself
names the current digest and is revalidated on each visit (``no-cache`` with an ETag).

A worker hashes the files when it starts (the digest) but keeps only their hashes: a
file is read, gzip-compressed and kept in memory the first time it is asked for, so a
worker that never serves the dashboard does not pay ~70 ms of compression and ~1 MB
for it (bench/RESULTS.md, "Cold start and idle memory"). A file whose bytes no longer
match the hash taken at start (replaced under a running server) is not served under
the old digest: 404, as for an older build's URL. A client that accepts gzip gets the
compressed bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import falcon

STATIC_ROOT: Final = Path(__file__).resolve().parent.parent / "static" / "dashboard"
PREFIX: Final = "/_dashboard/static/"
# The one source of the page's policy. No inline script anywhere, no eval, nothing
# from another origin. style-src-elem allows inline <style> elements because xterm.js
# (the terminal) writes its character-size and theme rules into <style> elements it
# creates at run time (its DOM renderer); style attributes stay forbidden
# (style-src-attr 'none': xterm and uPlot set styles through the CSSOM, which CSP does
# not govern). connect-src 'self' covers the live channel and the terminal
# (same-origin ws:/wss:).
CSP: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-elem 'self' 'unsafe-inline'",
        "style-src-attr 'none'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Compressing tiny files costs more than it saves.
_MIN_GZIP: Final = 256
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: its bytes, gzip form (None when not worth it), type, ETag."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


def _asset(body: bytes, name: str) -> Asset:
    suffix = Path(name).suffix
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    packed = gzip.compress(body, 9, mtime=0) if len(body) >= _MIN_GZIP else None
    if packed is not None and len(packed) >= len(body):
        packed = None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, packed, content_type, etag)


class StaticFiles:
    """The dashboard's files: the digest and the page at once, every other file on first use."""

    def __init__(self, root: Path = STATIC_ROOT) -> None:
        self.root = root
        # path -> the SHA-256 of its bytes at start (what the digest covers).
        self._hashes: dict[str, bytes] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and path.name != "index.html" and not path.name.startswith("."):
                    name = path.relative_to(root).as_posix()
                    self._hashes[name] = hashlib.sha256(path.read_bytes()).digest()
        digest = hashlib.sha256()
        for name, sha in self._hashes.items():
            digest.update(name.encode() + b"\0" + sha)
        self.digest = digest.hexdigest()[:16]
        self.base = f"{PREFIX}{self.digest}/"
        self._assets: dict[str, Asset] = {}
        index = root / "index.html"
        page = index.read_bytes() if index.is_file() else b""
        self.page = _asset(page.replace(PREFIX.encode(), self.base.encode()), "index.html")

    def asset(self, path: str) -> Asset | None:
        """The file at ``path`` of this build (read and compressed once), or None."""
        found = self._assets.get(path)
        if found is not None:
            return found
        sha = self._hashes.get(path)
        if sha is None:
            return None
        try:
            body = (self.root / path).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(body).digest() != sha:
            return None  # replaced since start: not this digest's file any more
        found = self._assets[path] = _asset(body, path)
        return found


def security_headers(resp: falcon.Response) -> None:
    """The headers every dashboard response carries."""
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("X-Frame-Options", "DENY")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("Cross-Origin-Opener-Policy", "same-origin")
    resp.set_header("Cross-Origin-Resource-Policy", "same-origin")


def _send(req: falcon.Request, resp: falcon.Response, asset: Asset, cache: str) -> None:
    security_headers(resp)
    resp.etag = asset.etag
    resp.cache_control = [cache]
    resp.vary = ["Accept-Encoding"]
    if req.if_none_match and any(
        tag == "*" or str(tag) == asset.etag.strip('"') for tag in req.if_none_match
    ):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = asset.content_type
    accepts = (req.get_header("Accept-Encoding") or "").lower()
    if asset.gzipped is not None and "gzip" in accepts:
        resp.set_header("Content-Encoding", "gzip")
        resp.data = asset.gzipped
    else:
        resp.data = asset.body
    if req.method == "HEAD":
        resp.content_length = len(resp.data)
        resp.data = b""


class DashboardPage:
    """``GET /_dashboard``: the single page (anyone may load it; its data needs a session)."""

    def __init__(self, files: StaticFiles) -> None:
        self.files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.files.page.body:
            raise falcon.HTTPNotFound(description="the dashboard is not built (make build)")
        _send(req, resp, self.files.page, "no-cache")

    on_head = on_get


class DashboardStatic:
    """``GET /_dashboard/static/{digest}/{path}``: a file of the current build, cached for
    a year; another digest is an older build's URL (404: the page names the new one)."""

    def __init__(self, files: StaticFiles) -> None:
        self.files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response, digest: str, path: str) -> None:
        asset = self.files.asset(path)
        if digest != self.files.digest or asset is None:
            raise falcon.HTTPNotFound(description=f"no dashboard file {path!r} in this build")
        _send(req, resp, asset, "public, max-age=31536000, immutable")

    on_head = on_get


def add_routes(app: falcon.App[falcon.Request, falcon.Response], files: StaticFiles) -> None:
    """The page and its files."""
    app.add_route("/_dashboard", DashboardPage(files))
    app.add_route("/_dashboard/", DashboardPage(files))
    app.add_route(PREFIX + "{digest}/{path:path}", DashboardStatic(files))
