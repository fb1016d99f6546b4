"""The one place that decides whether a caller may do something.

Every resource asks :func:`authorize`; no other code compares permissions.
"""

from __future__ import annotations

import enum
from typing import Final

from r13core.errors import Forbidden, Unauthorized
from r13core.keys import KeyInfo, Permission


class Action(enum.Enum):
    """Things a caller can ask to do."""

    READ = "read"
    PUBLISH = "publish"
    UNPUBLISH = "unpublish"
    DEPRECATE = "deprecate"
    DIST_TAG = "dist-tag"
    OWNER = "owner"
    ADMIN = "admin"


_NEEDS: Final[dict[Action, Permission]] = {
    Action.READ: Permission.READ,
    Action.PUBLISH: Permission.WRITE,
    Action.UNPUBLISH: Permission.WRITE,
    Action.DEPRECATE: Permission.WRITE,
    Action.DIST_TAG: Permission.WRITE,
    Action.OWNER: Permission.WRITE,
    Action.ADMIN: Permission.ADMIN,
}


def required_permission(action: Action, *, private: bool) -> Permission | None:
    """The least permission ``action`` needs (None: anyone, even without a key)."""
    if action is Action.READ and not private:
        return None
    return _NEEDS[action]


def authorize(identity: KeyInfo | None, action: Action, *, private: bool) -> None:
    """Return if ``identity`` may do ``action``; raise Unauthorized or Forbidden if not.

    ``identity`` is an already authenticated key (None: no credentials sent).
    ``private`` is the live PRIVATE_REGISTRY flag: reads then need ``read``.
    A revoked key is refused here too, in case a caller kept one.
    """
    needed = required_permission(action, private=private)
    if needed is None:
        return
    if identity is None or identity.revoked:
        raise Unauthorized(f"{action.value} needs a key with {needed.name.lower()} permission")
    if identity.permission < needed:
        raise Forbidden(
            f"key {identity.id!r} has {identity.permission.name.lower()} permission; "
            f"{action.value} needs {needed.name.lower()}"
        )
