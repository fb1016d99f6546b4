"""npm's signature and provenance routes: the registry's public keys and a version's attestations.

    GET /-/npm/v1/keys                           {keys: [{expires, keyid, keytype, scheme, key}]}
    GET /-/npm/v1/attestations/<name>@<version>  {attestations: [{predicateType, bundle}]}

The keys are public (anyone may fetch them, also in PRIVATE_REGISTRY mode: they
are what a client checks signatures with, and say nothing about packages). The
attestations of a package need what reading the package needs. Attestations
route names arrive as npm spells them (``@scope%2fname@1.0.0``) or unescaped,
so this is a sink that reads the raw path. docs/signatures.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import falcon

from app.auth import Guard
from app.http import raw_path, send_media
from app.service import RegistryService
from r13core.access import Action
from r13core.errors import NotFound
from r13core.names import PackageName
from r13core.registry.attestations import ATTESTATIONS_PATH, parse_spec

ATTESTATIONS_ROUTE: Final = ATTESTATIONS_PATH + "{spec}"
UpstreamAttestations = Callable[[PackageName, str], dict[str, Any]]
"""The uplink's answer for a version that is not local (NotFound when it has none)."""


class RegistryKeys:
    """``GET /-/npm/v1/keys``: r13's signing keys (and the upstream's when proxying)."""

    def __init__(self, keys: Callable[[], dict[str, Any]]) -> None:
        self.keys = keys

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_media(resp, self.keys())
        resp.cache_control = ["public", "max-age=300"]


class Attestations:
    """The sink for ``/-/npm/v1/attestations/<name>@<version>``.

    A local package answers with what its publish kept (404 when it has none); any
    other name goes to ``upstream`` when one is given (the uplink passes the
    upstream's through).
    """

    def __init__(
        self,
        registry: RegistryService,
        guard: Guard,
        *,
        upstream: UpstreamAttestations | None = None,
    ) -> None:
        self.registry = registry
        self.guard = guard
        self.upstream = upstream

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        req.context.route = ATTESTATIONS_ROUTE
        if req.method not in ("GET", "HEAD"):
            raise falcon.HTTPMethodNotAllowed(["GET", "HEAD"])
        name, version = parse_spec(raw_path(req)[len(ATTESTATIONS_PATH) :])
        self.guard.require(req, Action.READ, name)
        try:
            document = self.registry.attestations(name, version)
        except NotFound:
            if self.upstream is None or self._local(name):
                raise  # a local package never takes anything from the upstream
            document = self.upstream(name, version)
        send_media(resp, document)

    def _local(self, name: PackageName) -> bool:
        try:
            self.registry.dist_tags(name)
        except NotFound:
            return False
        return True
