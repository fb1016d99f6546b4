"""The uplink through real servers and real clients.

* Two r13s on loopback (real gunicorn, gevent workers): the second proxies the
  first (with a read token, as the first is private), npm installs through it
  with a cold cache, then again with the first stopped, then again after a restart.
* Two r13s proxying each other: the loop ends at once with a clear error.
* The real public npm registry (a handful of small packages, once per client):
  npm, pnpm, yarn and bun install through a cold r13, then again with the
  upstream unreachable, from r13's cache alone. Private-scope and locally
  published names that exist upstream are never served from it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from r13core.config import Config13
from tests.e2e.conftest import R13, Sandbox, Server, start_server
from tests.e2e.test_e2e_npm import publish
from tests.ports import free_port

pytestmark = pytest.mark.slow

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections refused


def serve(root: Path, **env: str) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    return start_server(root, **env)


def sandbox_for(
    root: Path, server: Server, clients: dict[str, Path], perm: str = "read"
) -> Sandbox:
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "home" / ".npmrc").write_text("")
    return Sandbox(root, server, server.key(perm), clients)


def forget_client_state(sb: Sandbox, project: Path) -> None:
    """node_modules, lockfiles and every client cache gone: the next install asks r13 for all."""
    for name in ("node_modules", "package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lock",
                 "bun.lockb"):  # fmt: skip
        path = project / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for cache in ("npm-cache", "yarn-cache", "bun-cache", "home/.cache", "home/.local"):
        shutil.rmtree(sb.root / cache, ignore_errors=True)


def cache_status(server: Server) -> dict[str, object]:
    status, _, body = server.request("GET", "/_api/uplink", key=server.admin_key)
    assert status == 200, body
    doc: dict[str, object] = json.loads(body)
    return doc


def restart(server: Server, **env: str) -> None:
    server.stop()
    server.extra_env = {**server.extra_env, **env}
    server.start()


# -- two r13s on loopback --------------------------------------------------------------


def test_npm_installs_through_a_second_r13_then_from_its_cache_alone(
    tmp_path: Path, clients: dict[str, Path], stop_later: list[Server]
) -> None:
    upstream = serve(tmp_path / "up")
    stop_later.append(upstream)
    up_sb = sandbox_for(tmp_path / "up-sb", upstream, clients, "write")
    lib, app_pkg = up_sb.unique("e2e-uplib"), up_sb.unique("@e2e/upapp")
    publish(up_sb, lib)
    publish(up_sb, app_pkg, dependencies={lib: "^1.0.0"})

    downstream = serve(
        tmp_path / "down",
        R13_FEATURE_PROXY_MODE="1",
        R13_UPLINK_URL=upstream.url,
        R13_UPLINK_TOKEN=upstream.key("read"),
    )
    stop_later.append(downstream)
    sb = sandbox_for(tmp_path / "down-sb", downstream, clients)
    project = sb.project("consumer", {"name": "consumer", "version": "0.0.0",
                                      "dependencies": {app_pkg: "^1.0.0"}})  # fmt: skip

    def installed() -> None:
        for name in (app_pkg, lib):
            index = project / "node_modules" / name / "index.js"
            assert json.dumps(f"{name}@1.0.0") in index.read_text()

    sb.run("npm", "install", cwd=project)
    installed()
    lock = json.loads((project / "package-lock.json").read_text())
    resolved = lock["packages"][f"node_modules/{lib}"]["resolved"]
    assert resolved.startswith(downstream.url + "/")  # every tarball through r13
    status = cache_status(downstream)
    assert status["cache"]["tarballs"] == 2  # type: ignore[index]

    upstream.stop()
    forget_client_state(sb, project)
    sb.run("npm", "install", cwd=project)
    installed()

    restart(downstream)  # a warm cache survives a restart
    forget_client_state(sb, project)
    sb.run("npm", "install", cwd=project)
    installed()
    assert "Traceback" not in downstream.log.read_text()


def test_two_r13s_proxying_each_other_stop_the_loop(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    port_a, port_b = free_port(), free_port()
    common = {"R13_FEATURE_PROXY_MODE": "1", "R13_FEATURE_PRIVATE_REGISTRY": "0"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Server(data=tmp_path / "a" / "data", port=port_a, log=tmp_path / "a.log")
    b = Server(data=tmp_path / "b" / "data", port=port_b, log=tmp_path / "b.log")
    a.extra_env = {**common, "R13_UPLINK_URL": f"http://127.0.0.1:{port_b}"}
    b.extra_env = {**common, "R13_UPLINK_URL": f"http://127.0.0.1:{port_a}"}
    a.start()
    stop_later.append(a)
    b.start()
    stop_later.append(b)
    status, headers, body = a.request("GET", "/no-such-package-anywhere")
    assert status == 502, body  # B answered A with a 502: A had refused B's request
    assert headers["content-type"].startswith("application/json")
    assert "error" in json.loads(body)
    # What A refused: a request whose Via already names A.
    me = f"r13-{Config13.defaults(a.url).registry_hash:08x}"
    status, _, body = a.request("GET", "/no-such-package-anywhere", headers={"Via": f"1.1 {me}"})
    assert status == 508, body
    assert "Traceback" not in a.log.read_text() + b.log.read_text()


# -- the real public npm registry ------------------------------------------------------

PROJECT = {
    "name": "uplink-consumer",
    "version": "0.0.0",
    "dependencies": {"debug": "4.3.4", "is-number": "7.0.0", "@types/ms": "0.7.34"},
}
INSTALL = {
    "npm": ("install", "--no-audit"),
    "pnpm": ("install", "--no-frozen-lockfile"),
    "yarn": ("install", "--non-interactive", "--no-progress"),
    "bun": ("install",),
}


def _upstream_integrity(name: str, version: str) -> str:
    req = urllib.request.Request(
        f"https://registry.npmjs.org/{name.replace('/', '%2f')}",
        headers={"Accept": "application/vnd.npm.install-v1+json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        integrity: str = json.load(r)["versions"][version]["dist"]["integrity"]
    return integrity


def _resolved_file(project: Path, name: str) -> Path:
    top = project / "node_modules" / name
    if top.exists():
        return top / "package.json"
    # pnpm without hoisting: node_modules/.pnpm/<name>@<v>/node_modules/<name>
    found = next((project / "node_modules" / ".pnpm").glob(f"{name.replace('/', '+')}@*"))
    return found / "node_modules" / name / "package.json"


@pytest.mark.parametrize("tool", ["npm", "pnpm", "yarn", "bun"])
def test_a_real_project_installs_from_the_public_registry_then_offline(
    tmp_path: Path, clients: dict[str, Path], stop_later: list[Server], tool: str
) -> None:
    server = serve(tmp_path / "r13", R13_FEATURE_PROXY_MODE="1")
    stop_later.append(server)
    sb = sandbox_for(tmp_path / "sb", server, clients)
    project = sb.project("app", dict(PROJECT), always_auth=tool == "yarn")

    def installed() -> None:
        for name, version in (("debug", "4.3.4"), ("is-number", "7.0.0"), ("@types/ms", "0.7.34"),
                              ("ms", None)):  # fmt: skip
            manifest = json.loads(_resolved_file(project, name).read_text())
            assert manifest["name"] == name
            if version:
                assert manifest["version"] == version

    sb.run(tool, *INSTALL[tool], cwd=project, timeout=600)
    installed()
    if tool == "npm":
        lock = json.loads((project / "package-lock.json").read_text())
        entry = lock["packages"]["node_modules/debug"]
        assert entry["resolved"].startswith(server.url + "/")
        assert entry["integrity"] == _upstream_integrity("debug", "4.3.4")  # bytes untouched
    cold = cache_status(server)
    assert cold["cache"]["tarballs"] >= 4  # type: ignore[index]

    # The upstream unreachable, every packument past its max age: the cache alone.
    restart(server, R13_UPLINK_URL=UNREACHABLE, R13_UPLINK_MAXAGE="0")
    forget_client_state(sb, project)
    sb.run(tool, *INSTALL[tool], cwd=project, timeout=600)
    installed()
    status, headers, _ = server.request(
        "GET", "/debug", key=server.key("read"),
        headers={"Accept": "application/vnd.npm.install-v1+json"},
    )  # fmt: skip
    assert status == 200
    assert headers["x-r13-cache"] == "STALE"
    assert "warning" in headers
    assert "Traceback" not in server.log.read_text()


def test_private_and_local_names_that_exist_upstream_are_never_served_from_it(
    tmp_path: Path, clients: dict[str, Path], stop_later: list[Server]
) -> None:
    server = serve(tmp_path / "r13", R13_FEATURE_PROXY_MODE="1", R13_PRIVATE_SCOPES="@types")
    stop_later.append(server)
    sb = sandbox_for(tmp_path / "sb", server, clients, "write")
    reader = sb.project("reader")
    # @types/ms exists upstream, but @types is private here.
    out = sb.run("npm", "view", "@types/ms", "version", cwd=reader, check=False)
    assert out.returncode != 0 and "E404" in out.stdout + out.stderr
    # is-number exists upstream: publishing it here needs an admin's override.
    src = sb.project("src", {"name": "is-number", "version": "99.0.0", "main": "index.js"})
    (src / "index.js").write_text("module.exports = 'local';\n")
    refused = sb.run("npm", "publish", cwd=src, check=False)
    assert refused.returncode != 0
    subprocess.run(
        [str(R13), "--data", str(server.data), "uplink", "allow", "is-number"],
        env=server.env(), check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    sb.run("npm", "publish", cwd=src)
    versions = json.loads(
        sb.run("npm", "view", "is-number", "versions", "--json", cwd=reader).stdout
    )
    assert versions == "99.0.0" or versions == ["99.0.0"]  # the local one only, never merged
