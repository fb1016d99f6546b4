"""npm's package routes: packuments, versions, tarballs, publish and unpublish.

Package names can hold an escaped slash (``/@scope%2fname``) that falcon's
decoded ``req.path`` would turn into two segments, so this resource is a sink
that reads the raw path, parses ``(name, rest)`` itself and dispatches on the
method and the shape of ``rest``::

    GET    /:pkg                       packument (abbreviated by Accept; ?write=true fresh)
    GET    /:pkg/:version-or-tag       one version
    GET    /:pkg/-/:file.tgz           tarball
    PUT    /:pkg                       publish, deprecate (201 for a publish)
    PUT    /:pkg/-rev/:rev             unpublish a version, change maintainers
    DELETE /:pkg/-rev/:rev             unpublish the package
    DELETE /:pkg/-/:file/-rev/:rev     remove a tarball
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import falcon

from app.auth import Guard
from app.hosts import HostRebaser
from app.http import (
    ABBREVIATED,
    RenderedLike,
    decode_segment,
    json_answer,
    none_match,
    raw_path,
    read_json_object,
    refuse_large_body,
    segments,
    send_answer,
    send_json,
    send_media,
    send_not_modified,
    split_package,
)
from app.service import RegistryService
from r13core.access import Action
from r13core.audit import Actor
from r13core.errors import BadRequest, InvalidValue, NotFound
from r13core.names import PackageName
from r13core.registry import OwnerCheck
from r13core.uplink import Proxied, ProxiedBlob

READS = ("GET", "HEAD")
NAMES_REMEMBERED: Final = 4096


def _rev(raw: str) -> str:
    rev = decode_segment(raw)
    if not rev or len(rev) > 128:
        raise InvalidValue("malformed _rev")
    return rev


def tarball_filename(raw: str) -> str:
    """A tarball's file name from its raw URL segment; InvalidValue when it is none."""
    filename = decode_segment(raw)
    if not filename.endswith(".tgz") or "/" in filename or filename.startswith("."):
        raise InvalidValue(f"{filename!r} is not a tarball name")
    return filename


# How the monitor counts these requests: route_template() names only these.
ROUTES: Final = frozenset(
    {
        "/{package}",
        "/{package}/{version}",
        "/{package}/-/{tarball}",
        "/{package}/-rev/{rev}",
        "/{package}/-/{tarball}/-rev/{rev}",
        "/{package}/*",
    }
)


def route_template(rest: list[str]) -> str:
    """The route a package URL stands for, with its variable parts named."""
    if not rest:
        return "/{package}"
    if len(rest) == 1:
        return "/{package}/{version}"
    if len(rest) == 2:
        return "/{package}/-/{tarball}" if rest[0] == "-" else "/{package}/-rev/{rev}"
    if len(rest) == 4 and rest[0] == "-" and rest[2] == "-rev":
        return "/{package}/-/{tarball}/-rev/{rev}"
    return "/{package}/*"


def _proxied_headers(cache: str, warning: str | None = None) -> list[tuple[str, str]]:
    """How an upstream package was served: ``x-r13-cache`` and, when stale, ``warning``."""
    headers = [("x-r13-cache", cache.upper())]
    if warning:
        headers.append(("warning", warning))
    return headers


