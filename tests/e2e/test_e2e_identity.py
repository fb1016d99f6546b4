"""The real npm CLI, 11 and 10, against a real r13: login (legacy and web), whoami, tokens,
logout. The npm scenarios take the ``npm`` fixture (tests/e2e/conftest.py)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import R13, Sandbox, Server
from tests.readiness import readable

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"


def add_user(server: Server, name: str, role: str = "publisher") -> None:
    subprocess.run(
        [str(R13), "--data", str(server.data), "users", "add", name, "--role", role,
         "--password-stdin"],
        input=PASSWORD + "\n", env=server.env(), capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip


def npm_tty(sandbox: Sandbox, args: list[str], answers: list[tuple[str, str]]) -> str:
    """Run npm on a pseudo-terminal (npm reads passwords only from a TTY), answering prompts."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(sandbox.clients[sandbox.npm]), *args],
        stdin=slave, stdout=slave, stderr=slave, env=sandbox.env(), cwd=sandbox.root,
        close_fds=True,
    )  # fmt: skip
    os.close(slave)
    out = b""
    pending = list(answers)
    deadline = time.monotonic() + 180  # npm starts slowly on a loaded machine
    try:
        while time.monotonic() < deadline:
            if readable(master, 0.2):
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if pending and pending[0][0].encode() in out:
                    prompt, answer = pending.pop(0)
                    out = out.replace(prompt.encode(), b"", 1)
                    os.write(master, answer.encode() + b"\r")
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return out.decode(errors="replace")


def registry_args(server: Server) -> list[str]:
    return [f"--registry={server.url}/"]


def token_in_npmrc(sandbox: Sandbox) -> str:
    text = (sandbox.root / "home" / ".npmrc").read_text()
    match = re.search(r":_authToken=(r13_\w+)", text)
    assert match, text
    return match.group(1)


def whoami(sandbox: Sandbox, server: Server) -> str:
    out = sandbox.run(sandbox.npm, "whoami", *registry_args(server), cwd=sandbox.root)
    return out.stdout.strip()


def create_read_only_token(sandbox: Sandbox, server: Server) -> dict[str, object]:
    """``npm token create``, read-only and limited to 127.0.0.1/32, as each npm asks for it."""
    if sandbox.npm == "npm10":  # npm 10: password on the TTY; sends {password, readonly, cidr}
        out = npm_tty(
            sandbox,
            ["token", "create", "--read-only", "--cidr=127.0.0.1/32", "--json",
             *registry_args(server)],
            [("npm password:", PASSWORD)],
        )  # fmt: skip
        return json.loads(out[out.index("{") : out.rindex("}") + 1])  # type: ignore[no-any-return]
    made = sandbox.run(
        "npm", "token", "create", *registry_args(server), "--password", PASSWORD,
        "--name", "ci", "--expires", "30", "--cidr", "127.0.0.1/32",
        "--packages-and-scopes-permission", "read-only", "--json",
        cwd=sandbox.root,
    )  # fmt: skip
    return json.loads(made.stdout)  # type: ignore[no-any-return]


def test_legacy_login_whoami_tokens_and_logout(sandbox: Sandbox, server: Server, npm: str) -> None:
    name = sandbox.unique("legacy").replace("-", "")[:30].lower()
    add_user(server, name)
    npm_tty(
        sandbox,
        ["login", "--auth-type=legacy", *registry_args(server)],
        [("Username:", name), ("Password:", PASSWORD)],
    )
    assert whoami(sandbox, server) == name
    session = token_in_npmrc(sandbox)

    # npm 11's token create (name, expires in days, CIDR, read-only) or npm 10's (read-only,
    # CIDR), then list and revoke.
    created: dict[str, Any] = create_read_only_token(sandbox, server)
    assert created["token"].startswith("r13_") and created["readonly"] is True
    assert created["cidr_whitelist"] == ["127.0.0.1/32"]
    status, _, body = server.request("GET", "/-/whoami", key=created["token"])
    assert status == 200 and json.loads(body) == {"username": name}
    status, _, _ = server.request("PUT", "/-/package/x/dist-tags/beta", "1.0.0",
                                  key=created["token"])  # fmt: skip
    assert status == 403  # read-only

    args = ["token", "list", "--json", *registry_args(server)]
    listed = json.loads(sandbox.run(npm, *args, cwd=sandbox.root).stdout)
    keys = {t["key"] for t in listed}
    assert len(keys) == 2 and all("secret" not in json.dumps(t) for t in listed)
    ci_key = next(t["key"] for t in listed if t["readonly"])
    sandbox.run(npm, "token", "revoke", ci_key, *registry_args(server), cwd=sandbox.root)
    status, _, _ = server.request("GET", "/-/whoami", key=created["token"])
    assert status == 401

    sandbox.run(npm, "logout", *registry_args(server), cwd=sandbox.root)
    status, _, _ = server.request("GET", "/-/whoami", key=session)
    assert status == 401  # revoked at once, whichever worker answers


def test_web_login_through_the_approval_page(sandbox: Sandbox, server: Server, npm: str) -> None:
    name = sandbox.unique("web").replace("-", "")[:30].lower()
    add_user(server, name, role="reader")
    proc = subprocess.Popen(
        [str(sandbox.clients[npm]), "login", *registry_args(server)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=sandbox.env(), cwd=sandbox.root, text=True,
    )  # fmt: skip
    # npm waits for the approval: if it never prints the login URL, end it (then the
    # loop below sees the end of its output) rather than wait for ever.
    watchdog = threading.Timer(180, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        login_url = None
        seen = ""
        while login_url is None:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            found = re.search(r"(http://\S+/-/v1/login/\S+)", line)
            login_url = found.group(1) if found else None
        watchdog.cancel()
        assert login_url, seen
        with urllib.request.urlopen(login_url, timeout=60) as page:
            form = page.read().decode()
        assert '<form method="post"' in form and 'name="password"' in form
        wrong = urllib.parse.urlencode({"username": name, "password": "nope nope"}).encode()
        try:
            urllib.request.urlopen(urllib.request.Request(login_url, data=wrong), timeout=60)
            raise AssertionError("a wrong password was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 401
        right = urllib.parse.urlencode({"username": name, "password": PASSWORD}).encode()
        with urllib.request.urlopen(urllib.request.Request(login_url, data=right), timeout=60) as r:
            assert r.status == 200
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, seen + out
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert whoami(sandbox, server) == name
    # A reader's token reads but never writes, whatever it asked for.
    status, _, _ = server.request("PUT", "/-/package/x/dist-tags/beta", "1.0.0",
                                  key=token_in_npmrc(sandbox))  # fmt: skip
    assert status == 403


def test_adduser_is_refused_while_signup_is_closed(sandbox: Sandbox, server: Server) -> None:
    status, _, body = server.request(
        "PUT",
        "/-/user/org.couchdb.user:newcomer",
        {"name": "newcomer", "password": "whatever12", "email": "n@example.test"},
    )
    assert status == 401, body


def test_legacy_login_wrong_password_is_401(server: Server, tmp_path: Path) -> None:
    add_user(server, "wrongpw")
    status, headers, _ = server.request(
        "PUT", "/-/user/org.couchdb.user:wrongpw", {"name": "wrongpw", "password": "not it!!"}
    )
    assert status == 401
    assert "ratelimit-policy" in headers
