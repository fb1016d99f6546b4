"""Operations on principals — keys, npm tokens, users — each writing its own audit event.

This is what every front end calls: the admin API and npm's token and logout routes
(app/resources/), the ``r13`` command line (app/cli/) and, next, the terminal. They
parse their input, say who acts (:class:`r13core.audit.Actor`: a principal and the
client address) and show the result; the rule, the change and its audit event are
here. Each operation that changes something appends exactly one event, after the
change has committed (a failure to append is logged, never undoes the change):

======================  ===============  =====================================
operation               action           detail
======================  ===============  =====================================
``create_key``          key.create       permission, bootstrap
``rotate_key``          key.rotate
``revoke_key``          key.revoke
``issue_login_token``   login            method (legacy, web)
``create_token``        token.create     readonly, cidr, packages
  (wrong password)      token.create.failed
``revoke_token``        token.revoke
``logout``              logout
``add_user``            user.add         role, reclaim
``set_password``        user.passwd      revoked (key ids)
``set_role``            user.role        role, revoked (key ids)
``remove_user``         user.remove
======================  ===============  =====================================

npm's login flows (legacy, web, signup) are in r13core/logins.py, blocks in
r13core/abuse.py, changes of the 13-byte record in r13core/config_changes.py.
:class:`r13core.keys.KeyStore` and :class:`r13core.users.UserStore` underneath keep
keys and users in storage and know nothing of the audit log. Whether a caller may do
something is decided in r13core/access.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from r13core.access import is_admin, may_revoke
from r13core.audit import Actor, AuditLog
from r13core.errors import Forbidden, NameTaken, NotFound, Unauthorized
from r13core.keys import KeyInfo, KeyStore, Permission, capped_days
from r13core.storage.base import Storage
from r13core.users import Role, User, UserStore

FIRST_ADMIN_ID = "admin"
"""The id of `r13 serve`'s first admin key (``admin-N`` when a user or key has it)."""
MAX_TOKEN_LABEL = 200
SESSION_OF = "dashboard session of "
"""How a dashboard session's description begins (r13core/sessions.py): then its principal."""


def _ended(ids: list[str]) -> dict[str, list[str]]:
    """The audit detail naming the sessions a key change ended (none: no detail)."""
    return {"sessions": ids} if ids else {}


def expiry_days(ms: int) -> float | None:
    """SECURITY_API_KEY_EXPIRY (milliseconds; 0 = none) in days, as keys take it."""
    return ms / 86_400_000 if ms else None


