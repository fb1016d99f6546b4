"""The look inside a published tarball, and the attachment/integrity checks."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core.errors import InvalidPublish
from r13core.tarball import (
    Limits,
    check_integrity,
    decode_attachment,
    inspect_tarball,
    sha1_hex,
    sri_sha512,
)
from tests.npm_builders import (
    make_tgz,
    manifest_member,
    package_json,
    raw_tgz,
    sri,
    tar_member,
)


def test_npm_style_tarball_yields_its_package_json_and_files() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0"), "lib/index.js": "x"})
    info = inspect_tarball(tgz)
    assert info.manifest == {"name": "a", "version": "1.0.0"}
    assert info.entries == 2
    assert info.files == {"package.json", "lib/index.js"}
    assert info.file_count == 2
    assert info.unpacked_size == len(package_json("a", "1.0.0")) + 1
    assert not info.has_types
    assert not info.bundled_install


def test_directory_entries_count_as_entries_but_not_files() -> None:
    tgz = raw_tgz(
        tar_member("package/", kind=b"5"),
        tar_member("package/lib/", kind=b"5"),
        manifest_member(),
        tar_member("package/lib/a.js", b"1"),
    )
    info = inspect_tarball(tgz)
    assert (info.entries, info.file_count) == (4, 2)


def test_another_top_directory_is_refused() -> None:
    # npm, pnpm, yarn and bun all pack under package/; pacote strips whatever the
    # first component is, so anything else would let the registry and the client
    # disagree about where package.json is.
    tgz = make_tgz({"package.json": package_json("a", "1.0.0")}, top="a-1.0.0")
    with pytest.raises(InvalidPublish, match=r"not under package/"):
        inspect_tarball(tgz)


def test_tarball_without_package_json_is_refused() -> None:
    with pytest.raises(InvalidPublish, match=r"no package/package\.json"):
        inspect_tarball(make_tgz({"index.js": "x"}))


def test_files_outside_a_top_directory_are_refused() -> None:
    with pytest.raises(InvalidPublish, match=r"not under package/"):
        inspect_tarball(make_tgz({"package.json": package_json("a", "1.0.0")}, top=""))


def test_package_json_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvalidPublish, match="not valid JSON"):
        inspect_tarball(make_tgz({"package.json": "{nope"}))
    with pytest.raises(InvalidPublish, match="not a JSON object"):
        inspect_tarball(make_tgz({"package.json": "[1]"}))


def test_tar_with_too_many_entries_is_refused() -> None:
    files: dict[str, bytes | str] = {f"f{i}.js": "" for i in range(60)}
    files["package.json"] = package_json("a", "1.0.0")
    with pytest.raises(InvalidPublish, match="more than 50 entries"):
        inspect_tarball(make_tgz(files), Limits(max_entries=50))


def test_tarball_over_the_size_limit_is_refused() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0")})
    with pytest.raises(InvalidPublish, match="larger than"):
        inspect_tarball(tgz, Limits(max_tarball=len(tgz) - 1))


def test_bytes_that_are_not_gzip_are_refused() -> None:
    with pytest.raises(InvalidPublish, match="not gzip"):
        inspect_tarball(b"PK\x03\x04 a zip file")


def test_truncated_gzip_is_refused() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0"), "big": os.urandom(100_000)})
    with pytest.raises(InvalidPublish, match=r"truncated|ends inside"):
        inspect_tarball(tgz[: len(tgz) // 2])


def test_gzip_of_something_that_is_not_tar_is_refused() -> None:
    with pytest.raises(InvalidPublish, match=r"tarball: "):
        inspect_tarball(gzip.compress(b"hello, not a tar" * 100))


def test_a_second_gzip_member_is_refused() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0")})
    with pytest.raises(InvalidPublish, match="one gzip member"):
        inspect_tarball(tgz + gzip.compress(b"more"))


def test_bytes_after_the_gzip_stream_are_refused() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0")})
    with pytest.raises(InvalidPublish, match="one gzip member"):
        inspect_tarball(tgz + b"trailing")


def test_a_corrupt_deflate_stream_is_refused() -> None:
    tgz = bytearray(make_tgz({"package.json": package_json("a", "1.0.0")}))
    tgz[12:20] = b"\xff" * 8
    with pytest.raises(InvalidPublish, match="tarball"):
        inspect_tarball(bytes(tgz))


def test_entry_paths_that_climb_out_are_refused() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0"), "../../evil": "x"})
    with pytest.raises(InvalidPublish, match="unsafe path"):
        inspect_tarball(tgz)


@pytest.mark.parametrize("file", ["index.d.ts", "lib/types.d.mts", "x.d.cts"])
def test_declaration_files_mean_the_package_ships_types(file: str) -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0"), file: "export {}"})
    assert inspect_tarball(tgz).has_types


@pytest.mark.parametrize("field", ["types", "typings"])
def test_types_field_means_the_package_ships_types(field: str) -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0", **{field: "main.d.ts"})})
    assert inspect_tarball(tgz).has_types


def test_plain_ts_sources_are_not_types() -> None:
    tgz = make_tgz({"package.json": package_json("a", "1.0.0"), "src/x.ts": "let a = 1"})
    assert not inspect_tarball(tgz).has_types


# -- attachment decoding and integrity ------------------------------------------------


def test_attachment_decodes_strict_base64_of_the_stated_length() -> None:
    data = b"\x00\x01tarball"
    encoded = base64.b64encode(data).decode()
    assert decode_attachment(encoded, len(data), limit=100) == data


@pytest.mark.parametrize("bad", ["not base64!", "YWJj\nZA==", "YWJjZA", ""])
def test_attachment_that_is_not_strict_base64_is_refused(bad: str) -> None:
    with pytest.raises(InvalidPublish):
        decode_attachment(bad, None, limit=100)


def test_attachment_length_must_match() -> None:
    with pytest.raises(InvalidPublish, match="length mismatch"):
        decode_attachment(base64.b64encode(b"abcd").decode(), 5, limit=100)


def test_attachment_over_the_limit_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidPublish, match="larger than"):
        decode_attachment(base64.b64encode(bytes(1000)).decode(), 1000, limit=999)


def test_integrity_and_shasum_are_ours_when_the_client_sent_none() -> None:
    data = b"bytes"
    assert check_integrity(data, None) == (sri_sha512(data), sha1_hex(data))
    assert sri_sha512(data) == sri(data)
    assert sha1_hex(data) == hashlib.sha1(data).hexdigest()


def test_mismatched_integrity_is_refused() -> None:
    with pytest.raises(InvalidPublish, match="integrity"):
        check_integrity(b"bytes", {"integrity": sri(b"other")})


def test_integrity_without_sha512_is_refused() -> None:
    with pytest.raises(InvalidPublish, match="no sha512"):
        check_integrity(b"bytes", {"integrity": "sha1-AAAA"})


def test_mismatched_shasum_is_refused() -> None:
    with pytest.raises(InvalidPublish, match="shasum"):
        check_integrity(b"bytes", {"shasum": "0" * 40})


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=150)
@given(st.binary(max_size=4096), st.booleans())
def test_hostile_bytes_only_ever_fail_as_invalid_publish(data: bytes, gzipped: bool) -> None:
    payload = gzip.compress(data) if gzipped else b"\x1f\x8b" + data
    with contextlib.suppress(InvalidPublish):
        inspect_tarball(payload, Limits(max_unpacked=1 << 20, max_entries=100))
