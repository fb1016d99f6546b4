"""Package names by npm's rules, URL forms, tarball paths; versions and ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r13core.errors import InvalidName, InvalidValue
from r13core.names import PackageName, parse_version
from r13core.semver import Range, Version, is_valid_range, satisfies

VALID = [
    "a",
    "lodash",
    "left-pad",
    "some.package",
    "under_score",
    "x" * 214,
    "@scope/name",
    "@my-org/my.pkg",
    "react-dom",
    "9lives",
]
INVALID = [
    ("", "empty"),
    ("x" * 215, "longer than 214"),
    (".hidden", "cannot start with"),
    ("_private", "cannot start with"),
    ("a..b", "'..'"),
    ("node_modules", "reserved"),
    ("favicon.ico", "reserved"),
    ("__proto__", "cannot start with"),
    ("has space", "URL-safe"),
    (" lead", "spaces"),
    ("a/b", "URL-safe"),
    ("@scope", "@scope/name"),
    ("@/name", "empty scope"),
    ("@scope/", "empty name"),
    ("@scope/.name", "cannot start with"),
    ("@sc..ope/name", "'..'"),
    ("@scope/node_modules", "reserved"),
    ("@a/b/c", "URL-safe"),
    ("naïve", "URL-safe"),
    ("a%2fb", "URL-safe"),
    ("tilde~", "URL-safe"),
    ("paren(s)", "URL-safe"),
    ("bang!", "URL-safe"),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_names_parse_and_print_back(text: str) -> None:
    assert str(PackageName.parse(text, new=True)) == text


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_names_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason.replace("(", r"\(").replace(".", r"\.")):
        PackageName.parse(text)


def test_uppercase_is_refused_only_for_new_names() -> None:
    assert str(PackageName.parse("JSONStream")) == "JSONStream"
    with pytest.raises(InvalidName, match="lowercase"):
        PackageName.parse("JSONStream", new=True)
    with pytest.raises(InvalidName, match="lowercase"):
        PackageName.parse("@Scope/x", new=True)


def test_scoped_name_has_its_parts() -> None:
    name = PackageName.parse("@acme/widget")
    assert (name.scope, name.bare) == ("acme", "widget")
    assert name.url == "@acme%2fwidget"
    assert name.tarball_file("1.2.3") == "widget-1.2.3.tgz"
    assert name.tarball_path("1.2.3") == "@acme/widget/-/widget-1.2.3.tgz"


def test_unscoped_name_paths() -> None:
    name = PackageName.parse("lodash")
    assert name.scope is None
    assert name.url == "lodash"
    assert name.tarball_path("4.17.21") == "lodash/-/lodash-4.17.21.tgz"


@pytest.mark.parametrize("segment", ["@acme%2fwidget", "@acme%2Fwidget", "@acme/widget"])
def test_from_url_accepts_the_three_scoped_forms(segment: str) -> None:
    assert PackageName.from_url(segment) == PackageName("acme", "widget")


def test_from_url_decodes_exactly_once() -> None:
    with pytest.raises(InvalidName):
        PackageName.from_url("@acme%252fwidget")


def test_tarball_path_refuses_a_version_that_could_escape() -> None:
    with pytest.raises(InvalidValue):
        PackageName.parse("a").tarball_path("../../1.0.0")


def test_version_of_file_reads_bare_and_full_forms() -> None:
    name = PackageName.parse("@acme/widget")
    assert name.version_of_file("widget-1.0.0-beta.1.tgz") == "1.0.0-beta.1"
    assert name.version_of_file("@acme/widget-2.0.0.tgz") == "2.0.0"
    for bad in ("other-1.0.0.tgz", "widget-1.0.tgz", "widget-1.0.0.tar", "widget-.tgz"):
        with pytest.raises(InvalidName):
            name.version_of_file(bad)


@pytest.mark.parametrize("text", ["1.0.0", "0.0.1-alpha.1", "1.2.3+build.5", "10.20.30-rc.1+x"])
def test_semver_versions_parse(text: str) -> None:
    assert parse_version(text) == text
    assert str(Version.parse(text)) == text


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "", "x" * 300])
def test_non_semver_versions_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_version(text)


def test_version_precedence_follows_semver() -> None:
    order = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    assert sorted(reversed(order), key=Version.parse) == order
    assert Version.parse("1.0.0+a") == Version.parse("1.0.0+b")


RANGES = [
    ("<1.2.3", "1.2.2", True),
    ("<1.2.3", "1.2.3", False),
    (">=1.0.0 <1.4.0", "1.3.9", True),
    (">=1.0.0 <1.4.0", "1.4.0", False),
    (">= 1.0.0 < 1.4.0", "1.0.0", True),
    ("<1.0.0 || >=2.0.0", "2.5.0", True),
    ("<1.0.0 || >=2.0.0", "1.5.0", False),
    ("^1.2.3", "1.9.0", True),
    ("^1.2.3", "2.0.0", False),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.0.3", "0.0.4", False),
    ("~1.2.3", "1.2.9", True),
    ("~1.2.3", "1.3.0", False),
    ("~1", "1.9.9", True),
    ("1.x", "1.4.0", True),
    ("1.x", "2.0.0", False),
    ("1.2.*", "1.2.7", True),
    ("*", "3.0.0", True),
    ("", "3.0.0", True),
    ("1.2.3 - 2.3", "2.3.9", True),
    ("1.2.3 - 2.3", "2.4.0", False),
    ("1.2.3 - 2.3.4", "2.3.4", True),
    (">1", "2.0.0", True),
    (">1", "1.9.0", False),
    ("<=1.2", "1.2.9", True),
    ("=1.2.3", "1.2.3", True),
    ("<1.0.0", "1.0.0-beta", False),  # prereleases only match ranges that name one
    (">=1.0.0-beta.1 <1.0.0", "1.0.0-beta.2", True),
    ("<2.0.0", "1.5.0-rc.1", False),
]


@pytest.mark.parametrize(("rng", "version", "expected"), RANGES)
def test_range_matching(rng: str, version: str, expected: bool) -> None:
    assert satisfies(version, rng) is expected


def test_invalid_versions_never_satisfy_a_range() -> None:
    assert not Range.parse("*").matches("not-a-version")


@pytest.mark.parametrize("text", ["latest", "next", "beta", "canary-2"])
def test_words_are_not_ranges(text: str) -> None:
    assert not is_valid_range(text)


@pytest.mark.parametrize("text", ["1", "v1", "1.2", "x", "^2", ">=3", "1.0.0"])
def test_version_like_words_are_ranges(text: str) -> None:
    assert is_valid_range(text)


# -- properties ---------------------------------------------------------------------------


_PRE_WORD = st.from_regex(r"[a-z-][a-z0-9-]{0,5}", fullmatch=True)
_PART = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,40}", fullmatch=True).filter(
    lambda p: ".." not in p and p not in ("node_modules", "favicon.ico")
)


@given(st.text(max_size=300))
def test_parsing_any_text_either_succeeds_or_raises_invalid_name(text: str) -> None:
    try:
        name = PackageName.parse(text)
    except InvalidName:
        return
    assert str(name) == text
    assert PackageName.from_url(name.url) == name


@given(st.one_of(st.none(), _PART), _PART)
def test_valid_parts_make_names_that_round_trip(scope: str | None, bare: str) -> None:
    name = PackageName(scope, bare)
    assert PackageName.parse(str(name), new=True) == name
    assert PackageName.from_url(name.url) == name
    assert name.version_of_file(name.tarball_file("1.2.3")) == "1.2.3"


@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.lists(
        st.one_of(st.integers(0, 999), st.from_regex(r"[a-z-][a-z0-9-]{0,5}", fullmatch=True)),
        max_size=3,
    ),
)
def test_versions_round_trip_and_order_by_precedence(
    major: int, minor: int, patch: int, pre: list[int | str]
) -> None:
    text = f"{major}.{minor}.{patch}" + ("-" + ".".join(map(str, pre)) if pre else "")
    v = Version.parse(text)
    assert str(v) == text
    assert (Version(major, minor, patch) > v) is bool(pre)


@given(st.text(max_size=60))
def test_range_parsing_never_fails_unexpectedly(text: str) -> None:
    try:
        rng = Range.parse(text)
    except InvalidValue:
        return
    rng.matches("1.2.3")


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20))
def test_caret_range_holds_its_floor_and_excludes_the_next_major(a: int, b: int, c: int) -> None:
    rng = Range.parse(f"^{a}.{b}.{c}")
    assert rng.matches(f"{a}.{b}.{c}")
    assert not rng.matches(f"{a + 1}.0.0")