@dataclass(frozen=True)
class AccelRedirect:
    """A front nginx sends tarball bytes (R13_ACCEL_REDIRECT, README "The nginx front").

    ``location`` is nginx's internal location (``/_blobs/``) over ``root``, the blob dir:
    a tarball stored at ``root/objects/ab/<hex>`` is answered with
    ``X-Accel-Redirect: /_blobs/objects/ab/<hex>`` (or the older layout's path, where the
    file is: r13core/storage/blobs.py) and no body, after r13 decided the
    access, counted the download and set the headers.
    """

    location: str
    root: Path

    def uri(self, path: Path) -> str | None:
        """The internal URI of ``path``, or None when it is not under the blob dir."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return None
        return self.location + rel.as_posix()


OK: Final = "200 OK"
NOT_MODIFIED: Final = "304 Not Modified"
IMMUTABLE: Final = "public, max-age=31536000, immutable"


@dataclass
class TarballAnswer:
    """How a tarball request is answered (:meth:`Packages.tarball_answer`)."""

    status: str
    """:data:`OK` or :data:`NOT_MODIFIED` (these very objects)."""
    headers: list[tuple[str, str]]
    data: bytes | None = None
    """The whole body (a small local tarball), or None."""
    stream: BinaryIO | None = None
    """The open file to send (a larger one), or None."""
    length: int = 0
    """Content-Length: the body's, the file's, or the size a HEAD announces (0 when nginx
    sends the bytes)."""
    downloaded: bool = False
    """Whether this counts as a download of the package."""


class SmallTarballs:
    """The bytes of small local tarballs, kept by ETag in this worker.

    Under gunicorn's gevent worker ``wsgi.file_wrapper`` is no sendfile: gevent's socket
    reads the file in Python and sends it (plus an lseek, an fstat and a seek), after an
    open the route makes. A profile of the tarball route showed that file work as its
    largest cost for the small tarballs most packages have, so those are answered from
    memory. A tarball's ETag is a prefix of its sha512 (content-addressed, never
    rewritten), so a kept copy never goes stale; the lookup before it has already decided
    that the tarball exists. At most ``budget`` bytes, each at most ``largest``; when full
    it starts again empty.
    """

    def __init__(self, budget: int = 16 * 1024 * 1024, largest: int = 256 * 1024) -> None:
        self.budget = budget
        self.largest = largest
        self._items: dict[str, bytes] = {}
        self._used = 0

    def get(self, etag: str, path: Path, size: int) -> bytes | None:
        """The tarball's bytes, read once; None when it is too large or its file is gone."""
        if size > self.largest:
            return None
        data = self._items.get(etag)
        if data is not None:
            return data
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != size:
            return None
        if self._used + size > self.budget:
            self._items, self._used = {}, 0
        self._items[etag] = data
        self._used += size
        return data


