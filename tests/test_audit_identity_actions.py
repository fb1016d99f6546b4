"""Every audited identity, abuse-control and record action writes exactly one audit event,
with who acted and from where, from each front end that offers it.

HTTP runs the real app in process (falcon's TestClient, a real data dir): the actor is
the caller's principal (``key:root`` for the bare admin key, the user for its own
login and tokens) and the address is the client's. The CLI runs ``r13 ...`` through
its ``main()`` on a temp data dir: the actor is ``cli`` and the address ``""``. r13's
own actions (an automatic block, `r13 serve`'s first admin key) are ``r13``'s.

``test_every_audited_action_has_a_scenario`` reads the actions r13core's operations
write (r13core/identity.py, logins.py, abuse.py, config_changes.py) and fails when one
has no scenario here.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from app.cli import main
from app.cli.serve_cmd import prepare
from app.main import create_app
from r13core.audit import Actor, AuditLog
from r13core.config import Config13, ConfigStore
from r13core.database import open_database
from r13core.names import PackageName
from r13core.services import SIGNING_DIR, open_services
from r13core.settings import Settings
from r13core.signing_keys import SigningKeys
from r13core.users import Role, UserStore
from tests.identity_app import PUBLIC, PW, Served, bearer, serve
from tests.npm_builders import open_registry, publish_body

ROOT = Path(__file__).resolve().parent.parent
CLIENT = "198.51.100.7"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OPERATIONS = (
    "identity.py",
    "logins.py",
    "abuse.py",
    "config_changes.py",
    "signing_keys.py",
    "registry/service.py",
)


@dataclass
class Seen:
    """The events one step appended."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def one(self, action: str, *, actor: str, ip: str, target: str, **detail: Any) -> None:
        """Exactly one event, this one (with at least these detail fields)."""
        assert len(self.events) == 1, self.events
        self.only(action, actor=actor, ip=ip, target=target, **detail)

    def only(self, action: str, *, actor: str, ip: str, target: str, **detail: Any) -> None:
        """Exactly one event of ``action`` among them, as given."""
        (event,) = [e for e in self.events if e["action"] == action]
        assert (event["actor"], event["ip"], event["target"]) == (actor, ip, target), event
        assert {k: event["detail"].get(k) for k in detail} == detail, event


@contextmanager
def step(audit: AuditLog) -> Iterator[Seen]:
    """Collect the audit events appended inside the ``with`` block, oldest first."""
    newest = audit.page(limit=1)["events"]
    after = newest[0]["id"] if newest else 0
    seen = Seen()
    yield seen
    events = audit.page(limit=1000)["events"]
    seen.events = [e for e in reversed(events) if e["id"] > after]


# -- HTTP --------------------------------------------------------------------------------


ADMIN_ACTOR = "key:root"


