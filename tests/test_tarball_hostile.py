"""Hostile tarballs: every archive that could make the registry and the client disagree,
or cost the registry more than its limits, is refused with a message naming why."""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import tarfile
import unicodedata
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core.errors import InvalidPublish
from r13core.tarball import Limits, inspect_tarball
from tests.npm_builders import (
    GNU_MAGIC,
    gnu_long_name,
    manifest_member,
    package_json,
    pax_member,
    raw_tgz,
    tar_header,
    tar_member,
)

MiB = 1 << 20


def refused(tgz: bytes, match: str, limits: Limits | None = None) -> str:
    with pytest.raises(InvalidPublish, match=match) as caught:
        inspect_tarball(tgz, limits)
    return str(caught.value)


def test_a_plain_raw_archive_is_accepted() -> None:
    info = inspect_tarball(raw_tgz(manifest_member(), tar_member("package/a.js", b"1")))
    assert info.files == {"package.json", "a.js"}


# -- entry kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (b"1", "hard link"),
        (b"2", "symbolic link"),
        (b"3", "character device"),
        (b"4", "block device"),
        (b"6", "fifo"),
        (b"7", "contiguous file"),
        (b"S", "sparse file"),
        (b"V", "volume label"),
        (b"D", "dump directory"),
        (b"M", "multi-volume"),
        (b"Z", "unknown type"),
    ],
)
def test_anything_but_files_and_directories_is_refused(kind: bytes, what: str) -> None:
    link = tar_header("package/evil", kind=kind, patch={157: b"/etc/passwd"})
    message = refused(raw_tgz(manifest_member(), link), what)
    assert "only regular files and directories" in message


def test_a_symlink_made_by_tarfile_is_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = package_json("a", "1.0.0").encode()
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/index.js")
        link.type = tarfile.SYMTYPE
        link.linkname = "/home/victim/.ssh/id_rsa"
        tar.addfile(link)
    refused(buf.getvalue(), "symbolic link")


def test_package_json_that_is_a_symlink_is_refused() -> None:
    link = tar_header("package/package.json", kind=b"2", patch={157: b"/etc/passwd"})
    refused(raw_tgz(link), "symbolic link")


def test_package_json_that_is_a_directory_is_refused() -> None:
    refused(raw_tgz(tar_member("package/package.json/", kind=b"5")), "not a regular file")


def test_a_directory_with_a_size_is_refused() -> None:
    refused(raw_tgz(manifest_member(), tar_header("package/d/", kind=b"5", size=10)), "has a size")


@pytest.mark.parametrize("kind", [b"\x00", b"0"])
def test_a_file_whose_name_ends_with_a_slash_is_refused(kind: bytes) -> None:
    # node-tar reads an old-style one as a directory, other readers as a file.
    refused(raw_tgz(manifest_member(), tar_member("package/x/", kind=kind)), "ends with '/'")


# -- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("/etc/cron.d/evil", "absolute"),
        ("package/../../evil", r"'\.\.' climbs out"),
        ("package/lib/../../../x", r"'\.\.' climbs out"),
        ("../package/x", r"'\.\.' climbs out"),
        ("./package/x", "empty or '.' part"),
        ("package//x", "empty or '.' part"),
        ("package/./x", "empty or '.' part"),
        ("package/a\\..\\..\\x", "character"),
        ("package/a\nb", "character"),
        ("package/a\x7fb", "character"),
        ("other/x", "not under package/"),
        ("package", "must be a directory"),
    ],
)
def test_unsafe_entry_paths_are_refused(path: str, match: str) -> None:
    refused(raw_tgz(manifest_member(), tar_member(path, b"x")), match)


def test_a_pax_path_that_climbs_out_is_refused_even_with_a_harmless_header_name() -> None:
    member = pax_member({"path": "package/../../../home/u/.bashrc"}) + tar_member(
        "package/harmless.js", b"x"
    )
    refused(raw_tgz(manifest_member(), member), r"unsafe path \('\.\.'")


def test_a_pax_path_with_a_nul_is_refused() -> None:
    member = pax_member({"path": "package/a\x00/../../x"}) + tar_member("package/a.js", b"x")
    refused(raw_tgz(manifest_member(), member), "character")


