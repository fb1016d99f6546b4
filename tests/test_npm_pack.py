"""npm packages built as the npm CLI builds them (r13core/npm_pack.py), read back by r13."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path

from r13core import npm_pack
from r13core.audit import Actor
from r13core.names import PackageName
from r13core.tarball import check_integrity, inspect_tarball
from tests.npm_builders import open_registry


def members(tgz: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        return tar.getmembers()


def test_a_pack_is_reproducible_and_laid_out_as_npm_packs() -> None:
    files: dict[str, bytes | str] = {"index.js": "x", "bin/cli.js": b"#!/usr/bin/env node\n"}
    tgz = npm_pack.pack(files, executable={"bin/cli.js"})
    assert tgz == npm_pack.pack(files, executable={"bin/cli.js"})
    assert gzip.decompress(tgz)  # a plain gzip stream
    assert tgz[4:8] == b"\0\0\0\0"  # no time in the gzip header
    found = members(tgz)
    assert [m.name for m in found] == ["package/index.js", "package/bin/cli.js"]
    assert [m.mode for m in found] == [0o644, 0o755]
    assert {m.mtime for m in found} == {npm_pack.NPM_MTIME}
    assert {(m.uid, m.gid) for m in found} == {(0, 0)}


def test_a_long_path_survives_in_a_pax_header() -> None:
    deep = "/".join(["directory"] * 30) + "/file.js"
    tgz = npm_pack.pack({deep: "x"})
    assert [m.name for m in members(tgz)] == [f"package/{deep}"]


def test_the_package_json_comes_first_and_reads_back() -> None:
    manifest = {"name": "@team/widget", "version": "1.2.3", "types": "index.d.ts"}
    tgz = npm_pack.package_tarball(manifest, {"index.d.ts": "export {};\n"})
    assert members(tgz)[0].name == "package/package.json"
    info = inspect_tarball(tgz)
    assert info.manifest == manifest and info.has_types
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        text = tar.extractfile("package/package.json").read().decode()  # type: ignore[union-attr]
    assert text == json.dumps(manifest, indent=2) + "\n"


def test_a_package_json_among_the_files_wins() -> None:
    lie = '{"name": "other", "version": "9.9.9"}'
    tgz = npm_pack.package_tarball({"name": "a", "version": "1.0.0"}, {"package.json": lie})
    assert inspect_tarball(tgz).manifest == {"name": "other", "version": "9.9.9"}


def test_the_publish_document_is_what_libnpmpublish_sends() -> None:
    manifest = {"name": "@team/widget", "version": "1.2.3", "description": "a widget"}
    tgz = npm_pack.package_tarball(manifest)
    doc = npm_pack.publish_document(manifest, tgz, registry="http://r13.test:4873/", tag="next")
    assert doc["_id"] == doc["name"] == "@team/widget"
    assert doc["description"] == "a widget" and doc["access"] == "public"
    assert doc["dist-tags"] == {"next": "1.2.3"}
    version = doc["versions"]["1.2.3"]
    assert version["_id"] == "@team/widget@1.2.3" and version["description"] == "a widget"
    assert version["dist"]["tarball"] == (
        "http://r13.test:4873/@team/widget/-/@team/widget-1.2.3.tgz"
    )
    assert check_integrity(tgz, version["dist"])  # sha512 and sha1 both match
    ((filename, attachment),) = doc["_attachments"].items()
    assert filename == "@team/widget-1.2.3.tgz"
    assert PackageName.parse("@team/widget").version_of_file(filename) == "1.2.3"
    assert base64.b64decode(attachment["data"]) == tgz and attachment["length"] == len(tgz)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON


def test_options_leave_dist_out_and_rename_the_attachment() -> None:
    manifest = {"name": "a", "version": "1.0.0"}
    doc = npm_pack.publish_document(
        manifest, b"bytes", with_dist=False, attachment="b-1.0.0.tgz", access=None
    )
    assert "dist" not in doc["versions"]["1.0.0"] and "description" not in doc
    assert list(doc["_attachments"]) == ["b-1.0.0.tgz"] and doc["access"] is None


def test_the_registry_accepts_what_the_builder_makes(tmp_path: Path) -> None:
    manifest = {"name": "@team/widget", "version": "1.0.0"}
    tgz = npm_pack.package_tarball(manifest, {"index.js": "module.exports = 1;\n"})
    reg = open_registry(tmp_path)
    name = PackageName.parse("@team/widget")
    reg.put_package(name, npm_pack.publish_document(manifest, tgz), actor=Actor("alice"))
    blob = reg.tarball(name, "widget-1.0.0.tgz")
    assert blob.path.read_bytes() == tgz
