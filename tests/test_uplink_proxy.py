"""PROXY_MODE and CACHE_ENABLED through the real app: proxying, caching, integrity, local wins.

The upstream is tests/uplink_fakes.py's FaultyUpstream on loopback; the app is the
real one over a real data dir (tests/uplink_app.py) with a controllable clock for
the cache's max age.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from r13core.audit import Actor
from r13core.config import Feature
from r13core.names import PackageName
from r13core.storage.uplink_cache import DistRecord
from tests.npm_builders import package_tgz, publish_body
from tests.uplink_app import PUBLIC, ProxyApp, build
from tests.uplink_fakes import FaultyUpstream


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    up.add("left-pad", "1.0.0", "1.1.0")
    up.add("@public/tool", "2.0.0")
    yield up
    up.stop()


@pytest.fixture
def app(tmp_path: Path, upstream: FaultyUpstream) -> ProxyApp:
    return build(tmp_path, upstream.url)


def set_flag(app: ProxyApp, flag: Feature, on: bool) -> None:
    app.services.config.set_feature(flag, on)


def test_a_missing_package_comes_from_upstream_with_tarball_links_rewritten(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    full = app.get("/left-pad")
    assert full.status_code == 200
    doc = full.json
    assert sorted(doc["versions"]) == ["1.0.0", "1.1.0"]
    assert doc["readme"] == "upstream readme"
    for version, manifest in doc["versions"].items():
        assert manifest["dist"]["tarball"] == f"{PUBLIC}/left-pad/-/left-pad-{version}.tgz"
    assert full.headers["X-R13-Cache"] == "MISS"

    short = app.abbreviated("/@public%2ftool")
    assert short.status_code == 200
    assert short.headers["content-type"].startswith("application/vnd.npm.install-v1+json")
    dist = short.json["versions"]["2.0.0"]["dist"]
    assert dist["tarball"] == f"{PUBLIC}/@public/tool/-/tool-2.0.0.tgz"
    assert "readme" not in short.json  # the upstream's abbreviated document, as sent


def test_a_tarball_is_served_checked_and_then_kept(app: ProxyApp, upstream: FaultyUpstream) -> None:
    app.get("/left-pad")
    tgz = app.get("/left-pad/-/left-pad-1.1.0.tgz")
    assert tgz.status_code == 200
    assert tgz.content == upstream.tarballs["left-pad"]["1.1.0"]
    assert tgz.headers["X-R13-Cache"] == "MISS"
    # Kept: served again with the upstream gone entirely.
    upstream.stop()
    again = app.get("/left-pad/-/left-pad-1.1.0.tgz")
    assert again.status_code == 200
    assert again.content == upstream.tarballs["left-pad"]["1.1.0"]
    assert again.headers["X-R13-Cache"] == "HIT"
    # In the blob store under its sha512, like a local tarball.
    digest = hashlib.sha512(again.content).hexdigest()
    assert app.services.blobs.path(digest) is not None


def test_a_tarball_asked_for_first_finds_its_packument_itself(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    tgz = app.get("/@public/tool/-/tool-2.0.0.tgz")
    assert tgz.status_code == 200
    assert tgz.content == upstream.tarballs["@public/tool"]["2.0.0"]
    assert app.get("/@public/tool/-/tool-9.9.9.tgz").status_code == 404


def test_a_cached_packument_is_revalidated_with_its_etag_after_the_max_age(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    assert app.get("/left-pad").headers["X-R13-Cache"] == "MISS"
    assert app.get("/left-pad").headers["X-R13-Cache"] == "HIT"
    assert upstream.count("/left-pad") == 1
    app.clock.advance(app.services.settings.uplink.max_age_ms + 1)
    revalidated = app.get("/left-pad")
    assert revalidated.headers["X-R13-Cache"] == "REVALIDATED"
    assert upstream.count("/left-pad") == 2
    assert upstream.seen_by_path["/left-pad"].get("If-None-Match")
    # Fresh again from the 304: no third request.
    assert app.get("/left-pad").headers["X-R13-Cache"] == "HIT"
    assert upstream.count("/left-pad") == 2


def test_a_new_upstream_version_arrives_after_the_max_age(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    app.get("/left-pad")
    upstream.add("left-pad", "1.2.0")
    assert "1.2.0" not in app.get("/left-pad").json["versions"]
    app.clock.advance(app.services.settings.uplink.max_age_ms + 1)
    doc = app.get("/left-pad").json
    assert "1.2.0" in doc["versions"]
    assert doc["dist-tags"]["latest"] == "1.2.0"


def test_one_version_document_comes_from_upstream_by_version_or_tag(app: ProxyApp) -> None:
    by_tag = app.get("/left-pad/latest")
    assert by_tag.status_code == 200
    assert by_tag.json["version"] == "1.1.0"
    assert by_tag.json["dist"]["tarball"].startswith(PUBLIC)
    assert app.get("/left-pad/1.0.0").json["version"] == "1.0.0"
    assert app.get("/left-pad/7.0.0").status_code == 404


def test_a_name_the_upstream_lacks_is_404(app: ProxyApp) -> None:
    missing = app.get("/no-such-thing")
    assert missing.status_code == 404
    assert "error" in missing.json


def test_proxy_mode_off_never_asks_the_upstream(app: ProxyApp, upstream: FaultyUpstream) -> None:
    set_flag(app, Feature.PROXY_MODE, False)
    assert app.get("/left-pad").status_code == 404
    assert app.get("/left-pad/-/left-pad-1.0.0.tgz").status_code == 404
    assert upstream.count("/left-pad") == 0


def test_with_the_cache_off_nothing_is_kept(app: ProxyApp, upstream: FaultyUpstream) -> None:
    set_flag(app, Feature.CACHE_ENABLED, False)
    assert app.get("/left-pad").status_code == 200
    tgz = app.get("/left-pad/-/left-pad-1.0.0.tgz")
    assert tgz.status_code == 200
    assert tgz.content == upstream.tarballs["left-pad"]["1.0.0"]
    assert app.get("/left-pad").headers["X-R13-Cache"] == "MISS"
    assert upstream.count("/left-pad") == 2
    counts = app.services.storage.cache_counts()
    assert (counts.packuments, counts.tarballs) == (0, 0)
    assert list(app.services.blobs.spool_dir().iterdir()) == []  # no temp file left


# -- integrity ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bad-integrity", "truncated", "reset", "5xx"])
def test_a_bad_tarball_answer_is_a_502_and_never_cached(
    app: ProxyApp, upstream: FaultyUpstream, mode: str
) -> None:
    app.get("/left-pad")
    path = upstream.tarball_path("left-pad", "1.0.0")
    upstream.modes[path] = mode
    bad = app.get("/left-pad/-/left-pad-1.0.0.tgz")
    assert bad.status_code == 502
    assert "error" in bad.json
    assert app.services.storage.cached_tarball("left-pad", "1.0.0") is None
    assert list(app.services.blobs.spool_dir().iterdir()) == []
    # Once the upstream behaves, the real bytes come through.
    upstream.modes[path] = "ok"
    good = app.get("/left-pad/-/left-pad-1.0.0.tgz")
    assert good.status_code == 200
    assert good.content == upstream.tarballs["left-pad"]["1.0.0"]


def test_a_version_without_integrity_is_refused(app: ProxyApp, upstream: FaultyUpstream) -> None:
    app.get("/left-pad")
    # The dist row decides: replace it with one that states no digest.
    old = app.services.storage.cached_dist("left-pad", "1.0.0")
    assert old is not None
    app.services.storage.save_packument(
        app.services.storage.cached_packument("left-pad", "full"),  # type: ignore[arg-type]
        [DistRecord("left-pad", "1.0.0", old.url, "", "")],
    )
    assert app.get("/left-pad/-/left-pad-1.0.0.tgz").status_code == 502


# -- faults without and with a cached copy --------------------------------------------


@pytest.mark.parametrize(("mode", "status"), [("5xx", 502), ("reset", 502), ("truncated", 502)])
def test_a_failing_upstream_without_a_cached_copy_is_a_clear_error(
    app: ProxyApp, upstream: FaultyUpstream, mode: str, status: int
) -> None:
    upstream.default_mode = mode
    answer = app.get("/left-pad")
    assert answer.status_code == status
    assert set(answer.json) == {"error"}


def test_a_slow_upstream_is_a_504(tmp_path: Path, upstream: FaultyUpstream) -> None:
    app = build(tmp_path, upstream.url, {"R13_UPLINK_TIMEOUT": "200"})
    upstream.default_mode = "slow"
    answer = app.get("/left-pad")
    assert answer.status_code == 504
    assert "in time" in answer.json["error"]


def test_an_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    gone = FaultyUpstream()
    url = gone.url
    gone.server.server_close()  # nothing listens there now
    app = build(tmp_path, url)
    answer = app.get("/left-pad")
    assert answer.status_code == 502


@pytest.mark.parametrize("mode", ["5xx", "reset", "truncated", "slow"])
def test_a_stale_copy_is_served_with_a_warning_when_the_upstream_fails(
    tmp_path: Path, upstream: FaultyUpstream, mode: str
) -> None:
    app = build(tmp_path, upstream.url, {"R13_UPLINK_TIMEOUT": "300"})
    first = app.get("/left-pad")
    app.clock.advance(app.services.settings.uplink.max_age_ms + 1)
    upstream.add("left-pad", "1.2.0")  # a changed document: no 304 could answer
    upstream.default_mode = mode
    stale = app.get("/left-pad")
    assert stale.status_code == 200
    assert stale.content == first.content
    assert stale.headers["X-R13-Cache"] == "STALE"
    assert "Revalidation Failed" in stale.headers["Warning"]


def test_an_abbreviated_request_falls_back_to_a_stale_full_copy(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    app.get("/left-pad")
    upstream.default_mode = "5xx"
    short = app.abbreviated("/left-pad")
    assert short.status_code == 200
    assert short.headers["content-type"].startswith("application/json")
    assert short.json["readme"] == "upstream readme"


def test_a_package_gone_upstream_is_gone_here_after_the_max_age(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    app.get("/left-pad")
    del upstream.tarballs["left-pad"]
    app.clock.advance(app.services.settings.uplink.max_age_ms + 1)
    assert app.get("/left-pad").status_code == 404
    assert app.services.storage.cached_packument("left-pad", "full") is None


# -- local packages win ---------------------------------------------------------------


def test_a_local_package_wins_and_never_merges_with_upstream_versions(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    app.get("/left-pad")  # cached from upstream before the local publish
    app.services.uplink.allow_publish(PackageName.parse("left-pad"), actor=Actor("root"))
    assert app.publish("left-pad", publish_body("left-pad", "3.0.0")).status_code == 201
    doc = app.get("/left-pad").json
    assert sorted(doc["versions"]) == ["3.0.0"]
    assert "X-R13-Cache" not in app.get("/left-pad").headers
    assert app.get("/left-pad/-/left-pad-1.0.0.tgz").status_code == 404
    assert app.get("/left-pad/1.0.0").status_code == 404
    assert upstream.count("/left-pad") == 1  # the first read only: never asked again


def test_an_unpublished_local_name_is_never_proxied(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    body = publish_body("mine", "1.0.0")
    assert app.publish("mine", body).status_code == 201
    rev = app.get("/mine?write=true").json["_rev"]
    assert app.client.simulate_delete(f"/mine/-rev/{rev}", headers=app.writer).status_code == 200
    upstream.add("mine", "9.0.0")  # someone publishes a look-alike upstream
    assert app.get("/mine").status_code == 404
    assert upstream.count("/mine") == 1  # asked once, before the first publish


@pytest.mark.parametrize("how", ["listed", "local-scope"])
def test_a_private_scope_is_never_asked_of_the_upstream(
    tmp_path: Path, upstream: FaultyUpstream, how: str
) -> None:
    env = {"R13_PRIVATE_SCOPES": "@team"} if how == "listed" else {}
    app = build(tmp_path, upstream.url, env)
    if how == "local-scope":
        assert app.publish("@team/core", publish_body("@team/core", "1.0.0")).status_code == 201
    upstream.add("@team/secret-sauce", "6.6.6")  # a look-alike of an internal name
    assert app.get("/@team%2fsecret-sauce").status_code == 404
    assert app.get("/@team/secret-sauce/-/secret-sauce-6.6.6.tgz").status_code == 404
    assert app.abbreviated("/@team%2fsecret-sauce").status_code == 404
    assert upstream.count("/@team%2fsecret-sauce") == 0
    assert upstream.count("/@team/secret-sauce") == 0
    assert not any("secret-sauce" in p for p in upstream.counts)


def test_access_rules_proxy_field_decides_per_pattern(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {"package": "left-*", "proxy": []},
                {"package": "@public/*", "proxy": ["npmjs"]},
                {"package": "**"},
            ]
        )
    )
    app = build(tmp_path / "data", upstream.url, {"R13_ACCESS_RULES": str(rules)})
    assert app.get("/left-pad").status_code == 404
    assert upstream.count("/left-pad") == 0
    assert app.get("/@public%2ftool").status_code == 200


def test_publishing_a_name_the_upstream_has_needs_an_admin_override(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    refused = app.publish("left-pad", publish_body("left-pad", "9.0.0"))
    assert refused.status_code == 409
    assert "upstream" in refused.json["error"]
    assert app.publish("left-pad", publish_body("left-pad", "9.0.0"), admin=True).status_code == 409
    allowed = app.client.simulate_put("/_api/uplink/overrides/left-pad", headers=app.admin)
    assert allowed.status_code in (200, 201)
    assert app.publish("left-pad", publish_body("left-pad", "9.0.0")).status_code == 201
    # A name the upstream lacks needs nothing.
    assert app.publish("brand-new", publish_body("brand-new", "1.0.0")).status_code == 201


def test_only_an_admin_may_allow_shadowing(app: ProxyApp) -> None:
    denied = app.client.simulate_put("/_api/uplink/overrides/left-pad", headers=app.writer)
    assert denied.status_code == 403


def test_a_publish_is_refused_when_the_upstream_cannot_say(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    upstream.default_mode = "5xx"
    refused = app.publish("fresh-name", publish_body("fresh-name", "1.0.0"))
    assert refused.status_code == 502
    assert "private scope" in refused.json["error"]


def test_a_private_scope_publish_never_asks_the_upstream(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    app = build(tmp_path, upstream.url, {"R13_PRIVATE_SCOPES": "@team"})
    upstream.add("@team/core", "1.0.0")
    assert app.publish("@team/core", publish_body("@team/core", "1.0.0")).status_code == 201
    assert not any("@team" in p for p in upstream.counts)


# -- loops ----------------------------------------------------------------------------


def test_a_request_that_already_passed_through_us_is_refused_as_a_loop(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    me = app.services.uplink.client.via_token
    looped = app.get("/left-pad", headers={"Via": f"1.1 other, 1.1 {me}"})
    assert looped.status_code == 508
    assert upstream.count("/left-pad") == 0
    # Another registry's Via is passed on, with ours after it.
    assert app.get("/left-pad", headers={"Via": "1.1 other"}).status_code == 200
    assert upstream.seen_by_path["/left-pad"]["Via"] == f"1.1 other, 1.1 {me}"


def test_the_uplink_token_is_sent_upstream(tmp_path: Path, upstream: FaultyUpstream) -> None:
    app = build(tmp_path, upstream.url, {"R13_UPLINK_TOKEN": "s3cret"})
    app.get("/left-pad")
    assert upstream.seen_by_path["/left-pad"]["Authorization"] == "Bearer s3cret"


def test_the_tarball_bytes_match_a_fresh_pack(app: ProxyApp, upstream: FaultyUpstream) -> None:
    data = package_tgz("exact", "1.0.0", description="x")
    upstream.add("exact", "1.0.0", tgz=data)
    assert app.get("/exact/-/exact-1.0.0.tgz").content == data


def test_a_scope_that_becomes_private_stops_being_proxied_at_once(
    app: ProxyApp, upstream: FaultyUpstream
) -> None:
    upstream.add("@team/util", "1.0.0")
    assert app.get("/@team%2futil").status_code == 200  # proxied (and the decision remembered)
    assert app.get("/@team%2futil").headers["X-R13-Cache"] == "HIT"
    app.services.uplink.allow_publish(PackageName.parse("@team/core"), actor=Actor("root"))
    assert app.publish("@team/core", publish_body("@team/core", "1.0.0")).status_code == 201
    # @team now has a local package: its other names are never served from upstream,
    # not even from the cache filled before.
    assert app.get("/@team%2futil").status_code == 404
    assert app.get("/@team/util/-/util-1.0.0.tgz").status_code == 404