def test_a_gnu_long_name_that_is_absolute_is_refused() -> None:
    member = gnu_long_name("/etc/" + "x" * 120) + tar_member("package/short", b"x")
    refused(raw_tgz(manifest_member(), member), "absolute")


def test_a_long_name_is_accepted_through_pax_and_through_gnu() -> None:
    deep = "package/" + "/".join(["d" * 50] * 6) + "/file.js"
    for member in (pax_member({"path": deep}), gnu_long_name(deep)):
        info = inspect_tarball(raw_tgz(manifest_member(), member + tar_member("package/x", b"1")))
        assert deep.removeprefix("package/") in info.files


def test_a_path_longer_than_the_limit_is_refused() -> None:
    long = "package/" + "/".join(["d" * 200] * 25)
    member = pax_member({"path": long}) + tar_member("package/x", b"1")
    refused(raw_tgz(manifest_member(), member), "longer than 4096")


def test_a_component_longer_than_255_bytes_is_refused() -> None:
    member = pax_member({"path": "package/" + "x" * 256}) + tar_member("package/x", b"1")
    refused(raw_tgz(manifest_member(), member), "longer than 255")


def test_a_name_that_is_not_utf8_is_refused() -> None:
    refused(raw_tgz(manifest_member(), tar_member(b"package/\xff\xfe.js", b"x")), "UTF-8")


def test_the_ustar_prefix_field_is_part_of_the_name() -> None:
    member = tar_member("evil.js", b"x", prefix=b"package/../..")
    refused(raw_tgz(manifest_member(), member), "climbs out")
    good = tar_member("x.js", b"x", prefix=b"package/lib")
    assert "lib/x.js" in inspect_tarball(raw_tgz(manifest_member(), good)).files


def test_a_gnu_header_with_data_in_its_prefix_area_is_refused() -> None:
    # tarfile would prefix it to the name, node-tar ignores it: ambiguous.
    member = tar_member("package/package.json", b"{}", magic=GNU_MAGIC, prefix=b"junk")
    refused(raw_tgz(member), "prefix area")


def test_a_gnu_format_archive_is_accepted() -> None:
    member = tar_member(
        "package/package.json", package_json("a", "1.0.0").encode(), magic=GNU_MAGIC
    )
    assert inspect_tarball(raw_tgz(member)).manifest["name"] == "a"


# -- shadowing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [
        "package/package.json",  # exact duplicate: the last one wins on extraction
        "package/PACKAGE.json",  # case twin: replaces package.json on macOS and Windows
        "package/Package.JSON",
    ],
)
def test_a_second_package_json_is_refused(second: str) -> None:
    evil = tar_member(second, package_json("a", "1.0.0", scripts={"install": "evil"}).encode())
    refused(raw_tgz(manifest_member(), evil), "names the same file as an earlier entry")


def test_names_that_differ_only_in_unicode_form_are_refused() -> None:
    nfc = "package/caf\u00e9.js"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    members = (manifest_member(), tar_member(nfc, b"1"), tar_member(nfd, b"2"))
    refused(raw_tgz(*members), "names the same file")


def test_a_duplicate_of_any_file_is_refused() -> None:
    members = (
        manifest_member(),
        tar_member("package/a.js", b"1"),
        tar_member("package/a.js", b"2"),
    )
    refused(raw_tgz(*members), "names the same file")


def test_a_file_used_as_a_directory_is_refused() -> None:
    members = (
        manifest_member(),
        tar_member("package/lib", b"1"),
        tar_member("package/lib/x", b"2"),
    )
    refused(raw_tgz(*members), "inside a path that is a file")


def test_a_directory_entry_after_a_file_of_that_name_is_refused() -> None:
    members = (
        manifest_member(),
        tar_member("package/lib", b"1"),
        tar_member("package/LIB/", kind=b"5"),
    )
    refused(raw_tgz(*members), "directory and a file")


def test_a_repeated_directory_entry_is_harmless() -> None:
    d = tar_member("package/lib/", kind=b"5")
    assert inspect_tarball(raw_tgz(d, manifest_member(), d)).entries == 3


# -- headers ------------------------------------------------------------------------------


