"""Where a webhook may send: http(s) endpoints on public addresses (no SSRF).

A hook's endpoint is checked when the hook is made or changed, and again at
every delivery *after* its host name is resolved: a name that resolved to a
public address yesterday may resolve to 127.0.0.1 or 169.254.169.254 (cloud
metadata) today. The delivery then connects to the address that was checked
(never resolving the name a second time: no DNS rebinding between check and
connect) and follows no redirect.

Refused unless allowed: every address that is not globally routable —
loopback, private (RFC 1918, ULA), link-local (169.254/16 and its metadata
address, fe80::/10), carrier-grade NAT, multicast, reserved, unspecified —
and IPv4 reached through IPv6 forms (``::ffff:127.0.0.1``). ``R13_HOOKS_ALLOW_PRIVATE=1``
allows all of them; ``R13_HOOKS_ALLOW_CIDRS`` allows only the listed networks.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from r13core.errors import InvalidValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_ENDPOINT: Final = 2048
Resolver = Callable[[str, int], list[str]]


class EndpointRefused(InvalidValue):
    """The endpoint is not one r13 sends to (bad URL, or a private address): 400."""


@dataclass(frozen=True)
class Endpoint:
    """A checked endpoint: scheme, host (as written), port, the path with its query."""

    url: str
    scheme: str
    host: str
    port: int
    target: str


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-public addresses are allowed anyway (R13_HOOKS_ALLOW_PRIVATE / _CIDRS)."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        """Whether r13 may connect to ``address``."""
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped or address.sixtofour
            if mapped is not None:
                address = mapped
        if any(address.version == n.version and address in n for n in self.allowed):
            return True
        if self.allow_private:
            return not address.is_unspecified and not address.is_multicast
        return address.is_global and not address.is_multicast


def parse_endpoint(url: object) -> Endpoint:
    """Check an endpoint URL's form: http or https, a host, no credentials, no fragment."""
    if not isinstance(url, str) or not url.strip():
        raise EndpointRefused("endpoint must be an http:// or https:// URL")
    url = url.strip()
    if len(url) > MAX_ENDPOINT:
        raise EndpointRefused(f"endpoint is longer than {MAX_ENDPOINT} characters")
    if any(c in url for c in " \t\r\n\x00"):
        raise EndpointRefused("endpoint must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointRefused(f"endpoint is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EndpointRefused("endpoint must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("endpoint must not carry credentials (sign with the secret)")
    if parts.fragment:
        raise EndpointRefused("endpoint must not have a #fragment")
    host = parts.hostname or ""
    if not host:
        raise EndpointRefused("endpoint must name a host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if scheme == "https" else 80
    return Endpoint(url, scheme, host, port or default, target)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (cooperative under gevent: its resolver)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise EndpointRefused(f"endpoint host {host!r} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve(
    endpoint: Endpoint, policy: AddressPolicy, resolver: Resolver = system_resolver
) -> list[str]:
    """The endpoint's addresses, every one checked; EndpointRefused if any is not allowed.

    All must pass: a name with one public and one private address is refused
    (the connection could take either).
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(endpoint.host)
    except ValueError:
        literal = None
    addresses = [endpoint.host] if literal is not None else resolver(endpoint.host, endpoint.port)
    if not addresses:
        raise EndpointRefused(f"endpoint host {endpoint.host!r} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not policy.permits(address):
            raise EndpointRefused(
                f"endpoint {endpoint.host} resolves to {address}, a private, loopback, "
                "link-local or reserved address (R13_HOOKS_ALLOW_PRIVATE or "
                "R13_HOOKS_ALLOW_CIDRS allow it)"
            )
    return addresses


def check_endpoint(
    url: object, policy: AddressPolicy, resolver: Resolver = system_resolver
) -> Endpoint:
    """Parse and resolve ``url``, refusing what :func:`resolve` refuses (at hook creation)."""
    endpoint = parse_endpoint(url)
    resolve(endpoint, policy, resolver)
    return endpoint


def parse_cidrs(items: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks from ``10.0.0.0/8``-like strings (InvalidValue names a bad one)."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise InvalidValue(f"{item.strip()!r} is not a network (CIDR)") from None
    return tuple(out)


__all__ = [
    "AddressPolicy",
    "Endpoint",
    "EndpointRefused",
    "check_endpoint",
    "parse_cidrs",
    "parse_endpoint",
    "resolve",
    "system_resolver",
]
