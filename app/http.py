"""HTTP plumbing the resources share: raw paths, bodies, JSON, caching headers, auth.

Nothing here knows about packages; it turns requests into plain values and
plain values into responses, raising r13core's domain errors so that the one
table in ``app/errors.py`` picks the status.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, unquote

import falcon

from r13core.errors import BadRequest, InvalidValue, PayloadTooLarge, UnsupportedMediaType

CHUNK = 64 * 1024
# Deeper arrays/objects are refused (npm documents nest a few levels).
MAX_JSON_DEPTH = 64
JSON_TYPES = frozenset({"application/json"})
ABBREVIATED = "application/vnd.npm.install-v1+json"
VARY = ("Accept", "Accept-Encoding")


# -- paths ----------------------------------------------------------------------


def raw_path(req: falcon.Request) -> str:
    """The request path as the client sent it (still percent-encoded).

    gunicorn puts it in ``RAW_URI`` (with the query string); other servers use
    ``REQUEST_URI``. Without either, re-encode ``PATH_INFO``: ``%2f`` then reads as
    ``/``, which the package router accepts too.
    """
    env = req.env
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")
    if raw:
        path = str(raw).split("?", 1)[0].split("#", 1)[0]
        if path.startswith(("http://", "https://")):  # absolute-form request target
            slash = path.find("/", path.index("//") + 2)
            path = path[slash:] if slash >= 0 else "/"
        return path
    return quote(req.path, safe="/@:!$&'()*+,;=-._~")


def segments(path: str, prefix: str = "/") -> list[str]:
    """Raw segments of ``path`` after ``prefix`` (empty segments kept, e.g. a trailing /).

    Routing matched the decoded path; when the raw one spells the prefix with
    escapes (``/%2d/package/...``, equivalent by RFC 3986), no segments come
    back and the caller answers 404 rather than guess.
    """
    if not path.startswith(prefix):
        return []
    rest = path[len(prefix) :]
    return rest.split("/") if rest else []


def split_package(parts: list[str]) -> tuple[str, list[str]] | None:
    """(raw name segment, remaining segments) for a path that starts with a package name.

    ``@scope%2fname`` is one segment; ``@scope/name`` (tarball URLs) takes two.
    None when there is no name at all.
    """
    if not parts or not parts[0]:
        return None
    first = parts[0]
    if first.startswith("@") and "%2f" not in first.lower():
        if len(parts) < 2 or not parts[1]:
            return None
        return f"{first}/{parts[1]}", parts[2:]
    return first, parts[1:]


def decode_segment(raw: str) -> str:
    """Percent-decode one raw segment exactly once; InvalidValue if not UTF-8."""
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidValue("path segment is not UTF-8 after percent-decoding") from None


# npm logout puts the token itself in the URL: DELETE /-/user/token/<token>.
LOGOUT_PREFIX = "/-/user/token/"
REDACTED = "[redacted]"


def redact_path(path: str) -> str:
    """``path`` as logs may keep it: a token in a logout URL is replaced by ``[redacted]``.

    Every place that writes a request path somewhere (the access log, the debug
    log, error logs) passes it through here first.
    """
    if path.startswith(LOGOUT_PREFIX) and len(path) > len(LOGOUT_PREFIX):
        return LOGOUT_PREFIX + REDACTED
    return path


# -- request bodies --------------------------------------------------------------


def media_type(req: falcon.Request) -> str:
    """The bare media type of the body, lower case ('' when absent)."""
    return (req.content_type or "").split(";", 1)[0].strip().lower()


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The request body, decoded from ``Content-Encoding: gzip``, at most ``limit`` bytes.

    A declared Content-Length over the limit is refused before reading; the
    bytes are counted while they stream in and again after decompression.
    """
    declared = req.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    # Without a length, only a chunked body has an end the server marks (gunicorn's
    # wsgi.input stops there); bounded_stream would read nothing.
    stream = req.stream if declared is None and chunked else req.bounded_stream
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = (req.get_header("Content-Encoding") or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, limit)
    if encoding not in ("identity", ""):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported")
    return body


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress one gzip member, refusing output over ``limit`` bytes (zip bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while pending and not inflater.eof:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise PayloadTooLarge(f"decompressed body is over the {limit}-byte limit")
            pending = inflater.unconsumed_tail
    except zlib.error:
        raise BadRequest("body is not valid gzip") from None
    if not inflater.eof:
        raise BadRequest("gzip body is truncated")
    return bytes(out)


def nesting_exceeds(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``doc`` nest deeper than ``limit`` (no recursion)."""
    if not isinstance(doc, dict | list):
        return False
    if limit < 1:
        return True
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes) -> Any:
    """Parse a JSON document; BadRequest when invalid or nested too deeply.

    The C parser recurses once per level but stops at the interpreter's
    recursion limit with RecursionError (answered 400 here), so hostile
    nesting costs at most ~1000 frames; the tighter ``MAX_JSON_DEPTH`` is then
    checked on the result without recursion. Counting brackets first skips
    that walk for the usual publish (few brackets around one long string).
    """
    try:
        doc = json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest("body is not valid JSON") from None
    few = data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH
    if not few and nesting_exceeds(doc):
        raise BadRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


def read_json(req: falcon.Request, limit: int) -> Any:
    """The JSON body of a write route: content type checked, size limited, parsed."""
    kind = media_type(req)
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, not {kind or 'nothing'!r}"
        )
    return parse_json(read_body(req, limit))


def read_json_object(req: falcon.Request, limit: int) -> dict[str, Any]:
    """Like :func:`read_json`, but the document must be an object."""
    body = read_json(req, limit)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def refuse_large_body(req: falcon.Request, limit: int) -> None:
    """For write routes that take no body: still refuse a declared body over the limit."""
    declared = req.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")


# -- responses -------------------------------------------------------------------


class RenderedLike(Protocol):
    """What the registry's ``Rendered`` offers: JSON bytes, gzip bytes, a strong ETag."""

    @property
    def body(self) -> bytes: ...

    @property
    def gzip(self) -> bytes: ...

    @property
    def etag(self) -> str: ...


def accepts_gzip(req: falcon.Request) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (q=0 refuses it)."""
    header = req.get_header("Accept-Encoding") or ""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        return weight > 0
    return False


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip variant: a different representation needs its own tag."""
    if etag.endswith('"'):
        return etag[:-1] + '-gz"'
    return etag + "-gz"


def not_modified(req: falcon.Request, *etags: str) -> bool:
    """Whether ``If-None-Match`` names any of ``etags`` (or ``*``); weak comparison."""
    header = req.get_header("If-None-Match")
    if not header:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or any(tag.removeprefix("W/") in wanted for tag in etags)


def send_json(req: falcon.Request, resp: falcon.Response, rendered: RenderedLike) -> None:
    """Send a pre-rendered JSON document with ETag, 304 and gzip when accepted."""
    resp.content_type = falcon.MEDIA_JSON
    resp.vary = VARY
    zipped = accepts_gzip(req)
    etag = gzip_etag(rendered.etag) if zipped else rendered.etag
    resp.set_header("ETag", etag)
    if not_modified(req, rendered.etag, gzip_etag(rendered.etag)):
        send_not_modified(resp)
        return
    if zipped:
        resp.set_header("Content-Encoding", "gzip")
        resp.data = rendered.gzip
    else:
        resp.data = rendered.body


def send_not_modified(resp: falcon.Response) -> None:
    """304: headers only (a 304 carries no Content-Type)."""
    resp.status = falcon.HTTP_304
    resp.content_type = None


def send_media(resp: falcon.Response, body: Any, status: str = falcon.HTTP_200) -> None:
    """Send a small JSON document built per request."""
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps(body, separators=(",", ":")).encode()


# -- credentials -----------------------------------------------------------------


def bearer_token(req: falcon.Request) -> str | None:
    """The key a request carries, or None.

    ``Bearer <key>`` is what npm, pnpm, yarn and bun send from ``_authToken``;
    ``Basic`` carries it as the password (legacy clients with ``_auth``).
    A header in any other form is treated as a bad key, not as no key.
    """
    header = req.get_header("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ""
        return decoded.partition(":")[2]
    return ""


# -- other host names ---------------------------------------------------------------


@dataclass(frozen=True)
class _Rebased:
    body: bytes
    gzip: bytes
    etag: str


class HostRebaser:
    """Documents for R13_ALLOWED_HOSTS carry tarball links on the host that was asked.

    The registry renders every document once, with R13_PUBLIC_URL. A request
    whose Host is listed in R13_ALLOWED_HOSTS gets a copy whose ``dist.tarball``
    links use that host (same scheme and path prefix); any other Host — forged
    or not — gets the public URL, so nothing a client sends can reach a
    document served to someone else. Copies are cached per (ETag, host).
    """

    MAX_CACHED = 1024

    def __init__(self, public_url: str, allowed_hosts: tuple[str, ...]) -> None:
        scheme, _, rest = public_url.partition("://")
        host, slash, path = rest.partition("/")
        self.scheme = scheme
        self.public_host = host.lower()
        self.path = (slash + path).rstrip("/")
        self.allowed = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self.needle = f'"tarball":"{public_url}/'.encode()
        self._cache: dict[tuple[str, str], _Rebased] = {}

    def base_for(self, req: falcon.Request) -> str | None:
        """The base URL for this request's Host, or None for the public URL."""
        if not self.allowed:
            return None
        host = (req.get_header("Host") or "").strip().lower()
        if not host or host == self.public_host:
            return None
        if host in self.allowed or host.rsplit(":", 1)[0] in self.allowed:
            return f"{self.scheme}://{host}{self.path}"
        return None

    def apply(self, req: falcon.Request, rendered: RenderedLike) -> RenderedLike:
        """``rendered`` as this request's host should see it."""
        base = self.base_for(req)
        if base is None:
            return rendered
        key = (rendered.etag, base)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        body = rendered.body.replace(self.needle, f'"tarball":"{base}/'.encode())
        tag = hashlib.sha1(base.encode()).hexdigest()[:8]
        etag = (
            rendered.etag[:-1] + f"-{tag}" + '"' if rendered.etag.endswith('"') else rendered.etag
        )
        rebased = _Rebased(body, gzip.compress(body, 6), etag)
        if len(self._cache) >= self.MAX_CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = rebased
        return rebased