def test_a_wrong_checksum_is_refused() -> None:
    bad = tar_header("package/a.js", size=0, checksum=1234)
    refused(raw_tgz(manifest_member(), bad), "checksum is wrong")


def test_a_checksum_valid_only_as_signed_bytes_is_refused() -> None:
    # node-tar checks the unsigned sum; a signed-only checksum makes it skip the entry.
    block = bytearray(tar_header("package/\u00e9.js"))
    signed = sum(b - 256 if b > 127 else b for b in block[:148]) + 8 * 32
    signed += sum(b - 256 if b > 127 else b for b in block[156:])
    block[148:156] = f"{signed:06o}\x00 ".encode()
    refused(raw_tgz(manifest_member(), bytes(block)), "checksum is wrong")


def test_a_v7_header_without_magic_is_refused() -> None:
    refused(raw_tgz(tar_member("package/package.json", b"{}", magic=bytes(8))), "ustar, pax or GNU")


def test_a_non_octal_size_is_refused() -> None:
    bad = tar_header("package/a.js", patch={124: b"0000000009x\x00"})
    refused(raw_tgz(manifest_member(), bad), "not an octal number")


def test_a_base256_size_is_read() -> None:
    size = (0x80).to_bytes(1, "big") + (3).to_bytes(11, "big")
    member = tar_header("package/a.js", patch={124: size}) + b"abc" + bytes(509)
    assert inspect_tarball(raw_tgz(manifest_member(), member)).unpacked_size > 3


def test_two_pax_headers_for_one_entry_are_refused() -> None:
    member = pax_member({"mtime": "1"}) + pax_member({"mtime": "2"}) + tar_member("package/x", b"1")
    refused(raw_tgz(manifest_member(), member), "two pax extended headers")


def test_two_gnu_long_names_for_one_entry_are_refused() -> None:
    member = gnu_long_name("package/a") + gnu_long_name("package/b") + tar_member("package/x")
    refused(raw_tgz(manifest_member(), member), "two GNU long names")


def test_a_long_chain_of_gnu_headers_is_refused_without_recursion() -> None:
    # tarfile follows such chains by recursion; 5000 would overflow it.
    chain = gnu_long_name("package/a") * 5000
    refused(raw_tgz(manifest_member(), chain + tar_member("package/x")), "two GNU long names")


def test_a_pax_path_and_a_gnu_long_name_together_are_refused() -> None:
    member = (
        gnu_long_name("package/a") + pax_member({"path": "package/b"}) + tar_member("package/x")
    )
    refused(raw_tgz(manifest_member(), member), "both a pax header and GNU")


def test_a_pax_size_that_differs_from_the_header_is_refused() -> None:
    member = pax_member({"size": "3"}) + tar_member("package/x", b"12345")
    refused(raw_tgz(manifest_member(), member), "pax size that differs")


@pytest.mark.parametrize(
    ("records", "match"),
    [
        ({"linkpath": "/etc/passwd"}, "linkpath"),
        ({"GNU.sparse.map": "0,10"}, "GNU.sparse"),
        ({"hdrcharset": "BINARY"}, "binary"),
        ([("path", "package/a"), ("path", "package/b")], "twice"),
    ],
)
def test_pax_records_that_change_what_an_entry_is_are_refused(
    records: dict[str, str] | list[tuple[str, str]], match: str
) -> None:
    member = pax_member(records) + tar_member("package/x", b"1")
    refused(raw_tgz(manifest_member(), member), match)


def test_a_pax_header_with_too_many_records_is_refused() -> None:
    member = pax_member([(f"SCHILY.k{i}", "v") for i in range(65)]) + tar_member("package/x")
    refused(raw_tgz(manifest_member(), member), "more than 64 records")


def test_a_malformed_pax_record_is_refused() -> None:
    body = b"99 path=package/x\n"
    member = tar_member("PaxHeader/x", body, kind=b"x") + tar_member("package/x", b"1")
    refused(raw_tgz(manifest_member(), member), "wrong length")


def test_a_global_pax_header_may_not_rename_entries() -> None:
    member = pax_member({"path": "package/../../x"}, kind=b"g")
    refused(raw_tgz(member, manifest_member()), "global pax header may not set path")


