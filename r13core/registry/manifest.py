"""The version document r13 serves for a publish, and the paths in it a client acts on.

Manifest confusion — a publish body whose manifest says one thing while the
tarball's package.json says another — is answered by serving the tarball:
every field that changes what gets installed or run comes from the tarball's
own package.json (:data:`FROM_TARBALL`), whatever the body said, and
``hasInstallScript`` and ``_hasShrinkwrap`` are derived from the tarball's
files. Descriptive fields (description, keywords, repository, readme, funding,
``gitHead``...) come from the body. A client installing the package therefore
sees in the packument what it will find on disk, and no client's publish
normalisation (npm 10/11, pnpm, yarn, bun each differ a little) can make an
honest publish fail.

The tarball's values are normalised as npm's publish normalises them, so the
packument reads as the public registry's would: ``bin`` becomes an object
keyed by command name (a string names the package's bare name; an array is
keyed by file names; ``directories.bin`` is expanded from the tarball's
files), paths lose ``./``, ``bundledDependencies`` is spelled
``bundleDependencies``, non-string scripts are dropped and a root ``*.gyp``
without an install hook adds ``install: node-gyp rebuild`` (what npm runs).

What npm would silently rewrite is refused instead when it is unsafe: a path
the client acts on (``bin`` targets, ``directories.*``, ``man``, ``main``) must
be relative, inside the package, without ``..``, backslashes, colons, NULs or
control characters; a ``bin`` name must be a plain command name.
"""

from __future__ import annotations

import re
from typing import Any, Final

from r13core.errors import InvalidPublish
from r13core.names import PackageName
from r13core.tarball import INSTALL_SCRIPTS, MAX_PATH, TarballInfo

JSONDict = dict[str, Any]

DEPENDENCY_FIELDS: Final = (
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
)
# Served from the tarball's package.json, never from the body.
FROM_TARBALL: Final = (
    "name",
    "version",
    *DEPENDENCY_FIELDS,
    "peerDependenciesMeta",
    "bundleDependencies",
    "acceptDependencies",
    "bin",
    "directories",
    "man",
    "main",
    "scripts",
    "gypfile",
    "os",
    "cpu",
    "libc",
    "engines",
)
# Derived by r13 (from the tarball, or the registry's own record).
DERIVED: Final = ("hasInstallScript", "_hasShrinkwrap", "_hasTypes", "dist", "_id", "_npmUser")
_NOT_FROM_BODY: Final = frozenset({*FROM_TARBALL, *DERIVED, "bundledDependencies", "readme"})
_RAW_FIELDS: Final = ("os", "cpu", "libc", "engines")

# A command name: what ends up as a file in node_modules/.bin and on PATH.
_COMMAND: Final = re.compile(r"[A-Za-z0-9@_+~][A-Za-z0-9@._+~-]{0,213}")
_UNSAFE_CHAR: Final = re.compile(r"[\x00-\x1f\x7f\\:]")
_SCRIPT_BIN_PREFIX: Final = re.compile(r"^(\./)?node_modules/\.bin/")
_MAN_FILE: Final = re.compile(r"\.[0-9]\Z")
SHRINKWRAP: Final = "npm-shrinkwrap.json"
_SOURCE: Final = "package.json in the tarball"


def _refuse(message: str) -> InvalidPublish:
    return InvalidPublish(f"{_SOURCE}: {message}")


def clean_path(value: object, where: str) -> str:
    """A path inside the package, as npm writes it (``./bin//x`` -> ``bin/x``).

    InvalidPublish naming ``where`` unless ``value`` is a non-empty string that
    is relative, stays inside the package (no ``..``) and holds no backslash,
    colon (npm reads both as separators), NUL or control character.
    """
    if not isinstance(value, str):
        raise _refuse(f"{where} must be a string path")
    shown = value[:200]
    if len(value.encode()) > MAX_PATH:
        raise _refuse(f"{where} is longer than {MAX_PATH} bytes")
    bad = _UNSAFE_CHAR.search(value)
    if bad:
        raise _refuse(f"{where} {shown!r} is not a safe path (character {bad.group()!r})")
    if value.startswith("/"):
        raise _refuse(f"{where} {shown!r} is an absolute path; paths are inside the package")
    parts = value.split("/")
    if ".." in parts:
        raise _refuse(f"{where} {shown!r} leaves the package ('..')")
    kept = [p for p in parts if p not in ("", ".")]
    if not kept:
        raise _refuse(f"{where} {shown!r} names no file inside the package")
    return "/".join(kept)