def _json(s: Served, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    result = s.client.simulate_request(method, path, json=body, remote_addr=CLIENT, **kw)
    assert result.status_code < 300, (result.status_code, result.text)
    return result.json


def _make_key(s: Served, key_id: str) -> None:
    _json(s, "POST", "/_api/security/keys", {"id": key_id}, headers=s.admin)


def _user_token(s: Served, name: str) -> str:
    s.users.add(name, PW, Role.PUBLISHER)
    token: str = _json(
        s, "PUT", f"/-/user/org.couchdb.user:{name}", {"name": name, "password": PW}
    )["token"]
    return token


def http_key_create(s: Served) -> None:
    with step(s.audit) as seen:
        _json(s, "POST", "/_api/security/keys", {"id": "ci", "permissions": "write"},
              headers=s.admin)  # fmt: skip
    seen.one("key.create", actor=ADMIN_ACTOR, ip=CLIENT, target="ci",
             permission="write", bootstrap=False)  # fmt: skip


def http_key_rotate(s: Served) -> None:
    _make_key(s, "ci")
    with step(s.audit) as seen:
        _json(s, "POST", "/_api/security/keys/ci/rotate", headers=s.admin)
    seen.one("key.rotate", actor=ADMIN_ACTOR, ip=CLIENT, target="ci")


def http_key_revoke(s: Served) -> None:
    _make_key(s, "ci")
    with step(s.audit) as seen:
        _json(s, "DELETE", "/_api/security/keys/ci", headers=s.admin)
    seen.one("key.revoke", actor=ADMIN_ACTOR, ip=CLIENT, target="ci")


def http_login_legacy(s: Served) -> None:
    s.users.add("ann", PW, Role.PUBLISHER)
    with step(s.audit) as seen:
        _json(s, "PUT", "/-/user/org.couchdb.user:ann", {"name": "ann", "password": PW})
    (key,) = s.keys.owned_by("ann")
    seen.one("login", actor="ann", ip=CLIENT, target=key.id, method="legacy")


def http_login_failed_legacy(s: Served) -> None:
    s.users.add("ann", PW, Role.PUBLISHER)
    with step(s.audit) as seen:
        r = s.client.simulate_put("/-/user/org.couchdb.user:ann", remote_addr=CLIENT,
                                  json={"name": "ann", "password": "not the password"})  # fmt: skip
    assert r.status_code == 401
    seen.one("login.failed", actor="ann", ip=CLIENT, target="ann", method="legacy")


def http_user_signup(tmp: Path) -> None:
    s = serve(tmp, {"R13_OPEN_SIGNUP": "1", "R13_SIGNUP_ROLE": "publisher"})
    try:
        with step(s.audit) as seen:
            _json(s, "PUT", "/-/user/org.couchdb.user:newbie", {"name": "newbie", "password": PW})
        # One request, two actions: the signup, then the login it ends in.
        assert [e["action"] for e in seen.events] == ["user.signup", "login"]
        seen.only("user.signup", actor="newbie", ip=CLIENT, target="newbie", role="publisher")
        (key,) = s.keys.owned_by("newbie")
        seen.only("login", actor="newbie", ip=CLIENT, target=key.id, method="legacy")
    finally:
        s.config.close()


def _web_start(s: Served) -> tuple[str, str, str]:
    start = _json(s, "POST", "/-/v1/login", {})
    login_id = start["loginUrl"].rsplit("/", 1)[-1]
    done_path, _, query = start["doneUrl"].removeprefix(PUBLIC).partition("?")
    return login_id, done_path, query


def _approve(s: Served, login_id: str, password: str) -> falcon.testing.Result:
    body = f"username=ann&password={password.replace(' ', '+')}"
    return s.client.simulate_post(f"/-/v1/login/{login_id}", body=body, headers=FORM,
                                  remote_addr=CLIENT)  # fmt: skip


def http_login_approve(s: Served) -> None:
    s.users.add("ann", PW, Role.PUBLISHER)
    login_id, _, _ = _web_start(s)
    with step(s.audit) as seen:
        assert _approve(s, login_id, PW).status_code == 200
    seen.one("login.approve", actor="ann", ip=CLIENT, target=login_id)


def http_login_failed_web(s: Served) -> None:
    s.users.add("ann", PW, Role.PUBLISHER)
    login_id, _, _ = _web_start(s)
    with step(s.audit) as seen:
        assert _approve(s, login_id, "not the password").status_code == 401
    seen.one("login.failed", actor="ann", ip=CLIENT, target="ann", method="web")


def http_login_web(s: Served) -> None:
    s.users.add("ann", PW, Role.PUBLISHER)
    login_id, done_path, query = _web_start(s)
    assert _approve(s, login_id, PW).status_code == 200
    with step(s.audit) as seen:
        token = _json(s, "GET", done_path, query_string=query)["token"]
    assert token.startswith("r13_")
    (key,) = s.keys.owned_by("ann")
    seen.one("login", actor="ann", ip=CLIENT, target=key.id, method="web")


def http_logout(s: Served) -> None:
    token = _user_token(s, "ann")
    (key,) = s.keys.owned_by("ann")
    with step(s.audit) as seen:
        _json(s, "DELETE", f"/-/user/token/{token}")
    seen.one("logout", actor="ann", ip=CLIENT, target=key.id)


def http_token_create(s: Served) -> None:
    token = _user_token(s, "ann")
    body = {"password": PW, "readonly": True, "cidr_whitelist": ["10.0.0.0/8"]}
    with step(s.audit) as seen:
        made = _json(s, "POST", "/-/npm/v1/tokens", body, headers=bearer(token))
    seen.one("token.create", actor="ann", ip=CLIENT, target=made["key"], readonly=True,
             cidr=["10.0.0.0/8"], packages=[])  # fmt: skip


def http_token_create_failed(s: Served) -> None:
    token = _user_token(s, "ann")
    with step(s.audit) as seen:
        r = s.client.simulate_post("/-/npm/v1/tokens", json={"password": "not the password"},
                                   headers=bearer(token), remote_addr=CLIENT)  # fmt: skip
    assert r.status_code == 401
    seen.one("token.create.failed", actor="ann", ip=CLIENT, target="")


def http_token_revoke(s: Served) -> None:
    token = _user_token(s, "ann")
    made = _json(s, "POST", "/-/npm/v1/tokens", {"password": PW}, headers=bearer(token))
    with step(s.audit) as seen:
        r = s.client.simulate_delete(f"/-/npm/v1/tokens/token/{made['key']}",
                                     headers=bearer(token), remote_addr=CLIENT)  # fmt: skip
    assert r.status_code == 204
    seen.one("token.revoke", actor="ann", ip=CLIENT, target=made["key"])


def http_ip_block(s: Served) -> None:
    with step(s.audit) as seen:
        _json(s, "POST", "/_api/security/blocks", {"ip": "203.0.113.9", "reason": "scraping"},
              headers=s.admin)  # fmt: skip
    seen.one("ip.block", actor=ADMIN_ACTOR, ip=CLIENT, target="203.0.113.9",
             reason="scraping", kind="manual")  # fmt: skip


def http_ip_unblock(s: Served) -> None:
    _json(s, "POST", "/_api/security/blocks", {"ip": "203.0.113.9"}, headers=s.admin)
    with step(s.audit) as seen:
        _json(s, "DELETE", "/_api/security/blocks/203.0.113.9", headers=s.admin)
    seen.one("ip.unblock", actor=ADMIN_ACTOR, ip=CLIENT, target="203.0.113.9")


def http_ip_block_automatic(tmp: Path) -> None:
    s = serve(tmp, {"R13_BLOCK_AUTH_FAILURES": "2"})
    try:
        with step(s.audit) as seen:
            for _ in range(3):  # the strike past the threshold blocks
                s.client.simulate_get("/-/whoami", headers=bearer("r13_not_a_key"),
                                      remote_addr=CLIENT)  # fmt: skip
        seen.one("ip.block", actor="r13", ip=CLIENT, target=CLIENT, kind="auto",
                 reason="too many authentication failures")  # fmt: skip
    finally:
        s.config.close()


def http_key_create_bootstrap(tmp: Path) -> None:
    env = {"R13_DATA": str(tmp), "R13_PUBLIC_URL": PUBLIC}
    app = create_app(open_services(Settings.from_env(env)))
    client = falcon.testing.TestClient(app)
    audit = AuditLog(open_database(tmp))
    with step(audit) as seen:
        r = client.simulate_post("/_api/security/keys", json={"id": "first", "permissions":
                                 "admin"}, remote_addr="127.0.0.1")  # fmt: skip
    assert r.status_code == 201, r.text
    seen.one("key.create", actor="bootstrap@loopback", ip="127.0.0.1", target="first",
             permission="admin", bootstrap=True)  # fmt: skip


def http_user_add(s: Served) -> None:
    with step(s.audit) as seen:
        _json(s, "POST", "/_api/users", {"name": "bob", "password": PW, "role": "reader"},
              headers=s.admin)  # fmt: skip
    seen.one("user.add", actor=ADMIN_ACTOR, ip=CLIENT, target="bob", role="reader")


def http_user_passwd(s: Served) -> None:
    s.users.add("bob", PW, Role.READER)
    with step(s.audit) as seen:
        _json(s, "POST", "/_api/users/bob/password", headers=s.admin)
    seen.one("user.passwd", actor=ADMIN_ACTOR, ip=CLIENT, target="bob", revoked=[],
             generated=True)  # fmt: skip


def http_user_role(s: Served) -> None:
    s.users.add("bob", PW, Role.READER)
    with step(s.audit) as seen:
        _json(s, "PATCH", "/_api/users/bob", {"role": "admin"}, headers=s.admin)
    seen.one("user.role", actor=ADMIN_ACTOR, ip=CLIENT, target="bob", role="admin", revoked=[])


def http_user_remove(s: Served) -> None:
    s.users.add("bob", PW, Role.READER)
    with step(s.audit) as seen:
        _json(s, "DELETE", "/_api/users/bob", headers=s.admin)
    seen.one("user.remove", actor=ADMIN_ACTOR, ip=CLIENT, target="bob")


# Scenarios on an app with a root admin key; the ones that need their own app take the dir.
HTTP: dict[str, Callable[[Served], None]] = {
    "key.create": http_key_create,
    "key.rotate": http_key_rotate,
    "key.revoke": http_key_revoke,
    "login/legacy": http_login_legacy,
    "login/web": http_login_web,
    "login.failed/legacy": http_login_failed_legacy,
    "login.failed/web": http_login_failed_web,
    "login.approve": http_login_approve,
    "logout": http_logout,
    "token.create": http_token_create,
    "token.create.failed": http_token_create_failed,
    "token.revoke": http_token_revoke,
    "ip.block": http_ip_block,
    "ip.unblock": http_ip_unblock,
    "user.add/api": http_user_add,
    "user.passwd/api": http_user_passwd,
    "user.role/api": http_user_role,
    "user.remove/api": http_user_remove,
}
HTTP_OWN_APP: dict[str, Callable[[Path], None]] = {
    "key.create/bootstrap": http_key_create_bootstrap,
    "user.signup": http_user_signup,
    "ip.block/automatic": http_ip_block_automatic,
}


@pytest.mark.parametrize("scenario", sorted(HTTP))
def test_http_action_writes_one_event_with_caller_and_address(
    tmp_path: Path, scenario: str
) -> None:
    s = serve(tmp_path)
    try:
        HTTP[scenario](s)
    finally:
        s.config.close()


@pytest.mark.parametrize("scenario", sorted(HTTP_OWN_APP))
def test_http_action_of_its_own_app_writes_one_event(tmp_path: Path, scenario: str) -> None:
    HTTP_OWN_APP[scenario](tmp_path)


# -- the CLI -----------------------------------------------------------------------------


@dataclass
class Cli:
    """`r13` on one data dir."""

    data: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def audit(self) -> AuditLog:
        return AuditLog(open_database(self.data))

    def __call__(self, *args: str, stdin: str = "") -> None:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        assert main(["--data", str(self.data), *args]) == 0, args

    def one(self, *args: str, stdin: str = "") -> Seen:
        """Run ``r13 args...`` and collect the events it appended."""
        with step(self.audit) as seen:
            self(*args, stdin=stdin)
        return seen


def _with_user(r13: Cli, role: str = "publisher") -> None:
    r13("users", "add", "bob", "--role", role, "--password-stdin", stdin=PW + "\n")


def cli_key_create(r13: Cli) -> None:
    seen = r13.one("keys", "create", "--id", "ci", "--perm", "write")
    seen.one("key.create", actor="cli", ip="", target="ci", permission="write", bootstrap=False)


def cli_key_rotate(r13: Cli) -> None:
    r13("keys", "create", "--id", "ci", "--perm", "read")
    r13.one("keys", "rotate", "ci").one("key.rotate", actor="cli", ip="", target="ci")


def cli_key_revoke(r13: Cli) -> None:
    r13("keys", "create", "--id", "ci", "--perm", "read")
    r13.one("keys", "revoke", "ci").one("key.revoke", actor="cli", ip="", target="ci")


def cli_key_create_serve(r13: Cli) -> None:
    settings = Settings.from_env({"R13_DATA": str(r13.data), "R13_PUBLIC_URL": PUBLIC})
    r13("config", "show")  # the data dir exists, its log is empty
    with step(r13.audit) as seen:
        prepare(settings).release()  # what `r13 serve` does before it execs gunicorn
    # The first start also makes the signing key (cli_signing_* below).
    assert sorted(e["action"] for e in seen.events) == ["key.create", "signing.create"]
    seen.only("key.create", actor="r13", ip="", target="admin", permission="admin",
              bootstrap=True)  # fmt: skip


def cli_signing_create_serve(r13: Cli) -> None:
    settings = Settings.from_env({"R13_DATA": str(r13.data), "R13_PUBLIC_URL": PUBLIC})
    r13("config", "show")
    with step(r13.audit) as seen:
        prepare(settings).release()
    keyid = SigningKeys(r13.data / SIGNING_DIR, r13.audit).active_keyid()
    seen.only("signing.create", actor="r13", ip="", target=keyid)
    with step(r13.audit) as again:
        prepare(settings).release()  # a second start makes no key
    assert again.events == []


def cli_signing_rotate(r13: Cli) -> None:
    r13("keys", "signing", "list")  # the ring is made on first use (by r13 itself)
    ring = SigningKeys(r13.data / SIGNING_DIR, r13.audit)
    old = ring.active_keyid()
    seen = r13.one("keys", "signing", "rotate")
    new = ring.active_keyid()
    assert new != old
    seen.one("signing.rotate", actor="cli", ip="", target=new, previous=old)


def cli_signing_backfill(r13: Cli) -> None:
    r13("keys", "signing", "list")
    unsigned = open_registry(r13.data)  # no signer: versions stored as before signing
    unsigned.put_package(PackageName.parse("old"), publish_body("old", "1.0.0"), actor=Actor("a"))
    seen = r13.one("keys", "signing", "backfill")
    seen.one("signing.backfill", actor="cli", ip="", target="", packages=1, versions=1)


def cli_user_add(r13: Cli) -> None:
    seen = r13.one("users", "add", "bob", "--role", "reader", "--password-stdin", stdin=PW)
    seen.one("user.add", actor="cli", ip="", target="bob", role="reader", reclaim=False)


def cli_user_passwd(r13: Cli) -> None:
    _with_user(r13)
    seen = r13.one("users", "passwd", "bob", "--password-stdin", stdin="another password\n")
    seen.one("user.passwd", actor="cli", ip="", target="bob", revoked=[])


def cli_user_role(r13: Cli) -> None:
    _with_user(r13)
    seen = r13.one("users", "role", "bob", "admin")
    seen.one("user.role", actor="cli", ip="", target="bob", role="admin", revoked=[])


def cli_user_remove(r13: Cli) -> None:
    _with_user(r13)
    r13.one("users", "remove", "bob").one("user.remove", actor="cli", ip="", target="bob")


def cli_ip_block(r13: Cli) -> None:
    seen = r13.one("security", "block", "203.0.113.9", "--reason", "scraping")
    seen.one("ip.block", actor="cli", ip="", target="203.0.113.9", reason="scraping",
             kind="manual")  # fmt: skip


def cli_ip_unblock(r13: Cli) -> None:
    r13("security", "block", "203.0.113.9")
    seen = r13.one("security", "unblock", "203.0.113.9")
    seen.one("ip.unblock", actor="cli", ip="", target="203.0.113.9")


def _record(r13: Cli) -> str:
    with ConfigStore(r13.data) as store:
        return store.read_bytes().hex()


def _config_change(r13: Cli, *args: str) -> None:
    r13("config", "show")
    old = _record(r13)
    seen = r13.one("config", *args)
    new = _record(r13)
    assert old != new
    seen.one("config.change", actor="cli", ip="", target="config.r13", old=old, new=new)


def cli_config_set(r13: Cli) -> None:
    _config_change(r13, "set", "rows", "50")


def cli_config_enable(r13: Cli) -> None:
    _config_change(r13, "enable", "DEBUG")


def cli_config_disable(r13: Cli) -> None:
    _config_change(r13, "disable", "METRICS")


def cli_config_import(r13: Cli) -> None:
    path = r13.data.parent / "record.hex"
    path.write_text(Config13(rows=40, cols=120).to_bytes().hex())
    _config_change(r13, "import", str(path))


CLI: dict[str, Callable[[Cli], None]] = {
    "key.create": cli_key_create,
    "key.create/serve": cli_key_create_serve,
    "signing.create/serve": cli_signing_create_serve,
    "key.rotate": cli_key_rotate,
    "key.revoke": cli_key_revoke,
    "signing.rotate": cli_signing_rotate,
    "signing.backfill": cli_signing_backfill,
    "user.add": cli_user_add,
    "user.passwd": cli_user_passwd,
    "user.role": cli_user_role,
    "user.remove": cli_user_remove,
    "ip.block": cli_ip_block,
    "ip.unblock": cli_ip_unblock,
    "config.change/set": cli_config_set,
    "config.change/enable": cli_config_enable,
    "config.change/disable": cli_config_disable,
    "config.change/import": cli_config_import,
}


@pytest.mark.parametrize("scenario", sorted(CLI))
def test_cli_action_writes_one_event_as_cli_without_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    CLI[scenario](Cli(tmp_path / "data", monkeypatch))


def test_a_config_command_that_changes_nothing_writes_no_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r13 = Cli(tmp_path / "data", monkeypatch)
    r13("config", "enable", "METRICS")  # on by default
    assert r13.one("config", "set", "rows", "24").events == []  # 24 already
    assert r13.audit.page()["events"] == []


def test_a_refused_action_writes_no_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r13 = Cli(tmp_path / "data", monkeypatch)
    with step(r13.audit) as seen:
        assert main(["--data", str(r13.data), "keys", "create", "--id", "x", "--perm", "read",
                     "--owner", "ghost"]) == 2  # fmt: skip
        assert main(["--data", str(r13.data), "users", "remove", "ghost"]) == 2
        assert main(["--data", str(r13.data), "security", "unblock", "192.0.2.1"]) == 2
    assert seen.events == []
    assert UserStore(open_database(r13.data)).list() == []


# -- completeness ------------------------------------------------------------------------


def audited_actions() -> set[str]:
    """The action names r13core's operations pass to the audit log."""
    found = set()
    for name in OPERATIONS:
        tree = ast.parse((ROOT / "r13core" / name).read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("safe_record_by", "record_by")
            ):
                action = node.args[1]
                assert isinstance(action, ast.Constant), f"{name}:{node.lineno}"
                found.add(str(action.value))
    return found


def test_every_audited_action_has_a_scenario() -> None:
    covered = {name.split("/")[0] for name in (*HTTP, *HTTP_OWN_APP, *CLI)}
    assert covered == audited_actions()
    # Each front end covers what it offers: HTTP has no record writes here (the live
    # channel makes them), the CLI no npm login or tokens; both administer users.
    http = {name.split("/")[0] for name in (*HTTP, *HTTP_OWN_APP)}
    cli = {name.split("/")[0] for name in CLI}
    assert http & cli == {
        "key.create", "key.rotate", "key.revoke", "ip.block", "ip.unblock",
        "user.add", "user.passwd", "user.role", "user.remove",
    }  # fmt: skip