class Packages:
    """The sink for ``/:pkg...``."""

    def __init__(
        self,
        registry: RegistryService,
        guard: Guard,
        *,
        max_body: int,
        hosts: HostRebaser | None = None,
        on_download: Callable[[str], None] | None = None,
        accel: AccelRedirect | None = None,
    ) -> None:
        self.registry = registry
        self.guard = guard
        self.max_body = max_body
        self.hosts = hosts
        self.on_download = on_download
        # Raw name segments already parsed (a valid name only; a bad one raises each time).
        self._names: dict[str, PackageName] = {}
        self.accel = accel
        self.small = SmallTarballs()

    def name_of(self, raw: str) -> PackageName:
        """The package a raw name segment names (remembered when valid); InvalidName."""
        name = self._names.get(raw)
        if name is None:
            name = PackageName.from_url(raw)
            if len(self._names) >= NAMES_REMEMBERED:
                self._names.clear()
            self._names[raw] = name
        return name

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        parsed = split_package(segments(raw_path(req)))
        if parsed is None or parsed[0].startswith(("-", "_")):
            raise falcon.HTTPNotFound(description="no such route")
        name = self.name_of(parsed[0])
        rest = parsed[1]
        if rest == [""]:  # a trailing slash
            rest = []
        req.context.route = route_template(rest)  # how the monitor counts this request
        method = req.method
        if method in READS:
            self._read(req, resp, name, rest)
        elif method == "PUT":
            self._put(req, resp, name, rest)
        elif method == "DELETE":
            self._delete(req, resp, name, rest)
        else:
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD", "PUT", "DELETE"])

    def _read(
        self, req: falcon.Request, resp: falcon.Response, name: PackageName, rest: list[str]
    ) -> None:
        env = req.env  # headers read straight from the environ: this runs on every read
        via = env.get("HTTP_VIA") or ""
        if not rest:
            self.guard.require(req, Action.READ, name)
            if req.get_param_as_bool("write", default=False):
                self._send(req, resp, self.registry.packument_for_write(name))
                resp.cache_control = ["no-cache"]
            else:
                send_answer(resp, *self.packument_answer(env, name))
        elif len(rest) == 1:
            self.guard.require(req, Action.READ, name)
            rendered = self.registry.version(name, decode_segment(rest[0]), via=via)
            if isinstance(rendered, Proxied):
                for header, value in _proxied_headers(rendered.cache, rendered.warning):
                    resp.set_header(header, value)
            self._send(req, resp, rendered)
        elif len(rest) == 2 and rest[0] == "-":
            self.guard.require(req, Action.READ, name)
            self._tarball(req, resp, name, tarball_filename(rest[1]))
        else:
            raise falcon.HTTPNotFound(description="no such route")

    def _send(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        rendered: RenderedLike,
        content_type: str = falcon.MEDIA_JSON,
    ) -> None:
        send_json(
            req, resp, self.hosts.apply(req, rendered) if self.hosts else rendered, content_type
        )

    def _tarball(
        self, req: falcon.Request, resp: falcon.Response, name: PackageName, filename: str
    ) -> None:
        answer = self.tarball_answer(req.env, req.method, name, filename)
        if answer.status is not OK:
            send_not_modified(resp)
        out = resp._headers  # names already lower case
        for header, value in answer.headers:
            out[header] = value
        if answer.data is not None:
            resp.data = answer.data
        elif answer.stream is not None:
            # falcon hands a readable stream to wsgi.file_wrapper: gunicorn sends it with sendfile.
            resp.set_stream(answer.stream, answer.length)
        elif answer.status is OK:
            resp.content_length = answer.length  # HEAD, or nginx sends the bytes
        if answer.downloaded and self.on_download is not None:
            self.on_download(str(name))

    def packument_answer(
        self, env: dict[str, Any], name: PackageName
    ) -> tuple[bool, list[tuple[str, str]], bytes]:
        """A packument GET or HEAD (no ``?write``), decided: (modified, headers, body), the
        one place both falcon's path and the hot reads (app/hot_reads.py) answer it — full
        or abbreviated by Accept, an upstream's copy marked, rebased for an allowed Host,
        ETag/304/gzip by app/http.py ``json_answer``. Raises r13core's errors."""
        abbreviated = ABBREVIATED in (env.get("HTTP_ACCEPT") or "")
        rendered = self.registry.packument(
            name, abbreviated=abbreviated, via=env.get("HTTP_VIA") or ""
        )
        headers: list[tuple[str, str]] = []
        if isinstance(rendered, Proxied):
            headers = _proxied_headers(rendered.cache, rendered.warning)
            abbreviated = rendered.abbreviated  # a stale full copy may stand in
        if self.hosts is not None:
            rendered = self.hosts.apply_host(env.get("HTTP_HOST") or "", rendered)
        kind = ABBREVIATED if abbreviated else falcon.MEDIA_JSON
        modified, more, body = json_answer(env, rendered, kind)
        return modified, headers + more, body

    def tarball_answer(
        self, env: dict[str, Any], method: str, name: PackageName, filename: str
    ) -> TarballAnswer:
        """A tarball GET or HEAD, decided: the one place both falcon's path and the hot
        reads (app/hot_reads.py) answer it. Raises r13core's errors (NotFound...)."""
        blob = self.registry.tarball(name, filename, via=env.get("HTTP_VIA") or "")
        temporary = isinstance(blob, ProxiedBlob) and blob.temporary
        headers = _proxied_headers(blob.cache) if isinstance(blob, ProxiedBlob) else []
        if temporary and method == "HEAD":
            blob.path.unlink(missing_ok=True)
        headers.append(("content-type", "application/octet-stream"))
        headers.append(("etag", blob.etag))
        headers.append(("cache-control", IMMUTABLE))
        if none_match(env.get("HTTP_IF_NONE_MATCH"), blob.etag):
            if temporary:
                blob.path.unlink(missing_ok=True)
            # A 304 carries no Content-Type.
            return TarballAnswer(NOT_MODIFIED, [h for h in headers if h[0] != "content-type"])
        internal = None if temporary or self.accel is None else self.accel.uri(blob.path)
        if internal is not None:
            # nginx sends the file (and answers HEAD and Range itself); r13 sends no body.
            headers.append(("x-accel-redirect", internal))
            return TarballAnswer(OK, headers, length=0, downloaded=method == "GET")
        if method == "HEAD":
            return TarballAnswer(OK, headers, length=blob.size)
        data = (
            None
            if isinstance(blob, ProxiedBlob)
            else self.small.get(blob.etag, blob.path, blob.size)
        )
        if data is not None:
            return TarballAnswer(OK, headers, data=data, length=len(data), downloaded=True)
        try:
            stream = blob.path.open("rb")
        except FileNotFoundError:  # unpublished (and its file deleted) since the lookup
            raise NotFound(f"tarball {filename!r} of {name} not found") from None
        if temporary:
            blob.path.unlink()  # an upstream tarball not kept (CACHE_ENABLED off): gone once sent
        return TarballAnswer(OK, headers, stream=stream, length=blob.size, downloaded=True)

    def _put(
        self, req: falcon.Request, resp: falcon.Response, name: PackageName, rest: list[str]
    ) -> None:
        if not rest:
            actor, check_owner = self._writer(req, Action.PUBLISH, name)
            body = read_json_object(req, self.max_body)
            created, document = self.registry.put_package(
                name, body, actor=actor, check_owner=check_owner
            )
            send_media(resp, document, falcon.HTTP_201 if created else falcon.HTTP_200)
        elif len(rest) == 2 and rest[0] == "-rev":
            actor, check_owner = self._writer(req, Action.UNPUBLISH, name)
            body = read_json_object(req, self.max_body)
            result = self.registry.put_package_rev(
                name, _rev(rest[1]), body, actor=actor, check_owner=check_owner
            )
            send_media(resp, result, falcon.HTTP_201)
        else:
            raise falcon.HTTPNotFound(description="no such route")

    def _writer(
        self, req: falcon.Request, action: Action, name: PackageName
    ) -> tuple[Actor, OwnerCheck]:
        """Who may do ``action`` on ``name`` (else 401/403), and the ownership check for the commit.

        Unpublishing versions and changing owners (``PUT /:pkg/-rev/:rev``) are both
        decided as UNPUBLISH, as npm sends them on the same route.
        """
        actor = self.guard.acting(req, action, name)
        return actor, self.guard.owner_check(req, action, name)

    def _delete(
        self, req: falcon.Request, resp: falcon.Response, name: PackageName, rest: list[str]
    ) -> None:
        if len(rest) == 2 and rest[0] == "-rev":
            actor, check_owner = self._writer(req, Action.UNPUBLISH, name)
            refuse_large_body(req, self.max_body)
            result = self.registry.unpublish_package(
                name, _rev(rest[1]), actor=actor, check_owner=check_owner
            )
            send_media(resp, result)
        elif len(rest) == 4 and rest[0] == "-" and rest[2] == "-rev":
            actor, check_owner = self._writer(req, Action.UNPUBLISH, name)
            refuse_large_body(req, self.max_body)
            filename = tarball_filename(rest[1])
            result = self.registry.remove_tarball(
                name, filename, _rev(rest[3]), actor=actor, check_owner=check_owner
            )
            send_media(resp, result)
        elif not rest:
            raise BadRequest("unpublishing a package needs its _rev: DELETE /:pkg/-rev/:rev")
        else:
            raise falcon.HTTPNotFound(description="no such route")
