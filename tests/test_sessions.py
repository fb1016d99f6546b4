"""The dashboard's sessions (r13core/sessions.py): who may open one, what logout ends,
the CSRF token, and the audit trail of each."""

from __future__ import annotations

from pathlib import Path

import pytest

from r13core.audit import Actor
from r13core.errors import Forbidden, Unauthorized
from r13core.identity import Identity
from r13core.keys import Permission
from r13core.sessions import Sessions, csrf_matches, csrf_token, is_session, principal_of
from r13core.storage.sqlite import SQLiteStorage
from r13core.users import Role

ROOT = Actor("root", "127.0.0.1")


@pytest.fixture
def identity(tmp_path: Path) -> Identity:
    ident = Identity.over(SQLiteStorage(tmp_path / "r.sqlite3"))
    ident.users.add("alice", "correct horse", Role.ADMIN)
    ident.users.add("bob", "battery staple", Role.PUBLISHER)
    return ident


def actions(identity: Identity) -> list[tuple[str, str]]:
    return [(e["action"], e["actor"]) for e in reversed(identity.audit.page()["events"])]


def test_an_admin_user_opens_a_short_lived_admin_session(identity: Identity) -> None:
    session = Sessions(identity, hours=2).with_password("alice", "correct horse", "10.0.0.1")
    info = identity.keys.authenticate(session.secret)
    assert is_session(info) and info.owner == "alice"
    assert info.permission == Permission.ADMIN
    assert info.expires is not None
    assert (info.expires - info.created).total_seconds() == pytest.approx(2 * 3600, abs=5)
    body = session.as_dict()
    assert body["username"] == "alice" and body["principal"] == "user:alice"
    assert body["csrf"] == csrf_token(session.secret) and session.secret not in str(body)
    assert ("session.login", "alice") in actions(identity)


def test_a_wrong_password_or_a_non_admin_is_refused_and_audited(identity: Identity) -> None:
    sessions = Sessions(identity)
    with pytest.raises(Unauthorized):
        sessions.with_password("alice", "wrong", "10.0.0.1")
    with pytest.raises(Unauthorized):
        sessions.with_password("nobody", "wrong", "10.0.0.1")
    with pytest.raises(Forbidden):
        sessions.with_password("bob", "battery staple", "10.0.0.1")
    failed = [a for a in actions(identity) if a[0] == "session.login.failed"]
    assert failed == [
        ("session.login.failed", "alice"),
        ("session.login.failed", "nobody"),
        ("session.login.failed", "bob"),
    ]
    assert not [k for k in identity.keys.list() if is_session(k)]


def test_an_admin_key_opens_a_session_bound_like_the_key(identity: Identity) -> None:
    _, secret = identity.create_key(ROOT, "ops", Permission.ADMIN, None, cidr=["10.0.0.0/8"])
    session = Sessions(identity).with_key(secret, "10.1.2.3")
    held = identity.keys.authenticate(session.secret)
    assert principal_of(held) == "key:ops" and held.owner is None
    assert [str(n) for n in held.cidr] == ["10.0.0.0/8"]
    _, writer = identity.create_key(ROOT, "ci", Permission.WRITE, None)
    with pytest.raises(Forbidden):
        Sessions(identity).with_key(writer, "10.1.2.3")
    # A session cannot open another (it would outlive logout).
    with pytest.raises(Forbidden):
        Sessions(identity).with_key(session.secret, "10.1.2.3")
    with pytest.raises(Unauthorized):
        Sessions(identity).with_key("r13_not-a-key", "10.1.2.3")


def test_logout_ends_every_session_of_the_principal_and_no_other(identity: Identity) -> None:
    sessions = Sessions(identity)
    a1 = sessions.with_password("alice", "correct horse", "10.0.0.1")
    a2 = sessions.with_password("alice", "correct horse", "10.0.0.2")
    _, ops = identity.create_key(ROOT, "ops", Permission.ADMIN, None)
    other = sessions.with_key(ops, "10.0.0.3")
    npm_token = identity.issue_login_token(identity.users.get("alice"), "legacy", "10.0.0.1")
    ended = sessions.logout(identity.keys.authenticate(a1.secret), "10.0.0.1")
    assert sorted(ended) == sorted([a1.info.id, a2.info.id])
    for gone in (a1, a2):
        with pytest.raises(Unauthorized):
            identity.keys.authenticate(gone.secret)
    # Another principal's session and the user's npm token stay.
    assert identity.keys.authenticate(other.secret).id == other.info.id
    assert identity.keys.authenticate(npm_token).owner == "alice"
    assert ("session.logout", "alice") in actions(identity)


def test_revoking_or_rotating_a_key_ends_the_sessions_opened_with_it(identity: Identity) -> None:
    sessions = Sessions(identity)
    _, ops = identity.create_key(ROOT, "ops", Permission.ADMIN, None)
    s1 = sessions.with_key(ops, "10.0.0.1")
    identity.rotate_key(ROOT, "ops")
    with pytest.raises(Unauthorized):
        identity.keys.authenticate(s1.secret)
    _, ops2 = identity.create_key(ROOT, "ops2", Permission.ADMIN, None)
    s2 = sessions.with_key(ops2, "10.0.0.1")
    identity.revoke_key(ROOT, "ops2")
    with pytest.raises(Unauthorized):
        identity.keys.authenticate(s2.secret)


def test_a_password_change_ends_the_users_sessions(identity: Identity) -> None:
    session = Sessions(identity).with_password("alice", "correct horse", "10.0.0.1")
    identity.set_password(ROOT, "alice", "a new long password")
    with pytest.raises(Unauthorized):
        identity.keys.authenticate(session.secret)


def test_the_csrf_token_is_bound_to_its_session() -> None:
    token = csrf_token("r13_one")
    assert csrf_matches("r13_one", token)
    assert not csrf_matches("r13_two", token)
    assert not csrf_matches("r13_one", None)
    assert not csrf_matches("r13_one", token[:-1] + ("0" if token[-1] != "0" else "1"))
