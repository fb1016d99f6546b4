"""Listings answer only what a GET would: search, owners, dist-tags, audits.

A caller refused with 403 on a package used to see it, its version and its
maintainers in search, and its advisories in audit answers.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.keys import Permission
from r13core.users import Role
from tests.identity_app import PW, Served, quote, serve

SECRET = "@secret/plans"
OPEN = ["left-pad", "@team/widgets", "@team/gadgets"]


@pytest.fixture
def ruled(tmp_path: Path) -> Iterator[Served]:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {"package": "@secret/*", "access": ["alice", "$admin"], "publish": ["alice"]},
                {"package": "**", "access": "$all", "publish": "$write"},
            ]
        )
    )
    served = serve(tmp_path / "data", {"R13_ACCESS_RULES": str(rules)})
    served.users.add("alice", PW, Role.PUBLISHER)
    served.users.add("bob", PW, Role.PUBLISHER)
    alice = served.session("alice")
    for name in [SECRET, *OPEN]:
        assert served.publish(name, "1.0.0", alice).status_code == 201
    for name in (SECRET, "left-pad"):
        r = served.client.simulate_post(
            "/_api/advisories",
            json={"package": name, "vulnerable_versions": "<2.0.0", "severity": "high",
                  "title": f"{name} is bad"},
            headers=served.admin,
        )  # fmt: skip
        assert r.status_code == 201
    yield served
    served.config.close()


def names(result: dict[str, Any]) -> list[str]:
    return sorted(o["package"]["name"] for o in result["objects"])


def search(s: Served, headers: dict[str, str], text: str = "") -> dict[str, Any]:
    r = s.client.simulate_get("/-/v1/search", params={"text": text}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json  # type: ignore[no-any-return]


def test_search_hides_what_get_refuses(ruled: Served) -> None:
    s = ruled
    bob, alice = s.session("bob"), s.session("alice")
    # The premise: bob's GET is refused by the rule, alice's is not.
    assert s.client.simulate_get(f"/{quote(SECRET)}", headers=bob).status_code == 403
    assert s.client.simulate_get(f"/{quote(SECRET)}", headers=alice).status_code == 200
    for text in ("", "plans", "secret", "scope:secret", "maintainer:alice"):
        found = search(s, bob, text)
        assert SECRET not in names(found), text
        assert found["total"] == len(names(found))
    everything = search(s, bob)
    assert everything["total"] == len(OPEN) and names(everything) == sorted(OPEN)
    assert SECRET in names(search(s, alice, "plans"))
    assert search(s, alice)["total"] == len(OPEN) + 1
    # Anonymous callers (on a public registry) and admins are decided the same way.
    s.set_private(False)
    assert s.client.simulate_get(f"/{quote(SECRET)}").status_code == 401
    assert SECRET not in names(search(s, {}, "plans"))
    assert "left-pad" in names(search(s, {}, "left-pad"))
    assert SECRET in names(search(s, s.admin, "plans"))
    # The package's other listings refuse bob too.
    for path in (f"/-/package/{quote(SECRET)}/owners", f"/-/package/{quote(SECRET)}/dist-tags"):
        assert s.client.simulate_get(path, headers=bob).status_code == 403


def test_search_hides_what_a_key_scope_refuses(ruled: Served) -> None:
    s = ruled
    team = s.key("team-ci", Permission.READ, packages=["@team/*"])
    assert s.client.simulate_get("/left-pad", headers=team).status_code == 403
    assert s.client.simulate_get("/@team%2fwidgets", headers=team).status_code == 200
    found = search(s, team)
    assert names(found) == ["@team/gadgets", "@team/widgets"] and found["total"] == 2
    assert names(search(s, team, "left-pad")) == []
    # Paging counts only the visible packages.
    first = s.client.simulate_get("/-/v1/search", params={"size": "1"}, headers=team).json
    assert first["total"] == 2 and len(first["objects"]) == 1


def test_audits_answer_nothing_about_unreadable_packages(ruled: Served) -> None:
    s = ruled
    bob, alice = s.session("bob"), s.session("alice")
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    def bulk(headers: dict[str, str]) -> dict[str, Any]:
        body = gzip.compress(json.dumps({SECRET: ["1.0.0"], "left-pad": ["1.0.0"]}).encode())
        r = s.client.simulate_post(
            "/-/npm/v1/security/advisories/bulk", body=body, headers={**headers, **gz}
        )
        assert r.status_code == 200, r.text
        return r.json  # type: ignore[no-any-return]

    def quick(headers: dict[str, str]) -> set[str]:
        tree = {"dependencies": {SECRET: {"version": "1.0.0"}, "left-pad": {"version": "1.0.0"}}}
        body = gzip.compress(json.dumps(tree).encode())
        r = s.client.simulate_post(
            "/-/npm/v1/security/audits/quick", body=body, headers={**headers, **gz}
        )
        assert r.status_code == 200, r.text
        return {a["module_name"] for a in r.json["advisories"].values()}

    assert set(bulk(bob)) == {"left-pad"}
    assert set(bulk(alice)) == {SECRET, "left-pad"}
    assert quick(bob) == {"left-pad"}
    assert quick(alice) == {SECRET, "left-pad"}
    team = s.key("team-ci", Permission.READ, packages=["@team/*"])
    assert bulk(team) == {} and quick(team) == set()