def test_a_global_pax_comment_is_accepted() -> None:
    # git archive writes one with the commit id.
    member = pax_member({"comment": "0123456789abcdef"}, kind=b"g")
    assert inspect_tarball(raw_tgz(member, manifest_member())).manifest["name"] == "a"


def test_an_oversized_extended_header_is_refused_before_it_is_read() -> None:
    big = tar_header("PaxHeader/x", size=10 * MiB, kind=b"x")
    refused(raw_tgz(manifest_member(), big), "extended header is larger than")


def test_an_extended_header_without_its_entry_is_refused() -> None:
    refused(raw_tgz(manifest_member(), pax_member({"mtime": "1"})), "followed by the end")


def test_entries_hidden_after_the_end_marker_are_refused() -> None:
    # Readers that stop at the first zero block would never see the second package.json.
    hidden = tar_member("package/PACKAGE.JSON", package_json("a", "1.0.0").encode())
    tgz = raw_tgz(manifest_member(), bytes(512), hidden)
    refused(tgz, "follows the end-of-archive marker")


def test_zero_padding_after_the_end_marker_is_fine() -> None:
    tgz = raw_tgz(manifest_member(), end=bytes(10240))
    assert inspect_tarball(tgz).manifest["version"] == "1.0.0"


def test_an_archive_without_an_end_marker_is_accepted() -> None:
    assert inspect_tarball(raw_tgz(manifest_member(), end=b"")).entries == 1


def test_an_archive_that_ends_inside_an_entry_is_refused() -> None:
    cut = tar_header("package/a.js", size=4096) + b"x" * 100
    refused(raw_tgz(manifest_member(), cut, end=b""), "ends inside an entry")


def test_an_archive_that_ends_inside_a_header_is_refused() -> None:
    refused(raw_tgz(manifest_member(), b"x" * 100, end=b""), "ends inside a header")


# -- sizes and bombs ----------------------------------------------------------------------


