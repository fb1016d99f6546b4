"""The one place that decides whether a caller may do something.

identity x action x package -> allow, or an error that says why. Every
resource asks :meth:`Policy.authorize` (or the module-level :func:`authorize`
for the default policy); no other code compares permissions.

The checks, in order:

1. the key's CIDR allow-list (a key used from elsewhere: 401 with
   ``WWW-Authenticate: ipaddress``, which npm explains to the user);
2. the permission the action needs (``read`` for reads when PRIVATE_REGISTRY is
   on, nothing otherwise; ``write`` for package changes; ``admin`` for admin
   routes): no key 401, too weak a key 403;
3. the key's package patterns (outside them: 403; a scoped key never administers);
4. the first access rule whose glob matches the package (Verdaccio's ordered
   ``packages`` section: access, publish, unpublish, proxy);
5. ownership: changing an existing package (new versions, deprecate,
   unpublish, dist-tags, owners) needs one of its maintainers, or an admin.

Principals have distinct names (docs/identity.md, "Principals"): a user is its
user name (``alice``), a bare key is ``key:<id>`` (``key:ci-publish``), so no
user can ever be taken for a key in maintainers or rules. A key limited to
packages is never an admin here, whatever permission it was given.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from r13core.errors import Forbidden, InvalidValue, Unauthorized
from r13core.keys import KEY_PRINCIPAL, KeyInfo, Permission
from r13core.patterns import Pattern, compile_pattern, matches_any, parse_pattern


class Action(enum.Enum):
    """Things a caller can ask to do."""

    READ = "read"
    PUBLISH = "publish"
    UNPUBLISH = "unpublish"
    DEPRECATE = "deprecate"
    DIST_TAG = "dist-tag"
    OWNER = "owner"
    HOOK = "hook"
    """Manage webhooks (r13core/hooks/): one's own, or (an admin) anyone's."""
    ADMIN = "admin"


_NEEDS: Final[dict[Action, Permission]] = {
    Action.READ: Permission.READ,
    Action.PUBLISH: Permission.WRITE,
    Action.UNPUBLISH: Permission.WRITE,
    Action.DEPRECATE: Permission.WRITE,
    Action.DIST_TAG: Permission.WRITE,
    Action.OWNER: Permission.WRITE,
    Action.HOOK: Permission.WRITE,
    Action.ADMIN: Permission.ADMIN,
}
# Which field of a rule governs an action (Verdaccio puts deprecate and tags under publish).
_READ: Final = Action.READ
_RULE_FIELD: Final[dict[Action, str]] = {
    Action.READ: "access",
    Action.PUBLISH: "publish",
    Action.DEPRECATE: "publish",
    Action.DIST_TAG: "publish",
    Action.OWNER: "publish",
    Action.UNPUBLISH: "unpublish",
}
_OWNED: Final = frozenset(
    {Action.PUBLISH, Action.UNPUBLISH, Action.DEPRECATE, Action.DIST_TAG, Action.OWNER}
)
_LEVELS: Final = {"$read": Permission.READ, "$write": Permission.WRITE, "$admin": Permission.ADMIN}
_SPECIAL: Final = frozenset({"$all", "$anonymous", "$authenticated", *_LEVELS})
# $group, a user name (plain or user:<name>), or key:<id> (any key with that id).
_WHO_RE: Final = re.compile(
    r"\$[a-z]+|(?:user:)?[a-z0-9][a-z0-9._-]{0,63}|key:[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
)
MAX_RULES: Final = 1024


def required_permission(action: Action, *, private: bool) -> Permission | None:
    """The least permission ``action`` needs (None: anyone, even without a key)."""
    if action is Action.READ and not private:
        return None
    return _NEEDS[action]


__all__ = [
    "Action",
    "Policy",
    "Rule",
    "grants",
    "is_admin",
    "matches_any",
    "may_revoke",
    "parse_rules",
    "required_permission",
]


def is_admin(identity: KeyInfo | None) -> bool:
    """Whether ``identity`` administers: admin permission and no package limits."""
    return (
        identity is not None and identity.permission >= Permission.ADMIN and not identity.packages
    )


def grants(identity: KeyInfo, permission: Permission) -> bool:
    """Whether ``identity``'s permission includes ``permission`` (read ⊂ write ⊂ admin)."""
    return identity.permission >= permission


