"""The admin API the dashboard's Users and Packages sections use, in process over a real
data dir: /_api/users* (audited, admin only) and /_api/packages/overview (the README
sanitised on the server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from r13core.keys import Permission
from r13core.users import Role
from tests.identity_app import PW, Served, serve


@pytest.fixture
def real(tmp_path: Path) -> Iterator[Served]:
    yield serve(tmp_path)


def actions(real: Served, name: str) -> list[str]:
    page = real.client.simulate_get("/_api/security/audit?actor=key:root", headers=real.admin)
    return [e["action"] for e in page.json["events"] if e["target"] == name]


def test_users_add_list_role_password_remove(real: Served) -> None:
    c, admin = real.client, real.admin
    r = c.simulate_post(
        "/_api/users",
        json={"name": "carol", "password": PW, "role": "publisher", "email": "c@example.test"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert r.json["role"] == "publisher" and "password" not in r.json
    listed = c.simulate_get("/_api/users", headers=admin).json["users"]
    assert [u["name"] for u in listed] == ["carol"]
    token = real.session("carol")  # a publisher's token: write
    r = c.simulate_patch("/_api/users/carol", json={"role": "reader"}, headers=admin)
    assert r.status_code == 200 and r.json["role"] == "reader"
    assert len(r.json["revoked"]) == 1  # the write token is above a reader's ceiling
    assert c.simulate_get("/-/whoami", headers=token).status_code == 401
    r = c.simulate_post("/_api/users/carol/password", headers=admin)
    generated = r.json["password"]
    assert r.status_code == 200 and len(generated) >= 20
    assert real.login("carol", PW).status_code == 401
    assert real.login("carol", generated).status_code == 201
    r = c.simulate_post(
        "/_api/users/carol/password", json={"password": "another good one"}, headers=admin
    )
    assert r.status_code == 200 and "password" not in r.json
    assert real.login("carol", "another good one").status_code == 201
    assert c.simulate_delete("/_api/users/carol", headers=admin).status_code == 200
    assert c.simulate_get("/_api/users", headers=admin).json["users"] == []
    assert c.simulate_get("/_api/users/carol", headers=admin).status_code == 404
    assert actions(real, "carol") == [
        "user.remove", "user.passwd", "user.passwd", "user.role", "user.add",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"password": PW, "role": "reader"}, 400, "name"),
        ({"name": "dave", "role": "reader"}, 400, "password"),
        ({"name": "dave", "password": PW, "role": "king"}, 400, "role"),
        ({"name": "dave", "password": "short", "role": "reader"}, 400, "password"),
        ({"name": "dave", "password": PW, "role": "reader", "email": 7}, 400, "email"),
    ],
)
def test_bad_user_bodies_say_which_check_failed(
    real: Served, body: dict[str, object], status: int, says: str
) -> None:
    r = real.client.simulate_post("/_api/users", json=body, headers=real.admin)
    assert r.status_code == status and says in r.json["error"]
    assert real.users.list() == []


def test_user_routes_need_an_admin_and_names_are_unique(real: Served) -> None:
    c = real.client
    write = real.key("ci", Permission.WRITE)
    body = {"name": "erin", "password": PW, "role": "reader"}
    assert c.simulate_get("/_api/users").status_code == 401
    assert c.simulate_get("/_api/users", headers=write).status_code == 403
    assert c.simulate_post("/_api/users", json=body, headers=write).status_code == 403
    assert real.users.list() == []
    assert c.simulate_post("/_api/users", json=body, headers=real.admin).status_code == 201
    assert c.simulate_post("/_api/users", json=body, headers=real.admin).status_code == 409
    for method, path in [
        ("PATCH", "/_api/users/erin"),
        ("DELETE", "/_api/users/erin"),
        ("POST", "/_api/users/erin/password"),
    ]:
        r = c.simulate_request(method, path, json={"role": "admin"}, headers=write)
        assert r.status_code == 403
    assert real.users.get("erin").role is Role.READER
    assert (
        c.simulate_patch(
            "/_api/users/nobody", json={"role": "reader"}, headers=real.admin
        ).status_code
        == 404
    )


def publisher(real: Served, name: str) -> dict[str, str]:
    real.users.add(name, PW, Role.PUBLISHER)
    return real.session(name)


HOSTILE_README = (
    '# Hello\n\n<script>window.__pwned = 1</script>\n\n<img src=x onerror="window.__pwned=2">\n\n'
    '[click](javascript:window.__pwned=3)\n\n<div style="position:fixed">styled</div>\n'
)


def test_overview_lists_versions_tags_owners_types_and_a_sanitised_readme(real: Served) -> None:
    c = real.client
    alice = publisher(real, "alice")
    r = real.publish("widget", "1.0.0", alice, manifest={"readme": "old"})
    assert r.status_code in (200, 201), r.text
    r = real.publish(
        "widget", "1.1.0", alice, manifest={"readme": HOSTILE_README, "types": "index.d.ts"}
    )
    assert r.status_code in (200, 201), r.text
    r = c.simulate_get("/_api/packages/overview", params={"name": "widget"}, headers=real.admin)
    assert r.status_code == 200, r.text
    o = r.json
    assert [v["version"] for v in o["versions"]] == ["1.1.0", "1.0.0"]
    assert o["versions"][0]["tags"] == ["latest"] and o["versions"][0]["types"] is True
    assert o["versions"][1]["types"] is False
    assert o["distTags"] == {"latest": "1.1.0"} and o["types"] == "included"
    assert [m["name"] for m in o["maintainers"]] == ["alice"]
    html = o["readmeHtml"]
    assert "<h1>Hello</h1>" in html
    for bad in ("<script", "onerror", 'href="javascript:', "style=", "__pwned = 1"):
        assert bad not in html


def test_overview_shows_deprecations_and_a_definitely_typed_badge(real: Served) -> None:
    c = real.client
    alice = publisher(real, "alice")
    assert real.publish("lib", "1.0.0", alice).status_code in (200, 201)
    assert real.publish("@types/lib", "1.0.0", alice).status_code in (200, 201)
    doc = c.simulate_get("/lib?write=true", headers=alice).json
    doc["versions"]["1.0.0"]["deprecated"] = "use lib2"
    r = c.simulate_put("/lib", json=doc, headers=alice)
    assert r.status_code in (200, 201), r.text
    o = c.simulate_get("/_api/packages/overview", params={"name": "lib"}, headers=real.admin).json
    assert o["versions"][0]["deprecated"] == "use lib2" and o["deprecated"] is True
    assert o["types"] == "definitely-typed"
    scoped = c.simulate_get(
        "/_api/packages/overview", params={"name": "@types/lib"}, headers=real.admin
    ).json
    assert scoped["name"] == "@types/lib" and scoped["types"] == "none"


def test_overview_errors_and_access(real: Served) -> None:
    c = real.client
    assert c.simulate_get("/_api/packages/overview", headers=real.admin).status_code == 400
    r = c.simulate_get("/_api/packages/overview", params={"name": "Bad Name"}, headers=real.admin)
    assert r.status_code == 400
    r = c.simulate_get("/_api/packages/overview", params={"name": "absent"}, headers=real.admin)
    assert r.status_code == 404
    alice = publisher(real, "alice")
    assert real.publish("open", "1.0.0", alice).status_code in (200, 201)
    real.set_private(True)
    assert c.simulate_get("/_api/packages/overview", params={"name": "open"}).status_code == 401
    reader = real.key("r", Permission.READ)
    r = c.simulate_get("/_api/packages/overview", params={"name": "open"}, headers=reader)
    assert r.status_code == 200


def test_the_web_login_page_wears_the_dashboard_stylesheet_and_runs_no_script(
    real: Served,
) -> None:
    c = real.client
    real.users.add("walt", PW, Role.PUBLISHER)
    start = c.simulate_post("/-/v1/login", json={}).json
    page_path = start["loginUrl"].removeprefix("http://r13.test")
    page = c.simulate_get(page_path)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp
    assert "<script" not in page.text and "style=" not in page.text and "<style" not in page.text
    href = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)
    assert href is not None
    css = c.simulate_get(href.group(1))
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".login" in css.text  # the dashboard's own sign-in form look
    wrong = c.simulate_post(
        page_path,
        body="username=walt&password=nope",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    assert 'value="walt"' in wrong.text
    done = c.simulate_post(
        page_path,
        body=f"username=walt&password={PW.replace(' ', '+')}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "Signed in as walt" in done.text
    assert href.group(1) in done.text
    token = c.simulate_get(start["doneUrl"].removeprefix("http://r13.test")).json
    assert token["username"] == "walt" and token["token"].startswith("r13_")