def zero_bomb(size: int) -> bytes:
    """A package with one ``size``-byte file of zeros, compressed as it is built."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [z.compress(manifest_member()), z.compress(tar_header("package/zeros", size=size))]
    chunk = bytes(MiB)
    for _ in range(size // MiB):
        out.append(z.compress(chunk))
    out.append(z.compress(bytes(1024)))
    out.append(z.flush())
    return b"".join(out)


def test_a_gzip_bomb_is_refused_by_ratio_after_a_few_megabytes() -> None:
    bomb = zero_bomb(256 * MiB)
    assert len(bomb) < 1 * MiB  # a quarter of a gigabyte in under a megabyte
    message = refused(bomb, r"inflates more than 200:1")
    inflated = int(re.search(r"\((\d+) bytes from", message).group(1))  # type: ignore[union-attr]
    # Stopped right after the free allowance: a few MiB inflated, not 512.
    assert inflated <= Limits().ratio_free + 256 * 1024


def test_the_unpacked_limit_stops_a_bomb_that_stays_under_the_ratio() -> None:
    limits = Limits(max_unpacked=8 * MiB, max_ratio=10**6)
    message = refused(zero_bomb(64 * MiB), "unpacks to more than the 8388608-byte limit", limits)
    assert "inflates" not in message


def test_a_small_highly_compressible_package_is_accepted() -> None:
    # Within the free allowance a high ratio is normal (tar headers are mostly zeros).
    info = inspect_tarball(zero_bomb(4 * MiB))
    assert info.unpacked_size >= 4 * MiB


def test_a_package_json_over_its_limit_is_refused() -> None:
    big = tar_member("package/package.json", b" " * 2048)
    refused(raw_tgz(big), "package.json in the tarball is too large", Limits(max_manifest=1024))


# -- package.json contents ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 64"),
        (b'{"a":' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper than 64"),
        (b'{"name":"a","version":"1.0.0","description":"\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"name":"a","x":"\xed\xa0\x80"}', "not valid UTF-8"),
        ('{"name":"a"}'.encode("utf-16"), "not valid UTF-8"),
        (b'{"name":"a","x":NaN}', "number JSON cannot carry"),
        (b'{"name":"a","x":1e400}', "number JSON cannot carry"),
        (b'{"name":"a","x":-Infinity}', "number JSON cannot carry"),
        (b'{"name":"a","x":' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"name":"a","scripts":{},"scripts":{"install":"evil"}}', "repeats the key 'scripts'"),
        (b"", "not valid JSON"),
        (b'"a string"', "not a JSON object"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_a_hostile_package_json_is_refused_with_a_400_message(raw: bytes, match: str) -> None:
    refused(raw_tgz(tar_member("package/package.json", raw)), match)


def test_a_package_json_with_a_byte_order_mark_is_read() -> None:
    raw = b"\xef\xbb\xbf" + package_json("a", "1.0.0").encode()
    assert inspect_tarball(raw_tgz(tar_member("package/package.json", raw))).manifest["name"] == "a"


# -- bundled dependencies' install scripts ------------------------------------------------


def bundled(files: dict[str, bytes]) -> bool:
    members = [manifest_member()] + [tar_member(f"package/{p}", d) for p, d in files.items()]
    return inspect_tarball(raw_tgz(*members)).bundled_install


def test_a_bundled_dependency_with_an_install_script_is_noticed() -> None:
    hook = package_json("dep", "1.0.0", scripts={"postinstall": "node evil.js"}).encode()
    assert bundled({"node_modules/dep/package.json": hook})
    assert bundled({"node_modules/@s/dep/package.json": hook})
    assert bundled({"node_modules/a/node_modules/dep/package.json": hook})


def test_a_bundled_native_module_counts_as_an_install_script() -> None:
    plain = package_json("dep", "1.0.0").encode()
    assert bundled({"node_modules/dep/package.json": plain, "node_modules/dep/binding.gyp": b"{}"})
    off = package_json("dep", "1.0.0", gypfile=False).encode()
    assert not bundled(
        {"node_modules/dep/package.json": off, "node_modules/dep/binding.gyp": b"{}"}
    )


def test_plain_bundled_dependencies_and_unreadable_ones() -> None:
    plain = package_json("dep", "1.0.0", scripts={"test": "x"}).encode()
    assert not bundled({"node_modules/dep/package.json": plain, "lib/package.json": b"{"})
    # Unreadable: npm may still run something; counted, not refused.
    assert bundled({"node_modules/dep/package.json": b"{not json"})


# -- properties ---------------------------------------------------------------------------

_names = st.lists(
    st.sampled_from(["a", "b", "A", "lib", "x.js", "é", "package.json"]), min_size=1, max_size=3
)


@st.composite
def archives(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bool, bytes]]]:
    """A tar written by Python's tarfile (pax or GNU format) with random members."""
    members: list[tuple[str, bool, bytes]] = [
        ("package/package.json", False, package_json("a", "1.0.0").encode())
    ]
    for parts in draw(st.lists(_names, max_size=6)):
        is_dir = draw(st.booleans())
        members.append(("package/" + "/".join(parts), is_dir, draw(st.binary(max_size=64))))
    if draw(st.booleans()):
        members.append(("package/" + "l" * draw(st.integers(90, 300)), False, b"long"))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    buf = io.BytesIO()
    with contextlib.suppress(ValueError), tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, is_dir, data in members:
            info = tarfile.TarInfo(name)
            if is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0), members


@settings(max_examples=200)
@given(archives())
def test_what_r13_accepts_tarfile_reads_the_same_way(
    made: tuple[bytes, list[tuple[str, bool, bytes]]],
) -> None:
    tgz, _ = made
    try:
        info = inspect_tarball(tgz)
    except InvalidPublish:
        return
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        files = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
        assert set(files) == set(info.files)
        raw = tar.extractfile(files["package.json"]).read()  # type: ignore[union-attr]
    assert info.manifest == __import__("json").loads(raw)


@settings(max_examples=200)
@given(archives(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_a_corrupted_archive_only_ever_fails_as_invalid_publish(
    made: tuple[bytes, list[tuple[str, bool, bytes]]], flips: list[tuple[int, int]]
) -> None:
    raw = bytearray(gzip.decompress(made[0]))
    for where, value in flips:
        raw[where % len(raw)] = value
    with contextlib.suppress(InvalidPublish):
        inspect_tarball(gzip.compress(bytes(raw)), Limits(max_unpacked=1 * MiB))