def may_revoke(caller: KeyInfo, target: KeyInfo) -> bool:
    """Whether ``caller`` may revoke the key ``target`` (``npm token revoke``).

    Its own tokens (the same user's, or the very key it calls with); any key for an
    admin (a key limited to packages never is one).
    """
    if target.id == caller.id or (caller.owner is not None and target.owner == caller.owner):
        return True
    return is_admin(caller)


@dataclass(frozen=True)
class Rule:
    """One entry of the ordered rules: who may access, publish, unpublish a pattern.

    Each field lists who: ``$all``, ``$anonymous``, ``$authenticated``,
    ``$read``/``$write``/``$admin`` (a key with at least that permission; a key
    limited to packages is never ``$admin``), user names (``alice`` or
    ``user:alice``: the user's tokens) or ``key:<id>`` (that key). ``proxy``
    names the uplinks the pattern's names may be fetched from when PROXY_MODE is
    on (r13core/uplink/policy.py): None (the field left out) keeps the default
    (proxied), ``[]`` keeps them local.
    """

    pattern: str
    access: tuple[str, ...] = ("$all",)
    publish: tuple[str, ...] = ("$write",)
    unpublish: tuple[str, ...] = ("$write",)
    proxy: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``proxy`` only when the rule sets it)."""
        out: dict[str, Any] = {
            "package": self.pattern,
            "access": list(self.access),
            "publish": list(self.publish),
            "unpublish": list(self.unpublish),
        }
        if self.proxy is not None:
            out["proxy"] = list(self.proxy)
        return out


def _who(value: object, where: str) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
        raise InvalidValue(f"{where}: a list of names or $all/$authenticated/$read/...")
    for item in items:
        if not _WHO_RE.fullmatch(item) or (item.startswith("$") and item not in _SPECIAL):
            raise InvalidValue(f"{where}: {item!r} is not a user name, key:<id> or known $group")
    return tuple(items)


def parse_rules(doc: object) -> tuple[Rule, ...]:
    """Rules from JSON ``[{"package": glob, "access", "publish", "unpublish", "proxy"}]``.

    InvalidValue names the first bad entry (config errors fail fast).
    """
    if not isinstance(doc, list):
        raise InvalidValue("access rules must be a JSON list of objects")
    if len(doc) > MAX_RULES:
        raise InvalidValue(f"more than {MAX_RULES} access rules")
    rules = []
    for n, entry in enumerate(doc):
        where = f"access rule {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("package"), str):
            raise InvalidValue(f"{where}: needs a 'package' glob")
        parse_pattern(entry["package"], f"{where}.package")
        unknown = set(entry) - {"package", "access", "publish", "unpublish", "proxy"}
        if unknown:
            raise InvalidValue(f"{where}: unknown field(s) {sorted(unknown)}")
        default = Rule(entry["package"])
        rules.append(
            Rule(
                entry["package"],
                _who(entry.get("access", list(default.access)), f"{where}.access"),
                _who(entry.get("publish", list(default.publish)), f"{where}.publish"),
                _who(entry.get("unpublish", list(default.unpublish)), f"{where}.unpublish"),
                _who(entry["proxy"], f"{where}.proxy") if "proxy" in entry else None,
            )
        )
    return tuple(rules)


def load_rules(path: str | Path) -> tuple[Rule, ...]:
    """Rules from a JSON file; InvalidValue naming the file on any problem."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidValue(f"access rules {path}: {exc}") from None
    try:
        return parse_rules(doc)
    except InvalidValue as exc:
        raise InvalidValue(f"access rules {path}: {exc}") from None


