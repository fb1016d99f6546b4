"""Publishing: what a good publish stores and serves, and every check a bad one fails."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from r13core import npm_pack
from r13core.audit import Actor
from r13core.config import Feature
from r13core.errors import InvalidPublish, NotFound, VersionExists
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.tarball import Limits
from tests.npm_builders import (
    PUBLIC_URL,
    LiveConfig,
    files_under,
    make_tgz,
    manifest_member,
    open_registry,
    package_json,
    package_tgz,
    pax_member,
    publish_body,
    raw_tgz,
    tar_header,
    tar_member,
)

A = PackageName.parse("widget")
S = PackageName.parse("@acme/widget")


@pytest.fixture
def config() -> LiveConfig:
    return LiveConfig()


@pytest.fixture
def reg(tmp_path: Path, config: LiveConfig) -> Registry:
    return open_registry(tmp_path, config, limits=Limits(max_unpacked=4 << 20))


def full(reg: Registry, name: PackageName) -> dict[str, Any]:
    return json.loads(reg.packument(name, abbreviated=False).body)  # type: ignore[no-any-return]


def abbreviated(reg: Registry, name: PackageName) -> dict[str, Any]:
    return json.loads(reg.packument(name, abbreviated=True).body)  # type: ignore[no-any-return]


def test_publish_creates_the_package_with_our_dist_and_the_publisher_as_maintainer(
    reg: Registry,
) -> None:
    created, answer = reg.put_package(S, publish_body(str(S), "1.0.0"), actor=Actor("alice"))
    assert created and answer["ok"] and answer["id"] == "@acme/widget"
    doc = full(reg, S)
    assert doc["_id"] == doc["name"] == "@acme/widget"
    assert doc["_rev"] == answer["rev"]
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    assert doc["maintainers"] == [{"name": "alice", "email": ""}]
    assert doc["description"] == "the widget package"
    assert set(doc["time"]) == {"created", "modified", "1.0.0"}
    version = doc["versions"]["1.0.0"]
    assert version["_npmUser"]["name"] == "alice"
    assert version["dist"]["tarball"] == f"{PUBLIC_URL}/@acme/widget/-/widget-1.0.0.tgz"
    tgz = package_tgz(str(S), "1.0.0")
    ref = reg.tarball(S, "widget-1.0.0.tgz")
    assert ref.path.read_bytes() == tgz
    assert ref.size == len(tgz)
    assert version["dist"]["integrity"] == ref.integrity


def test_abbreviated_packument_has_the_install_subset_with_time_and_modified(
    reg: Registry,
) -> None:
    body = publish_body("widget", "1.0.0", manifest={"dependencies": {"a": "^1"}, "bin": "x.js"})
    reg.put_package(A, body, actor=Actor("alice"))
    doc = abbreviated(reg, A)
    assert set(doc) == {"name", "modified", "dist-tags", "time", "versions"}
    v = doc["versions"]["1.0.0"]
    assert v["dependencies"] == {"a": "^1"}
    assert v["bin"] == {"widget": "x.js"}  # npm's object form
    assert "description" not in v and "_npmUser" not in v
    assert v["dist"]["tarball"].startswith(PUBLIC_URL)
    assert doc["time"]["1.0.0"] == doc["modified"]


def test_packument_comes_with_gzip_and_an_etag_that_changes_with_the_package(
    reg: Registry,
) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    first = reg.packument(A, abbreviated=False)
    assert gzip.decompress(first.gzip) == first.body
    assert first.etag.startswith('"') and first.etag.endswith('"')
    assert reg.packument(A, abbreviated=False) == first
    assert reg.packument(A, abbreviated=True).etag != first.etag
    reg.put_package(A, publish_body("widget", "1.1.0"), actor=Actor("alice"))
    assert reg.packument(A, abbreviated=False).etag != first.etag


def test_client_supplied_tarball_url_is_ignored(reg: Registry) -> None:
    body = publish_body("widget", "1.0.0")
    assert "elsewhere.invalid" in json.dumps(body)
    reg.put_package(A, body, actor=Actor("alice"))
    assert "elsewhere.invalid" not in reg.packument(A, abbreviated=False).body.decode()


def test_publish_without_client_integrity_stores_ours(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0", with_dist=False), actor=Actor("alice"))
    dist = full(reg, A)["versions"]["1.0.0"]["dist"]
    assert dist["integrity"].startswith("sha512-")
    assert len(dist["shasum"]) == 40


@pytest.mark.parametrize("attachment", ["widget-1.0.0.tgz", "@acme/widget-1.0.0.tgz"])
def test_scoped_attachment_may_be_named_bare_or_full(reg: Registry, attachment: str) -> None:
    body = publish_body(str(S), "1.0.0", attachment_name=attachment)
    reg.put_package(S, body, actor=Actor("alice"))
    assert "1.0.0" in full(reg, S)["versions"]


def test_same_version_with_the_same_bytes_again_succeeds_once(reg: Registry) -> None:
    body = publish_body("widget", "1.0.0")
    first = reg.put_package(A, copy.deepcopy(body), actor=Actor("alice"))
    second = reg.put_package(A, copy.deepcopy(body), actor=Actor("alice"))
    assert first == second
    assert list(full(reg, A)["versions"]) == ["1.0.0"]
    assert reg.stats() == {"packages": 1, "versions": 1}


def test_same_version_with_other_bytes_is_refused_and_leaves_no_file(
    reg: Registry, tmp_path: Path
) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    before = files_under(tmp_path / "blobs")
    other = package_tgz("widget", "1.0.0", extra_files={"new.js": "changed"})
    with pytest.raises(VersionExists, match="other contents"):
        reg.put_package(A, publish_body("widget", "1.0.0", other), actor=Actor("alice"))
    assert files_under(tmp_path / "blobs") == before


def test_later_publish_adds_a_version_and_moves_latest(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    reg.put_package(A, publish_body("widget", "1.1.0"), actor=Actor("bob"))
    doc = full(reg, A)
    assert list(doc["versions"]) == ["1.0.0", "1.1.0"]
    assert doc["dist-tags"] == {"latest": "1.1.0"}
    assert doc["maintainers"] == [{"name": "alice", "email": ""}]


def test_publish_with_another_tag_leaves_latest_alone(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    reg.put_package(A, publish_body("widget", "2.0.0-beta.1", tag="next"), actor=Actor("alice"))
    assert full(reg, A)["dist-tags"] == {"latest": "1.0.0", "next": "2.0.0-beta.1"}


def test_first_publish_under_another_tag_also_sets_latest(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0-rc.1", tag="next"), actor=Actor("alice"))
    assert full(reg, A)["dist-tags"] == {"next": "1.0.0-rc.1", "latest": "1.0.0-rc.1"}


def test_a_body_that_repeats_existing_versions_is_still_one_new_version(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    body = publish_body("widget", "1.1.0")
    body["versions"]["1.0.0"] = full(reg, A)["versions"]["1.0.0"]
    reg.put_package(A, body, actor=Actor("alice"))
    assert list(full(reg, A)["versions"]) == ["1.0.0", "1.1.0"]


def test_readme_and_install_scripts_are_recorded(reg: Registry) -> None:
    tgz = package_tgz("widget", "1.0.0", scripts={"postinstall": "node x"})
    body = publish_body("widget", "1.0.0", tgz)
    body["readme"] = "# Widget"
    reg.put_package(A, body, actor=Actor("alice"))
    doc = full(reg, A)
    assert doc["readme"] == "# Widget"
    assert doc["versions"]["1.0.0"]["hasInstallScript"] is True
    assert abbreviated(reg, A)["versions"]["1.0.0"]["hasInstallScript"] is True


def test_one_version_by_number_or_tag(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    by_tag = json.loads(reg.version(A, "latest").body)
    by_number = json.loads(reg.version(A, "1.0.0").body)
    assert by_tag == by_number
    assert by_tag["version"] == "1.0.0"
    assert by_tag["dist"]["tarball"].endswith("/widget/-/widget-1.0.0.tgz")
    with pytest.raises(NotFound):
        reg.version(A, "9.9.9")
    with pytest.raises(NotFound):
        reg.version(PackageName.parse("ghost"), "latest")


def test_unknown_package_and_tarball_are_not_found(reg: Registry) -> None:
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=True)
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    for filename in ("widget-2.0.0.tgz", "other-1.0.0.tgz", "../../x.tgz"):
        with pytest.raises(NotFound):
            reg.tarball(A, filename)


# -- PREMIUM_TYPES ---------------------------------------------------------------------


def _typed_body() -> dict[str, Any]:
    tgz = make_tgz({"package.json": package_json("widget", "1.0.0"), "index.d.ts": "export {}"})
    return publish_body("widget", "1.0.0", tgz)


def test_types_are_marked_when_premium_types_is_on(reg: Registry, config: LiveConfig) -> None:
    config.set(Feature.PREMIUM_TYPES, True)
    reg.put_package(A, _typed_body(), actor=Actor("alice"))
    assert full(reg, A)["versions"]["1.0.0"]["_hasTypes"] is True
    assert reg.search("widget")["objects"][0]["package"]["hasTypes"] is True


def test_types_are_not_marked_when_premium_types_is_off(reg: Registry) -> None:
    reg.put_package(A, _typed_body(), actor=Actor("alice"))
    assert "_hasTypes" not in full(reg, A)["versions"]["1.0.0"]
    assert "hasTypes" not in reg.search("widget")["objects"][0]["package"]


def test_a_client_cannot_claim_types_it_does_not_ship(reg: Registry, config: LiveConfig) -> None:
    config.set(Feature.PREMIUM_TYPES, True)
    reg.put_package(
        A, publish_body("widget", "1.0.0", manifest={"_hasTypes": True}), actor=Actor("a")
    )
    assert "_hasTypes" not in full(reg, A)["versions"]["1.0.0"]


# -- every check, failing -------------------------------------------------------------

Mutator = Callable[[dict[str, Any]], None]


def _att(body: dict[str, Any]) -> dict[str, Any]:
    return next(iter(body["_attachments"].values()))


def _set_tgz(tgz: bytes) -> Mutator:
    def mutate(body: dict[str, Any]) -> None:
        att = _att(body)
        att["data"] = base64.b64encode(tgz).decode()
        att["length"] = len(tgz)
        body["versions"]["1.0.0"].pop("dist")

    return mutate


def _bomb() -> bytes:
    """A package whose one file is 64 MiB of zeros, built without holding it."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [
        z.compress(manifest_member("widget")),
        z.compress(tar_header("package/z", size=64 << 20)),
    ]
    parts += [z.compress(bytes(1 << 20)) for _ in range(64)]
    return b"".join([*parts, z.compress(bytes(1024)), z.flush()])


