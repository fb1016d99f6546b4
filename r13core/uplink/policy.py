"""Which names may be asked of the upstream at all (docs/uplinks.md, "Never confused").

A name is never asked of the upstream when:

1. it is local: a package here now, or one whose versions were all unpublished
   (its tombstones keep it local) — local packages always win and never merge
   with the upstream's versions of the same name;
2. its scope is private: listed in ``R13_PRIVATE_SCOPES``, or any scope that has
   a local package (``@team/a`` published here makes ``@team/anything`` private),
   so nobody can publish a look-alike upstream and have it installed;
3. the first ``R13_ACCESS_RULES`` rule matching it has a ``proxy`` list without
   this uplink's name (``"proxy": []`` keeps a pattern local; a rule without
   ``proxy`` leaves the default, which is to proxy).

The same decision guards the publish check (r13core/uplink/service.py): a
private or local name is never looked up upstream before a publish either.

Decisions are remembered per process while the storage's package-change signal
(``PackageStorage.packages_version``) stays the same: any commit that adds or
removes a package anywhere moves it, and the next decision is made afresh.
"""

from __future__ import annotations

import threading

from r13core.access import Policy
from r13core.names import PackageName
from r13core.storage.packages import PackageStorage


class ProxyPolicy:
    """The decision over the local packages, the private scopes and the access rules."""

    def __init__(
        self,
        storage: PackageStorage,
        policy: Policy,
        *,
        uplink_name: str = "npmjs",
        private_scopes: tuple[str, ...] = (),
    ) -> None:
        self.storage = storage
        self.policy = policy
        self.uplink_name = uplink_name
        self.private_scopes = frozenset(s.lower() for s in private_scopes)
        self._seen: dict[str, str | None] = {}
        self._seen_at: object = None
        self._lock = threading.Lock()

    def private_scope(self, name: PackageName) -> bool:
        """Whether ``name``'s scope is private (listed, or it has a local package)."""
        scope = name.scope
        if scope is None:
            return False
        scope = scope if scope.startswith("@") else "@" + scope
        return scope.lower() in self.private_scopes or self.storage.scope_in_use(scope)

    def ruled_out(self, name: PackageName) -> bool:
        """Whether the access rules keep ``name`` from this uplink."""
        rule = self.policy.rule_for(str(name))
        return rule is not None and rule.proxy is not None and self.uplink_name not in rule.proxy

    def why_not(self, name: PackageName) -> str | None:
        """Why ``name`` may not be proxied, or None when it may (remembered, see above)."""
        version = self.storage.packages_version()
        key = str(name)
        with self._lock:
            if version == self._seen_at and key in self._seen:
                return self._seen[key]
        reason = self._decide(name)
        with self._lock:
            if version != self._seen_at:
                self._seen, self._seen_at = {}, version
            if len(self._seen) >= 65536:
                self._seen.clear()
            self._seen[key] = reason
        return reason

    def _decide(self, name: PackageName) -> str | None:
        if self.ruled_out(name):
            return "the access rules do not proxy it"
        if self.private_scope(name):
            return "its scope is private"
        if self.storage.name_in_use(str(name)):
            return "it is a local package"
        return None

    def may_proxy(self, name: PackageName) -> bool:
        """Whether ``name`` may be asked of the upstream."""
        return self.why_not(name) is None


__all__ = ["ProxyPolicy"]