class Identity:
    """The audited operations on keys, tokens and users of one storage.

    ``token_days``: how long a token made through npm (login, ``npm token create``)
    lives at most, and by default (None: no limit) — SECURITY_API_KEY_EXPIRY.
    """

    def __init__(
        self, keys: KeyStore, users: UserStore, audit: AuditLog, *, token_days: float | None = None
    ) -> None:
        self.keys = keys
        self.users = users
        self.audit = audit
        self.token_days = token_days

    @classmethod
    def over(cls, storage: Storage, *, token_days: float | None = None) -> Identity:
        """The operations over ``storage``'s keys, users and audit log."""
        return cls(KeyStore(storage), UserStore(storage), AuditLog(storage), token_days=token_days)

    # -- keys (the admin API, `r13 keys`, `r13 serve`) --------------------------------

    def has_live_admin(self) -> bool:
        """Whether some key that works now (not revoked, not expired) administers."""
        return any(is_admin(k) for k in self.keys.live())

    def may_bootstrap(self, *, local: bool) -> bool:
        """Whether a request without credentials may create a key now.

        Only a local one (from this machine, not through a proxy: r13core/abuse.py
        ``is_local``) and only while no live admin key exists: how a fresh install
        that lost its first key gets one. After that, never.
        """
        return local and not self.has_live_admin()

    def create_key(
        self,
        actor: Actor,
        key_id: str,
        permission: Permission,
        expires_days: float | None,
        *,
        owner: str | None = None,
        rate_limit: int | None = None,
        cidr: Iterable[object] = (),
        packages: Iterable[object] = (),
        description: str = "",
        bootstrap: bool = False,
    ) -> tuple[KeyInfo, str]:
        """Create a key (:meth:`KeyStore.create`); its info and secret, shown this once.

        ``owner`` must be an existing user (NotFound otherwise). ``bootstrap``: made
        under :meth:`may_bootstrap` or by :meth:`first_admin_key` (the event says so).
        """
        if owner is not None:
            self.users.get(owner)
        info, secret = self.keys.create(
            key_id,
            permission,
            expires_days,
            owner=owner,
            rate_limit=rate_limit,
            cidr=cidr,
            packages=packages,
            description=description,
        )
        self.audit.safe_record_by(
            actor,
            "key.create",
            info.id,
            permission=Permission(permission).name.lower(),
            bootstrap=bootstrap,
        )
        return info, secret

    def create_keys(
        self,
        actor: Actor,
        key_ids: Sequence[str],
        permission: Permission,
        expires_days: float | None,
        *,
        owner: str | None = None,
        rate_limit: int | None = None,
        cidr: Iterable[object] = (),
        packages: Iterable[object] = (),
        description: str = "",
    ) -> list[tuple[KeyInfo, str]]:
        """Several keys alike but for their ids, as one change (:meth:`KeyStore.create_many`).

        All are stored in one commit, or none (NameTaken for a taken or repeated id).
        One audit event ``key.create`` names them all (``ids``; its target is the
        first and last id), as one change writes one event.
        """
        if owner is not None:
            self.users.get(owner)
        made = self.keys.create_many(
            key_ids,
            permission,
            expires_days,
            owner=owner,
            rate_limit=rate_limit,
            cidr=cidr,
            packages=packages,
            description=description,
        )
        ids = [info.id for info, _ in made]
        self.audit.safe_record_by(
            actor,
            "key.create",
            ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}",
            permission=Permission(permission).name.lower(),
            ids=ids,
            count=len(ids),
        )
        return made

    def first_admin_key(self) -> tuple[KeyInfo, str] | None:
        """`r13 serve`'s first admin key, made unless an unrevoked admin key exists.

        An expired admin key counts as existing (its holder renews it through another
        admin key or the local bootstrap; a restart does not hand out a new secret).
        The key never expires: it is how the operator makes every other key. Its id
        is ``admin``, or ``admin-N`` when a user or key has (or had) that name.
        """
        keys = self.keys.list()
        if any(is_admin(k) and not k.revoked for k in keys):
            return None
        key_id, n = FIRST_ADMIN_ID, len(keys)
        while True:
            try:
                return self.create_key(
                    Actor.system(), key_id, Permission.ADMIN, None, bootstrap=True
                )
            except NameTaken:
                key_id, n = f"{FIRST_ADMIN_ID}-{n}", n + 1

    def rotate_key(self, actor: Actor, key_id: str) -> tuple[KeyInfo, str]:
        """A new secret for ``key_id``, the old one dead at once; NotFound, or InvalidValue
        for a revoked key."""
        info, secret = self.keys.rotate(key_id)
        ended = self.end_sessions(f"key:{key_id}")
        self.audit.safe_record_by(actor, "key.rotate", key_id, **_ended(ended))
        return info, secret

    def revoke_key(self, actor: Actor, key_id: str) -> None:
        """Revoke ``key_id`` at once, in every worker, and the dashboard sessions opened
        with it; NotFound if unknown."""
        self.keys.revoke(key_id)
        ended = self.end_sessions(f"key:{key_id}")
        self.audit.safe_record_by(actor, "key.revoke", key_id, **_ended(ended))

    def end_sessions(self, principal: str) -> list[str]:
        """Revoke every live dashboard session of ``principal`` (``user:<name>`` or
        ``key:<id>``, r13core/sessions.py); the ids revoked."""
        mark = SESSION_OF + principal
        ended = []
        for info in self.keys.live():
            if info.id.startswith("session-") and info.description == mark:
                self.keys.revoke(info.id)
                ended.append(info.id)
        return ended

    # -- npm tokens (login, `npm token`, logout) ---------------------------------------

    def issue_login_token(self, user: User, how: str, address: str) -> str:
        """The token a login hands to npm: ``user``'s, capped by its role, expiring after
        ``token_days``; ``how`` is ``legacy`` or ``web``. Audited as the login."""
        info, secret = self.keys.create_token(
            user.name,
            user.role.ceiling,
            capped_days(None, self.token_days),
            description=f"npm login ({how})",
        )
        self.audit.safe_record_by(Actor(user.name, address), "login", info.id, method=how)
        return secret

    @staticmethod
    def token_owner(caller: KeyInfo) -> str:
        """The user a token made by ``caller`` belongs to; Forbidden for a bare key."""
        if caller.owner is None:
            raise Forbidden(
                "tokens are made for users (npm login first); "
                "admins make bare keys with POST /_api/security/keys"
            )
        return caller.owner

    def create_token(
        self,
        owner: str,
        password: str,
        address: str,
        *,
        readonly: bool,
        expires_days: float | None,
        cidr: list[str],
        packages: list[str],
        label: str,
    ) -> tuple[KeyInfo, str]:
        """``npm token create``: a new token of user ``owner``, who proves it with its password.

        Unauthorized for a wrong password (audited as ``token.create.failed``). The
        token reads only when ``readonly`` (else writes), never above the user's role;
        it lives ``expires_days`` (None: the default), at most ``token_days``.
        """
        try:
            user = self.users.authenticate(owner, password)
        except Unauthorized:
            self.audit.safe_record_by(Actor(owner, address), "token.create.failed")
            raise
        permission = Permission.READ if readonly else Permission.WRITE
        info, secret = self.keys.create_token(
            user.name,
            min(permission, user.role.ceiling),
            capped_days(expires_days, self.token_days),
            cidr=cidr,
            packages=packages,
            description=label[:MAX_TOKEN_LABEL],
        )
        self.audit.safe_record_by(
            Actor(user.name, address),
            "token.create",
            info.id,
            readonly=readonly,
            cidr=cidr,
            packages=packages,
        )
        return info, secret

    def tokens_of(self, caller: KeyInfo) -> list[KeyInfo]:
        """``npm token list``: the live tokens of the caller's user (a bare key: itself)."""
        if caller.owner is not None:
            keys = self.keys.owned_by(caller.owner)
        else:
            keys = [self.keys.get(caller.id)]
        return [k for k in keys if not k.revoked]

    def revoke_token(self, caller: KeyInfo, key_id: str, address: str) -> None:
        """``npm token revoke``: the caller's own tokens, or any key for an admin.

        NotFound for a key the caller may not revoke, as for one that does not exist
        (no oracle of other users' token ids).
        """
        try:
            target = self.keys.get(key_id)
        except NotFound:
            raise NotFound(f"no token {key_id!r}") from None
        if not may_revoke(caller, target):
            raise NotFound(f"no token {key_id!r}")
        self.keys.revoke(key_id)
        self.audit.safe_record_by(Actor(caller.username, address), "token.revoke", key_id)

    def logout(self, secret: str, address: str) -> None:
        """npm logout: revoke the token ``secret`` at once; nothing when it is no live token."""
        info = self.keys.revoke_secret(secret)
        if info is not None:
            self.audit.safe_record_by(Actor(info.username, address), "logout", info.id)

    # -- users (`r13 users`) -----------------------------------------------------------

    def add_user(
        self,
        actor: Actor,
        name: str,
        password: str,
        role: Role,
        email: str = "",
        *,
        reclaim: bool = False,
    ) -> User:
        """Add a user (:meth:`UserStore.add`: InvalidValue, NameTaken)."""
        user = self.users.add(name, password, role, email, reclaim=reclaim)
        self.audit.safe_record_by(
            actor, "user.add", user.name, role=user.role.value, reclaim=reclaim
        )
        return user

    def set_password(self, actor: Actor, name: str, password: str) -> list[str]:
        """A new password; every token of the user is revoked with it (the ids returned)."""
        revoked = self.users.set_password(name, password)
        self.audit.safe_record_by(actor, "user.passwd", name, revoked=revoked)
        return revoked

    def reset_password(self, actor: Actor, name: str) -> tuple[str, list[str]]:
        """A new random password (returned once, never stored in clear) and the ids of
        the tokens revoked with the old one; audited as ``user.passwd`` (generated)."""
        password = secrets.token_urlsafe(18)
        revoked = self.users.set_password(name, password)
        self.audit.safe_record_by(actor, "user.passwd", name, revoked=revoked, generated=True)
        return password, revoked

    def set_role(self, actor: Actor, name: str, role: Role) -> tuple[User, list[str]]:
        """A new role; the tokens above its ceiling are revoked (the user and their ids)."""
        user, revoked = self.users.set_role(name, role)
        self.audit.safe_record_by(
            actor, "user.role", user.name, role=user.role.value, revoked=revoked
        )
        return user, revoked

    def remove_user(self, actor: Actor, name: str) -> None:
        """Remove a user and revoke every key it owns; its name stays reserved."""
        self.users.remove(name)
        self.audit.safe_record_by(actor, "user.remove", name)
