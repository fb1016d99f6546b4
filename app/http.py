"""HTTP plumbing the resources share: raw paths, bodies, JSON, caching headers, auth.

Nothing here knows about packages; it turns requests into plain values and
plain values into responses, raising r13core's domain errors so that the one
table in ``app/errors.py`` picks the status.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import zlib
from typing import Any, Protocol
from urllib.parse import quote, unquote

import falcon
from gunicorn.http.errors import NoMoreData, ParseException

from r13core import jsonsafe
from r13core.errors import BadRequest, InvalidValue, PayloadTooLarge, UnsupportedMediaType

CHUNK = 64 * 1024
# Deeper arrays/objects are refused (npm documents nest a few levels).
MAX_JSON_DEPTH = jsonsafe.MAX_DEPTH
JSON_TYPES = frozenset({"application/json"})
ABBREVIATED = "application/vnd.npm.install-v1+json"
VARY = ("Accept", "Accept-Encoding")
VARY_VALUE = ", ".join(VARY)


# -- paths ----------------------------------------------------------------------

PATH_SAFE = "/@:!$&'()*+,;=-._~"
"""What :func:`raw_path` leaves unescaped when it encodes a decoded path again."""


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
    return quote(req.path, safe=PATH_SAFE)


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
    Broken framing is the client's fault and answered 400, never 500: gunicorn's
    ``wsgi.input`` raises its parser errors (a bad chunk size, a missing chunk
    terminator, a bad chunk extension, oversized trailers) and ``NoMoreData``
    (the connection ended inside a chunked body) while the app reads, and a body
    that ends before its Content-Length is refused here rather than parsed as
    if it were whole. A transfer coding other than chunked is refused.
    """
    declared = req.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    codings = [c.strip() for c in (req.get_header("Transfer-Encoding") or "").lower().split(",")]
    # gunicorn removes the chunking but hands gzip/deflate/compress transfer codings to
    # the app as they came; no npm client sends them and r13 does not decode them.
    other = [c for c in codings if c not in ("", "chunked", "identity")]
    if other:
        raise BadRequest(
            f"Transfer-Encoding {', '.join(other)} is not supported (use Content-Encoding: gzip)"
        )
    chunked = "chunked" in codings
    # Without a length, only a chunked body has an end the server marks (gunicorn's
    # wsgi.input stops there); bounded_stream would read nothing.
    stream = req.stream if declared is None and chunked else req.bounded_stream
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"body is over the {limit}-byte limit")
            chunks.append(chunk)
    except (ParseException, NoMoreData) as exc:
        raise BadRequest(f"malformed request body: {_framing_error(exc)}") from None
    except OSError:  # the connection failed (reset, timed out) while the body came in
        raise BadRequest("the request body could not be read: the connection failed") from None
    if declared is not None and total < declared:
        raise BadRequest(f"body ended after {total} of its {declared} declared bytes")
    body = b"".join(chunks)
    encoding = (req.get_header("Content-Encoding") or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, limit)
    if encoding not in ("identity", ""):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported")
    return body


def _framing_error(exc: Exception) -> str:
    """A short, printable reason for a gunicorn body-framing error."""
    if isinstance(exc, NoMoreData):
        return "the connection ended inside a chunked body"
    reason = str(exc).encode("ascii", "backslashreplace").decode("ascii")
    return f"{type(exc).__name__}: {reason[:120]}"


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


def parse_json(data: bytes) -> Any:
    """Parse a JSON body; BadRequest when it is not JSON r13 can store and send back.

    r13core/jsonsafe.py does the work: strict UTF-8, no NaN/Infinity or numbers
    that overflow, no lone UTF-16 surrogates (``"\\ud800"``: stored, it would make
    every later GET of the document fail), nesting at most ``MAX_JSON_DEPTH``.
    Refusing here, where every JSON body is parsed, means such a string is never
    accepted by any write route (publish, deprecate, dist-tags, owners, keys,
    advisories...).
    """
    return jsonsafe.loads(data, what="body", max_depth=MAX_JSON_DEPTH)


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
    # falcon's get_header without its work; clients send a handful of values: remembered.
    return gzip_allowed(req.env.get("HTTP_ACCEPT_ENCODING") or "")


@functools.lru_cache(maxsize=256)
def gzip_allowed(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (q=0 refuses it)."""
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
    return none_match(req.env.get("HTTP_IF_NONE_MATCH"), *etags)


def none_match(header: str | None, *etags: str) -> bool:
    """:func:`not_modified` on the header's value (the hot reads read the environ)."""
    if not header:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or any(tag.removeprefix("W/") in wanted for tag in etags)


def json_answer(
    env: dict[str, Any], rendered: RenderedLike, content_type: str
) -> tuple[bool, list[tuple[str, str]], bytes]:
    """(modified, headers, body) of a pre-rendered JSON document for this request.

    ETag, 304 and gzip when accepted; the one place both the falcon route and the hot
    reads (app/hot_reads.py) decide them. ``modified`` False: a 304, headers only.
    """
    zipped = gzip_allowed(env.get("HTTP_ACCEPT_ENCODING") or "")
    plain = rendered.etag
    etag = gzip_etag(plain) if zipped else plain
    if none_match(env.get("HTTP_IF_NONE_MATCH"), plain, gzip_etag(plain)):
        return False, [("vary", VARY_VALUE), ("etag", etag)], b""
    if zipped:
        return (
            True,
            [
                ("content-type", content_type),
                ("vary", VARY_VALUE),
                ("etag", etag),
                ("content-encoding", "gzip"),
            ],
            rendered.gzip,
        )
    return (
        True,
        [("content-type", content_type), ("vary", VARY_VALUE), ("etag", etag)],
        rendered.body,
    )


def send_json(
    req: falcon.Request,
    resp: falcon.Response,
    rendered: RenderedLike,
    content_type: str = falcon.MEDIA_JSON,
) -> None:
    """Send a pre-rendered JSON document with ETag, 304 and gzip when accepted.

    ``content_type``: the abbreviated packument goes out as
    ``application/vnd.npm.install-v1+json``, as the npm registry sends it.
    """
    send_answer(resp, *json_answer(req.env, rendered, content_type))


def send_answer(
    resp: falcon.Response, modified: bool, headers: list[tuple[str, str]], body: bytes
) -> None:
    """A decided answer (:func:`json_answer`'s shape) into falcon's response: a 304 when
    not ``modified``, the headers (names in lower case), the body."""
    if not modified:
        send_not_modified(resp)
    out = resp._headers  # names already lower case
    for name, value in headers:
        out[name] = value
    if modified:
        resp.data = body


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
    return bearer_of(req.env.get("HTTP_AUTHORIZATION"))


def bearer_of(header: str | None) -> str | None:
    """:func:`bearer_token` of an ``Authorization`` value (None: no header)."""
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