def check_command(name: object, where: str = "bin") -> str:
    """A ``bin`` name that is a plain command: no separators, not ``.``/``..``, not ``-x``."""
    if not isinstance(name, str) or not _COMMAND.fullmatch(name):
        raise _refuse(
            f"{where} name {str(name)[:100]!r} is not a safe command name "
            "(letters, digits and @ . _ + ~ -; not starting with . or -; at most 214)"
        )
    return name


def _bare(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _dependencies(pkg: JSONDict, field: str) -> JSONDict | None:
    raw = pkg.get(field)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _refuse(f"{field} must be an object of name: version range")
    for dep, spec in raw.items():
        if not isinstance(spec, str):
            raise _refuse(f"{field}[{dep[:100]!r}] must be a string")
    return raw


def _object_of(pkg: JSONDict, field: str, value_type: type, what: str) -> JSONDict | None:
    raw = pkg.get(field)
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(isinstance(v, value_type) for v in raw.values()):
        raise _refuse(f"{field} must be an object of {what}")
    return raw


def _bundle(pkg: JSONDict, deps: JSONDict | None) -> list[str] | None:
    raw = (
        pkg["bundleDependencies"] if "bundleDependencies" in pkg else pkg.get("bundledDependencies")
    )
    if raw is None or raw is False:
        return None
    if raw is True:
        return list(deps or {})
    if isinstance(raw, dict):
        return list(raw)
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return list(raw)
    raise _refuse("bundleDependencies must be a list of names (or true)")


def _directories(pkg: JSONDict) -> JSONDict | None:
    raw = pkg.get("directories")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _refuse("directories must be an object")
    for key, value in raw.items():
        if value == "":
            continue  # npm ignores an empty directory
        if isinstance(value, str) or key in ("bin", "man"):
            clean_path(value, f"directories.{key}")
    return raw


def _main(pkg: JSONDict) -> str | None:
    raw = pkg.get("main")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _refuse("main must be a string")
    if raw in ("", ".", "./"):
        return raw  # the package directory's index
    clean_path(raw, "main")
    return raw


def _expand(files: frozenset[str], directory: str, keep: re.Pattern[str] | None) -> list[str]:
    """Files below ``directory`` (no dot files or dot directories, like npm's glob)."""
    prefix = directory + "/"
    found = []
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix) :]
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if keep is None or keep.search(rel):
            found.append(rel)
    return found


def _bin(
    pkg: JSONDict, name: PackageName, directories: JSONDict | None, files: frozenset[str]
) -> JSONDict | None:
    raw = pkg.get("bin")
    mapping: dict[str, object] = {}
    if not raw:
        bin_dir = (directories or {}).get("bin")
        if not bin_dir:
            return None
        base = clean_path(bin_dir, "directories.bin")
        for rel in _expand(files, base, None):
            command = check_command(rel.rsplit("/", 1)[-1], "directories.bin file")
            if command in mapping:
                raise _refuse(f"directories.bin holds two files named {command!r}")
            mapping[command] = f"{base}/{rel}"
    elif isinstance(raw, str):
        mapping = {name.bare: raw}
    elif isinstance(raw, list):
        for target in raw:
            if not isinstance(target, str):
                raise _refuse("bin, as a list, must hold file paths")
            mapping[target.rstrip("/").rsplit("/", 1)[-1]] = target
    elif isinstance(raw, dict):
        # npm drops entries whose target is not a string; so does r13.
        mapping = {k: v for k, v in raw.items() if isinstance(v, str)}
    else:
        return None  # npm drops a bin that is neither string, list nor object
    out = {
        check_command(command): clean_path(target, f"bin[{command[:100]!r}]")
        for command, target in mapping.items()
    }
    return out or None


