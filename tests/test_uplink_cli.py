"""`r13 cache`, `r13 uplink`, `r13 mirror`, and a restart with a warm cache."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from r13core.uplink.mirror import read_wanted
from tests.npm_builders import publish_body
from tests.uplink_app import ProxyApp, build
from tests.uplink_fakes import FaultyUpstream

DAY_MS = 86_400_000


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream().start()
    up.add("left-pad", "1.0.0", "1.1.0")
    up.add("@public/tool", "2.0.0")
    up.add("old-thing", "0.1.0")
    yield up
    up.stop()


@pytest.fixture
def app(tmp_path: Path, upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch) -> ProxyApp:
    built = build(tmp_path, upstream.url)
    for key, value in built.env.items():  # the CLI reads the same environment
        monkeypatch.setenv(key, value)
    return built


def cli(app: ProxyApp, *argv: str) -> int:
    return main(["--data", str(app.data), *argv])


def test_cache_stats_counts_what_was_proxied(
    app: ProxyApp, capsys: pytest.CaptureFixture[str]
) -> None:
    app.get("/left-pad")
    app.get("/left-pad/-/left-pad-1.0.0.tgz")
    capsys.readouterr()
    assert cli(app, "cache", "stats", "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["packuments"] == 1
    assert stats["tarballs"] == 1
    assert stats["tarball_bytes"] > 0


def test_prune_older_than_forgets_only_what_is_that_old(
    app: ProxyApp, upstream: FaultyUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    now = int(time.time() * 1000)
    app.clock.now_ms = now - 40 * DAY_MS
    app.get("/old-thing/-/old-thing-0.1.0.tgz")
    app.clock.now_ms = now
    app.get("/left-pad/-/left-pad-1.0.0.tgz")
    old_sha = hashlib.sha512(upstream.tarballs["old-thing"]["0.1.0"]).hexdigest()
    assert app.services.blobs.path(old_sha) is not None
    assert cli(app, "cache", "prune", "--older-than", "30d") == 0
    assert "pruned 1 packuments, 1 tarballs (1 files" in capsys.readouterr().out
    storage = app.services.storage
    assert storage.cached_tarball("old-thing", "0.1.0") is None
    assert storage.cached_packument("old-thing", "abbreviated") is None
    assert app.services.blobs.path(old_sha) is None
    assert storage.cached_tarball("left-pad", "1.0.0") is not None
    assert cli(app, "cache", "prune") == 0  # everything
    assert storage.cache_counts().tarballs == 0


def test_prune_keeps_a_file_a_local_tarball_shares(app: ProxyApp, upstream: FaultyUpstream) -> None:
    body = publish_body("mine", "1.0.0")
    assert app.publish("mine", body).status_code == 201
    local = app.get("/mine/-/mine-1.0.0.tgz").content
    upstream.add("twin", "1.0.0", tgz=local)  # the same bytes upstream under another name
    assert app.get("/twin/-/twin-1.0.0.tgz").status_code == 200
    assert cli(app, "cache", "prune") == 0
    assert app.get("/mine/-/mine-1.0.0.tgz").content == local


def test_verify_finds_a_corrupted_cached_file_and_removes_it(
    app: ProxyApp, upstream: FaultyUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    good = upstream.tarballs["left-pad"]["1.0.0"]
    app.get("/left-pad/-/left-pad-1.0.0.tgz")
    app.get("/left-pad/-/left-pad-1.1.0.tgz")
    sha = hashlib.sha512(good).hexdigest()
    path = app.services.blobs.path(sha)
    assert path is not None
    middle = len(good) // 2
    path.write_bytes(good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :])  # rot
    capsys.readouterr()
    assert cli(app, "cache", "verify", "--no-progress") == 1
    out = capsys.readouterr().out
    assert "checked 2 files" in out
    assert "corrupt  left-pad@1.0.0" in out
    assert "left-pad@1.1.0" not in out
    assert app.services.blobs.path(sha) is None
    assert app.services.storage.cached_tarball("left-pad", "1.0.0") is None
    # Fetched again, whole, on the next request.
    again = app.get("/left-pad/-/left-pad-1.0.0.tgz")
    assert again.content == good
    assert again.headers["X-R13-Cache"] == "MISS"
    assert cli(app, "cache", "verify", "--no-progress") == 0


def test_a_restart_serves_from_the_warm_cache_with_the_upstream_gone(
    tmp_path: Path, upstream: FaultyUpstream
) -> None:
    first = build(tmp_path, upstream.url)
    doc = first.abbreviated("/left-pad").json
    tgz = first.get("/left-pad/-/left-pad-1.1.0.tgz").content
    first.services.close()
    upstream.stop()
    second = build(tmp_path, upstream.url, keys=False)
    second.clock.advance(10 * DAY_MS)  # long past the max age: stale, yet served
    answer = second.abbreviated("/left-pad")
    assert answer.status_code == 200
    assert answer.json == doc
    assert answer.headers["X-R13-Cache"] == "STALE"
    assert second.get("/left-pad/-/left-pad-1.1.0.tgz").content == tgz


def test_uplink_allow_and_disallow_from_the_command_line(
    app: ProxyApp, capsys: pytest.CaptureFixture[str]
) -> None:
    assert app.publish("left-pad", publish_body("left-pad", "5.0.0")).status_code == 409
    assert cli(app, "uplink", "allow", "left-pad") == 0
    assert cli(app, "uplink", "overrides") == 0
    assert "left-pad" in capsys.readouterr().out
    assert app.publish("left-pad", publish_body("left-pad", "5.0.0")).status_code == 201
    assert cli(app, "uplink", "disallow", "left-pad") == 0
    assert cli(app, "uplink", "disallow", "left-pad") == 1
    actions = [e["action"] for e in app.services.audit.page()["events"]]
    assert "uplink.allow" in actions and "uplink.disallow" in actions


def test_uplink_status_and_reset(app: ProxyApp, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli(app, "uplink", "status") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["proxy_mode"] is True
    assert status["breaker"]["state"] == "closed"
    assert cli(app, "uplink", "reset") == 0


# -- mirror ---------------------------------------------------------------------------


def test_mirror_fills_the_cache_for_offline_installs_and_resumes(
    app: ProxyApp, upstream: FaultyUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "package-lock.json"
    lock.write_text(
        json.dumps(
            {
                "lockfileVersion": 3,
                "packages": {
                    "": {"name": "app", "version": "1.0.0"},
                    "node_modules/left-pad": {
                        "version": "1.0.0",
                        "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.0.0.tgz",
                    },
                    "node_modules/@public/tool": {"version": "2.0.0"},
                    "node_modules/local-lib": {"resolved": "../lib", "link": True},
                },
            }
        )
    )
    capsys.readouterr()
    assert cli(app, "mirror", str(lock), "--no-progress", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fetched"] == 2
    assert summary["failed"] == {}
    asked = sum(upstream.counts.values())
    # Resume: a second run asks the upstream for nothing already there.
    assert cli(app, "mirror", str(lock), "--no-progress", "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["fetched"], again["already_cached"]) == (0, 2)
    assert sum(upstream.counts.values()) == asked  # packuments fresh, tarballs cached
    upstream.stop()
    assert app.get("/left-pad/-/left-pad-1.0.0.tgz").status_code == 200
    assert app.get("/@public/tool/-/tool-2.0.0.tgz").status_code == 200


def test_mirror_skips_private_names_and_reports_failures(
    tmp_path: Path,
    upstream: FaultyUpstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = build(tmp_path / "data", upstream.url, {"R13_PRIVATE_SCOPES": "@team"})
    for key, value in app.env.items():
        monkeypatch.setenv(key, value)
    names = tmp_path / "names.txt"
    names.write_text("# what we need\nleft-pad\n@team/secret\nno-such-package@1.0.0\n")
    upstream.add("@team/secret", "1.0.0")
    capsys.readouterr()
    assert main(["--data", str(app.data), "mirror", str(names), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 fetched" in out
    assert "skipped  @team/secret (its scope is private)" in out
    assert "failed   no-such-package" in out
    assert not any("secret" in p for p in upstream.counts)
    assert app.services.storage.cached_tarball("left-pad", "1.1.0") is not None  # latest


def test_lockfiles_of_every_client_are_read(tmp_path: Path) -> None:
    v1 = tmp_path / "v1" / "package-lock.json"
    v1.parent.mkdir()
    v1.write_text(
        json.dumps(
            {
                "lockfileVersion": 1,
                "dependencies": {
                    "a": {"version": "1.0.0", "dependencies": {"b": {"version": "2.0.0"}}},
                    "c": {"version": "file:../c"},
                },
            }
        )
    )
    assert read_wanted(v1) == {"a": {"1.0.0"}, "b": {"2.0.0"}}

    pnpm9 = tmp_path / "pnpm-lock.yaml"
    pnpm9.write_text(
        "lockfileVersion: '9.0'\n\nimporters:\n  .:\n    dependencies:\n      a:\n"
        "        specifier: ^1.0.0\n        version: 1.0.0\n\npackages:\n\n"
        "  a@1.0.0:\n    resolution: {integrity: sha512-x}\n\n"
        "  '@s/b@2.1.0':\n    resolution: {integrity: sha512-y}\n\n"
        "snapshots:\n\n  a@1.0.0: {}\n"
    )
    assert read_wanted(pnpm9) == {"a": {"1.0.0"}, "@s/b": {"2.1.0"}}

    pnpm6 = tmp_path / "v6" / "pnpm-lock.yaml"
    pnpm6.parent.mkdir()
    pnpm6.write_text(
        "lockfileVersion: '6.0'\npackages:\n  /a@1.0.0:\n    dev: false\n"
        "  /@s/b@2.1.0(react@18.0.0):\n    dev: false\n"
    )
    assert read_wanted(pnpm6) == {"a": {"1.0.0"}, "@s/b": {"2.1.0"}}

    pnpm5 = tmp_path / "v5" / "pnpm-lock.yaml"
    pnpm5.parent.mkdir()
    pnpm5.write_text(
        "lockfileVersion: 5.4\npackages:\n  /a/1.0.0:\n    dev: false\n"
        "  /@s/b/2.1.0_react@18.0.0:\n    dev: false\n"
    )
    assert read_wanted(pnpm5) == {"a": {"1.0.0"}, "@s/b": {"2.1.0"}}

    yarn1 = tmp_path / "yarn.lock"
    yarn1.write_text(
        "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n"
        'a@^1.0.0, a@^1.0.1:\n  version "1.0.2"\n  resolved "https://r/a-1.0.2.tgz"\n\n'
        '"@s/b@~2.1.0":\n  version "2.1.3"\n'
    )
    assert read_wanted(yarn1) == {"a": {"1.0.2"}, "@s/b": {"2.1.3"}}

    berry = tmp_path / "berry" / "yarn.lock"
    berry.parent.mkdir()
    berry.write_text(
        '__metadata:\n  version: 6\n\n"a@npm:^1.0.0":\n  version: 1.0.2\n\n'
        '"app@workspace:.":\n  version: 0.0.0-use.local\n'
    )
    assert read_wanted(berry) == {"a": {"1.0.2"}}
