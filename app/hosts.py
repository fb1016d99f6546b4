"""Tarball links on the host a client asked for (R13_ALLOWED_HOSTS), parsed strictly.

The registry renders every document once, with R13_PUBLIC_URL; a request whose
Host names an allowed host gets a copy whose tarball links use that host.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from r13core.errors import InvalidValue

if TYPE_CHECKING:  # `r13 serve` checks the hosts before it loads any of the web layer
    import falcon

    from app.http import RenderedLike


@dataclass(frozen=True)
class _Rebased:
    body: bytes
    gzip: bytes
    etag: str

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzip)


# DNS labels, plus "_" (container and compose service names use it).
_HOST_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def parse_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` as (name, port), or None when it is not a plain host name with a port.

    Strict on purpose: a DNS name (letters, digits, hyphens, underscores, dots), an IPv4
    address or an IPv6 literal in brackets, then optionally ``:`` and 1-5 ASCII
    digits (1..65535). Names come back lower case, IPv6 in canonical form.
    ``reg.example:1@evil.example``, ``reg.example:80:81``, spaces, slashes and
    anything else are None.
    """
    text = value.strip().lower()
    if not text or len(text) > 300:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        try:
            name = f"[{ipaddress.IPv6Address(text[1:end])}]"
        except ValueError:
            return None
        rest = text[end + 1 :]
    else:
        name, colon, port_text = text.partition(":")
        rest = colon + port_text
        labels = name.split(".")
        if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
            return None
    if not rest:
        return name, None
    digits = rest[1:]
    if rest[0] != ":" or not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        return None
    port = int(digits)
    return (name, port) if 1 <= port <= 65535 else None


class HostRebaser:
    """Documents for R13_ALLOWED_HOSTS carry tarball links on the host that was asked.

    The registry renders every document once, with R13_PUBLIC_URL. A request
    whose ``Host`` (parsed strictly, :func:`parse_host`) names a host listed in
    R13_ALLOWED_HOSTS, on a port it allows, gets a copy whose ``dist.tarball``
    links use that host (same scheme and path prefix); any other Host — forged,
    malformed or on another port — gets the public URL, so nothing a client
    sends can reach a document served to someone else. An entry with a port
    (``npm.corp:8080``) allows that port; one without allows no port, the
    public URL's port and the port r13 listens on (REGISTRY_PORT). So the hosts
    a copy can be made for are a fixed, small set; the copies are kept in an
    LRU cache bounded by count and by bytes.
    """

    MAX_CACHED = 256
    MAX_CACHED_BYTES = 32 * 1024 * 1024

    def __init__(
        self,
        public_url: str,
        allowed_hosts: tuple[str, ...],
        *,
        listen_port: int | None = None,
        max_cached: int = MAX_CACHED,
        max_cached_bytes: int = MAX_CACHED_BYTES,
    ) -> None:
        scheme, _, rest = public_url.partition("://")
        netloc, slash, path = rest.partition("/")
        self.scheme = scheme.lower()
        self.path = (slash + path).rstrip("/")
        default = _DEFAULT_PORTS.get(self.scheme)
        public = parse_host(netloc)
        public_port = (public[1] if public else None) or default
        self.public = None if public is None else (public[0], public[1] or default)
        # Every (name, port) a copy may be made for -> its base URL.
        self._bases: dict[tuple[str, int | None], str] = {}
        for entry in allowed_hosts:
            if not entry.strip():
                continue
            parsed = parse_host(entry)
            if parsed is None:
                raise InvalidValue(
                    f"R13_ALLOWED_HOSTS: {entry.strip()!r} is not a host name with an optional "
                    "port (e.g. npm.corp or npm.corp:8080)"
                )
            name, port = parsed
            ports = {port} if port is not None else {None, public_port, listen_port}
            for p in ports:
                shown = "" if p is None or p == default else f":{p}"
                self._bases[(name, p)] = f"{self.scheme}://{name}{shown}{self.path}"
        self.needle = f'"tarball":"{public_url}/'.encode()
        self.max_cached = max_cached
        self.max_cached_bytes = max_cached_bytes
        self._cache: OrderedDict[tuple[str, str], _Rebased] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def base_for(self, req: falcon.Request) -> str | None:
        """The base URL for this request's Host, or None for the public URL."""
        return self.base_for_host(req.env.get("HTTP_HOST") or "")

    def base_for_host(self, host: str) -> str | None:
        """The base URL for a ``Host`` value, or None for the public URL."""
        if not self._bases:
            return None
        parsed = parse_host(host)
        if parsed is None:
            return None
        name, port = parsed
        if (
            self.public is not None
            and (name, port or _DEFAULT_PORTS.get(self.scheme)) == self.public
        ):
            return None
        return self._bases.get(parsed)

    def apply(self, req: falcon.Request, rendered: RenderedLike) -> RenderedLike:
        """``rendered`` as this request's host should see it."""
        return self.apply_host(req.env.get("HTTP_HOST") or "", rendered)

    def apply_host(self, host: str, rendered: RenderedLike) -> RenderedLike:
        """``rendered`` as a request with this ``Host`` value should see it."""
        base = self.base_for_host(host)
        if base is None:
            return rendered
        key = (rendered.etag, base)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        body = rendered.body.replace(self.needle, f'"tarball":"{base}/'.encode())
        tag = hashlib.sha1(base.encode()).hexdigest()[:8]
        etag = (
            rendered.etag[:-1] + f"-{tag}" + '"' if rendered.etag.endswith('"') else rendered.etag
        )
        rebased = _Rebased(body, gzip.compress(body, 6), etag)
        if rebased.size > self.max_cached_bytes // 4:
            return rebased  # too big to keep: a handful would evict everything else
        with self._lock:
            if key not in self._cache:
                self._cache[key] = rebased
                self._cached_bytes += rebased.size
            while len(self._cache) > self.max_cached or self._cached_bytes > self.max_cached_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.size
        return rebased

    def cache_stats(self) -> tuple[int, int]:
        """(copies cached, their bytes): for tests and the curious."""
        with self._lock:
            return len(self._cache), self._cached_bytes