def _man(pkg: JSONDict, directories: JSONDict | None, files: frozenset[str]) -> list[str] | None:
    raw = pkg.get("man")
    if not raw:
        man_dir = (directories or {}).get("man")
        if not man_dir:
            return None
        base = clean_path(man_dir, "directories.man")
        found = [f"{base}/{rel}" for rel in _expand(files, base, _MAN_FILE)]
        return found or None
    items = raw if isinstance(raw, list) else [raw]
    out = [clean_path(m, "man") for m in items if isinstance(m, str)]
    return out or None


def _scripts(pkg: JSONDict, files: frozenset[str]) -> tuple[JSONDict | None, object]:
    """(scripts, gypfile) as npm publishes them: string values only, node_modules/.bin/
    stripped, ``install: node-gyp rebuild`` added for a root ``*.gyp`` without a hook."""
    raw = pkg.get("scripts")
    scripts = None
    if isinstance(raw, dict):
        scripts = {k: _SCRIPT_BIN_PREFIX.sub("", v) for k, v in raw.items() if isinstance(v, str)}
    gypfile = pkg.get("gypfile")
    hooks = scripts or {}
    root_gyp = any("/" not in f and f.endswith(".gyp") and not f.startswith(".") for f in files)
    if root_gyp and gypfile is not False and "install" not in hooks and "preinstall" not in hooks:
        scripts = {**hooks, "install": "node-gyp rebuild"}
        gypfile = True
    return scripts, gypfile


def version_document(body_manifest: JSONDict, info: TarballInfo, name: PackageName) -> JSONDict:
    """The version manifest to store for a publish (see the module docstring).

    ``body_manifest`` is ``versions[v]`` from the publish body (already checked
    to name this package and version, as the tarball's package.json does).
    Raises InvalidPublish naming the field when the tarball's package.json
    holds something unsafe or malformed in a field the client acts on.
    """
    pkg = info.manifest
    out = {k: v for k, v in body_manifest.items() if k not in _NOT_FROM_BODY}
    out["name"] = pkg["name"]
    out["version"] = pkg["version"]
    deps: dict[str, JSONDict | None] = {f: _dependencies(pkg, f) for f in DEPENDENCY_FIELDS}
    for field, value in deps.items():
        if value is not None:
            out[field] = value
    meta = _object_of(pkg, "peerDependenciesMeta", dict, "objects")
    accept = _object_of(pkg, "acceptDependencies", str, "range strings")
    bundle = _bundle(pkg, deps["dependencies"])
    directories = _directories(pkg)
    scripts, gypfile = _scripts(pkg, info.files)
    derived: dict[str, object] = {
        "peerDependenciesMeta": meta,
        "acceptDependencies": accept,
        "bundleDependencies": bundle,
        "directories": directories,
        "main": _main(pkg),
        "bin": _bin(pkg, name, directories, info.files),
        "man": _man(pkg, directories, info.files),
        "scripts": scripts,
        "gypfile": gypfile,
    }
    derived.update({field: pkg.get(field) for field in _RAW_FIELDS})
    out.update({k: v for k, v in derived.items() if v is not None})
    out["_hasShrinkwrap"] = SHRINKWRAP in info.files
    if info.bundled_install or any(
        isinstance((scripts or {}).get(h), str) for h in INSTALL_SCRIPTS
    ):
        out["hasInstallScript"] = True
    check_paths(out)
    return out


def check_paths(manifest: JSONDict) -> None:
    """InvalidPublish unless every path a client acts on in ``manifest`` is safe.

    ``bin`` (an object of command name -> path), every string in ``directories``
    (``bin`` and ``man`` must be strings), ``man`` (a list of paths) and ``main``.
    """
    bin_map = manifest.get("bin")
    if bin_map is not None:
        if not isinstance(bin_map, dict):
            raise _refuse("bin must be an object of command name: path")
        for command, target in bin_map.items():
            check_command(command)
            clean_path(target, f"bin[{command[:100]!r}]")
    _directories(manifest)
    man = manifest.get("man")
    if man is not None:
        if not isinstance(man, list):
            raise _refuse("man must be a list of paths")
        for item in man:
            clean_path(item, "man")
    _main(manifest)


__all__ = [
    "DEPENDENCY_FIELDS",
    "FROM_TARBALL",
    "check_command",
    "check_paths",
    "clean_path",
    "version_document",
]