def _rename_attachment(new: str) -> Mutator:
    def mutate(body: dict[str, Any]) -> None:
        body["_attachments"] = {new: _att(body)}

    return mutate


def _second_version(body: dict[str, Any]) -> None:
    body["versions"]["1.1.0"] = dict(body["versions"]["1.0.0"], version="1.1.0")


def _extra_attachment(suffix: str) -> Mutator:
    def mutate(body: dict[str, Any]) -> None:
        body["_attachments"][f"widget-1.0.0{suffix}"] = dict(_att(body))

    return mutate


def _two_sigstores(body: dict[str, Any]) -> None:
    for suffix in (".sigstore", "-b.sigstore"):
        body["_attachments"][f"widget-1.0.0{suffix}"] = {"data": "e30=", "length": 2}


BAD_PUBLISHES: list[tuple[str, Mutator, str]] = [
    ("body name differs", lambda b: b.update(name="other"), "body name"),
    ("body _id differs", lambda b: b.update(_id="other"), "body _id"),
    ("no versions", lambda b: b.pop("versions"), "versions must contain"),
    ("version missing", lambda b: b.update(versions={}), "versions must contain"),
    ("two new versions", _second_version, "exactly one new version"),
    ("two tarballs", _extra_attachment("-x.tgz"), ".tgz"),
    ("two sigstores", _two_sigstores, "at most one .sigstore"),
    ("foreign attachment", _extra_attachment(".zip"), "exactly one .tgz"),
    ("attachment of another package", _rename_attachment("other-1.0.0.tgz"), "does not match"),
    ("attachment of another version", _rename_attachment("widget-1.0.1.tgz"), "versions must"),
    ("attachment not .tgz", _rename_attachment("widget-1.0.0.tar"), "exactly one .tgz"),
    ("bad base64", lambda b: _att(b).update(data="@@not base64@@"), "base64"),
    ("base64 with newlines", lambda b: _att(b).update(data=_att(b)["data"][:8] + "\n"), "base64"),
    ("length mismatch", lambda b: _att(b).update(length=_att(b)["length"] + 1), "length"),
    (
        "integrity mismatch",
        lambda b: b["versions"]["1.0.0"]["dist"].update(integrity="sha512-AAAA"),
        "integrity",
    ),
    (
        "shasum mismatch",
        lambda b: b["versions"]["1.0.0"]["dist"].update(shasum="0" * 40),
        "shasum",
    ),
    ("manifest name differs", lambda b: b["versions"]["1.0.0"].update(name="x"), "manifest name"),
    (
        "manifest version differs",
        lambda b: b["versions"]["1.0.0"].update(version="1.0.1"),
        "manifest version",
    ),
    ("not gzip", _set_tgz(b"plain bytes, not gzip"), "not gzip"),
    ("no package.json", _set_tgz(make_tgz({"index.js": "x"})), "no package"),
    (
        "tarball names another package",
        _set_tgz(make_tgz({"package.json": package_json("other", "1.0.0")})),
        "names 'other'",
    ),
    (
        "tarball has another version",
        _set_tgz(make_tgz({"package.json": package_json("widget", "2.0.0")})),
        "has version '2.0.0'",
    ),
    (
        "gzip bomb",
        _set_tgz(make_tgz({"package.json": package_json("widget", "1.0.0"), "z": bytes(8 << 20)})),
        "unpacks to more than",
    ),
    (
        "symlink in the tarball",
        _set_tgz(raw_tgz(manifest_member("widget"), tar_header("package/x", kind=b"2"))),
        "symbolic link",
    ),
    (
        "hard link in the tarball",
        _set_tgz(raw_tgz(manifest_member("widget"), tar_header("package/x", kind=b"1"))),
        "hard link",
    ),
    (
        "device in the tarball",
        _set_tgz(raw_tgz(manifest_member("widget"), tar_header("package/x", kind=b"3"))),
        "character device",
    ),
    (
        "absolute path in the tarball",
        _set_tgz(raw_tgz(manifest_member("widget"), tar_member("/etc/x", b"1"))),
        "absolute",
    ),
    (
        "pax path that climbs out",
        _set_tgz(
            raw_tgz(
                manifest_member("widget"),
                pax_member({"path": "package/../../x"}) + tar_member("package/ok", b"1"),
            )
        ),
        "climbs out",
    ),
    (
        "top directory other than package/",
        _set_tgz(make_tgz({"package.json": package_json("widget", "1.0.0")}, top="widget")),
        "not under package/",
    ),
    (
        "a case twin of package.json",
        _set_tgz(
            raw_tgz(
                manifest_member("widget"),
                tar_member("package/Package.json", package_json("widget", "1.0.0").encode()),
            )
        ),
        "names the same file",
    ),
    (
        "package.json nested deeper than 64",
        _set_tgz(
            raw_tgz(tar_member("package/package.json", b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"))
        ),
        "nested deeper",
    ),
    (
        "bin that leaves the package",
        _set_tgz(package_tgz("widget", "1.0.0", bin={"widget": "../../../usr/bin/env"})),
        "leaves the package",
    ),
    (
        "bin name with a path",
        _set_tgz(package_tgz("widget", "1.0.0", bin={"../.bashrc": "x.js"})),
        "not a safe command name",
    ),
    (
        "man page outside the package",
        _set_tgz(package_tgz("widget", "1.0.0", man="/usr/share/man/man1/ls.1")),
        "absolute path",
    ),
    (
        "main with a backslash",
        _set_tgz(package_tgz("widget", "1.0.0", main="..\\..\\x.js")),
        "not a safe path",
    ),
    (
        "dependencies that are not an object",
        _set_tgz(package_tgz("widget", "1.0.0", dependencies=["evil"])),
        "dependencies must be an object",
    ),
    ("tag that reads as a range", lambda b: b.update({"dist-tags": {"v1": "1.0.0"}}), "range"),
    ("tag at an unknown version", lambda b: b.update({"dist-tags": {"beta": "9.0.0"}}), "unknown"),
    ("attachments not an object", lambda b: b.update(_attachments=["x"]), "must be an object"),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [c[1:] for c in BAD_PUBLISHES], ids=[c[0] for c in BAD_PUBLISHES]
)
def test_bad_publish_is_refused_and_leaves_nothing_behind(
    reg: Registry, tmp_path: Path, mutate: Mutator, message: str
) -> None:
    body = publish_body("widget", "1.0.0")
    mutate(body)
    with pytest.raises(InvalidPublish, match=message.replace("(", r"\(").replace(".", r"\.")):
        reg.put_package(A, body, actor=Actor("alice"))
    assert reg.storage.package("widget") is None
    assert reg.storage.used_version("widget", "1.0.0") is None
    assert files_under(tmp_path / "blobs") == []  # no blob, no temp file
    # and the good publish still goes through afterwards
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))