def _in(who: tuple[str, ...], identity: KeyInfo | None) -> bool:
    for entry in who:
        if entry == "$all":
            return True
        if identity is None:
            if entry == "$anonymous":
                return True
            continue
        if entry == "$authenticated":
            return True
        level = _LEVELS.get(entry)
        if level is not None:
            if level is Permission.ADMIN and not is_admin(identity):
                continue
            if identity.permission >= level:
                return True
        elif entry.startswith(KEY_PRINCIPAL):
            if entry[len(KEY_PRINCIPAL) :] == identity.id:
                return True
        elif identity.owner is not None and entry.removeprefix("user:") == identity.owner:
            return True
    return False


def client_in(identity: KeyInfo, client_ip: str | None) -> bool:
    """Whether ``client_ip`` is inside the key's CIDR allow-list (True when it has none)."""
    if not identity.cidr:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in identity.cidr)


class Policy:
    """The decision point: ordered package rules plus the fixed checks above."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self._compiled: list[tuple[Pattern, Rule]] = [
            (compile_pattern(r.pattern), r) for r in self.rules
        ]
        self._rule_cache: dict[str, Rule | None] = {}
        self._scope_cache: dict[tuple[tuple[str, ...], str], bool] = {}

    def rule_for(self, package: str) -> Rule | None:
        """The first rule whose pattern matches ``package`` (cached per name)."""
        try:
            return self._rule_cache[package]
        except KeyError:
            pass
        found = next((rule for glob, rule in self._compiled if glob.match(package)), None)
        if len(self._rule_cache) > 65536:
            self._rule_cache.clear()
        self._rule_cache[package] = found
        return found

    def _in_scope(self, patterns: tuple[str, ...], package: str) -> bool:
        key = (patterns, package)
        hit = self._scope_cache.get(key)
        if hit is None:
            hit = matches_any(patterns, package)
            if len(self._scope_cache) > 65536:
                self._scope_cache.clear()
            self._scope_cache[key] = hit
        return hit

    def authorize(
        self,
        identity: KeyInfo | None,
        action: Action,
        *,
        private: bool,
        package: str | None = None,
        client_ip: str | None = None,
        owners: Iterable[str] | None = None,
    ) -> None:
        """Return if ``identity`` may do ``action`` on ``package``; raise why not.

        ``identity``: an authenticated key (None: no credentials). ``private``:
        the live PRIVATE_REGISTRY flag. ``client_ip``: where the request comes
        from (for the key's CIDR list). ``owners``: the names of the package's
        maintainers when it exists (None for a new package or a read); callers
        that look them up only when needed ask :meth:`owner_decides` first.
        Raises Unauthorized (401) or Forbidden (403) with the reason.
        """
        if identity is not None:
            if identity.revoked:
                raise Unauthorized("invalid, revoked or expired key")
            if identity.cidr and not client_in(identity, client_ip):
                raise Unauthorized(
                    f"key {identity.id!r} may not be used from {client_ip}",
                    www_authenticate="ipaddress",
                )
            # Inlined required_permission(): this runs on every request.
            if action is not _READ or private:
                needed = _NEEDS[action]
                if identity.permission < needed:
                    raise Forbidden(
                        f"key {identity.id!r} has {identity.permission.name.lower()} "
                        f"permission; {action.value} needs {needed.name.lower()}"
                    )
        elif action is not _READ or private:
            needed = _NEEDS[action]
            raise Unauthorized(f"{action.value} needs a key with {needed.name.lower()} permission")
        if identity is not None and identity.packages:
            if package is None:
                if action is Action.ADMIN:
                    raise Forbidden(f"key {identity.id!r} is limited to some packages")
            elif not self._in_scope(identity.packages, package):
                raise Forbidden(f"key {identity.id!r} may not touch {package}")
        if package is None:
            return
        if self._compiled and not is_admin(identity):
            rule = self.rule_for(package)
            if rule is not None:
                field = _RULE_FIELD.get(action)
                if field is not None and not _in(getattr(rule, field), identity):
                    if identity is None:
                        raise Unauthorized(f"{action.value} of {package} needs a key")
                    raise Forbidden(f"{identity.username!r} may not {action.value} {package}")
        if owners is not None:
            self.check_owner(identity, action, package, owners)

    def allows(
        self,
        identity: KeyInfo | None,
        action: Action,
        *,
        private: bool,
        package: str | None = None,
        client_ip: str | None = None,
    ) -> bool:
        """:meth:`authorize` as a yes/no (for filtering listings: search, audits)."""
        try:
            self.authorize(identity, action, private=private, package=package, client_ip=client_ip)
        except (Unauthorized, Forbidden):
            return False
        return True

    def reader(
        self, identity: KeyInfo | None, *, private: bool, client_ip: str | None = None
    ) -> Callable[[str], bool]:
        """``package -> bool``: whether ``identity`` may read it (what a GET would answer)."""

        def visible(package: str) -> bool:
            return self.allows(
                identity, Action.READ, private=private, package=package, client_ip=client_ip
            )

        return visible

    def check_hook(
        self,
        identity: KeyInfo | None,
        *,
        owner: str,
        watches: tuple[str, str] | None = None,
        private: bool,
        client_ip: str | None = None,
    ) -> None:
        """Whether ``identity`` may manage a webhook of ``owner`` (Forbidden says why not).

        A caller manages its own hooks (made under its name), an admin everyone's.
        ``watches`` (type, name), when a hook is made: a ``package`` or ``scope``
        hook needs read access to what it watches (its events carry the
        package's documents), an ``owner`` hook watches the caller's own
        packages unless an admin makes it.
        """
        self.authorize(identity, Action.HOOK, private=private, client_ip=client_ip)
        assert identity is not None  # authorize() lets no anonymous write through
        admin = is_admin(identity)
        if not admin and identity.username != owner:
            raise Forbidden(
                f"{identity.username!r} may not manage a hook of {owner!r} "
                "(a hook is managed by whoever made it, or an admin)"
            )
        if watches is None:
            return
        kind, name = watches
        if kind == "owner":
            if not admin and name != identity.username:
                raise Forbidden(
                    f"an owner hook of {identity.username!r} watches its own packages, "
                    f"not {name!r}'s (an admin may watch anyone's)"
                )
            return
        probe = name if kind == "package" else f"{name}/*"
        self.authorize(identity, Action.READ, private=private, package=probe, client_ip=client_ip)

    @staticmethod
    def owner_decides(identity: KeyInfo | None, action: Action) -> bool:
        """Whether the package's maintainers matter for ``identity`` doing ``action``."""
        return action in _OWNED and identity is not None and not is_admin(identity)

    @staticmethod
    def check_owner(
        identity: KeyInfo | None, action: Action, package: str, owners: Iterable[str]
    ) -> None:
        """Changing an existing package needs one of its maintainers (or an admin); 403 if not.

        ``owners`` are maintainer names as stored: user names, ``key:<id>`` for keys.
        """
        if not Policy.owner_decides(identity, action):
            return
        assert identity is not None
        if identity.username not in owners:
            raise Forbidden(
                f"{identity.username!r} is not a maintainer of {package}; "
                f"{action.value} needs a maintainer or an admin"
            )


DEFAULT_POLICY: Final = Policy()


def authorize(
    identity: KeyInfo | None,
    action: Action,
    *,
    private: bool,
    package: str | None = None,
    client_ip: str | None = None,
    owners: Iterable[str] | None = None,
) -> None:
    """:meth:`Policy.authorize` with no package rules."""
    DEFAULT_POLICY.authorize(
        identity, action, private=private, package=package, client_ip=client_ip, owners=owners
    )