def test_bad_version_number_is_refused(reg: Registry, tmp_path: Path) -> None:
    body = publish_body("widget", "1.0.0")
    body["_attachments"] = {"widget-1.0.tgz": _att(body)}
    with pytest.raises(InvalidPublish):
        reg.put_package(A, body, actor=Actor("alice"))
    assert files_under(tmp_path / "blobs") == []


def test_new_package_with_uppercase_name_is_refused(reg: Registry, tmp_path: Path) -> None:
    name = PackageName.parse("Widget")
    with pytest.raises(InvalidPublish, match="lowercase"):
        reg.put_package(name, publish_body("Widget", "1.0.0"), actor=Actor("alice"))
    assert files_under(tmp_path / "blobs") == []


def test_a_sigstore_bundle_may_come_with_the_tarball(reg: Registry) -> None:
    # As libnpmpublish sends it: the bundle's JSON text, not base64
    # (tests/test_provenance.py has every check made on it).
    body = publish_body("widget", "1.0.0")
    bundle = npm_pack.provenance_bundle("widget", "1.0.0", package_tgz("widget", "1.0.0"))
    created, _ = reg.put_package(A, npm_pack.with_provenance(body, bundle), actor=Actor("alice"))
    assert created
    assert reg.attestations(A, "1.0.0")["attestations"][0]["bundle"] == bundle


def test_a_gzip_bomb_is_refused_by_its_ratio_and_leaves_nothing(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)  # default limits: 1 GiB unpacked, 200:1 past 16 MiB
    body = publish_body("widget", "1.0.0")
    _set_tgz(_bomb())(body)
    with pytest.raises(InvalidPublish, match="inflates more than 200:1"):
        reg.put_package(A, body, actor=Actor("alice"))
    assert reg.storage.package("widget") is None
    assert files_under(tmp_path / "blobs") == []
