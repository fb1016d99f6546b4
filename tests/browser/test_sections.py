"""The Security, Packages, Analytics, Users and Hooks sections and npm's web-login page in
Debian's Chromium against a real `r13 serve` (fixtures: tests/browser/conftest.py,
which also fails a test on any console error, uncaught exception or CSP refusal)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Dialog

from tests.browser.conftest import Watched, go, screenshot, sign_in, wait_section
from tests.e2e.clients import ensure_clients
from tests.e2e.clients import npm as machine_npm
from tests.e2e.conftest import R13, Sandbox, Server

pytestmark = pytest.mark.slow
PASSWORD = "a user's good password"
# Waited for at most this long (a condition, never a measured duration).
PATIENCE = 120.0


@pytest.fixture(scope="module")
def clients() -> dict[str, Path]:
    return {"npm": machine_npm(), **ensure_clients()}


@pytest.fixture
def sandbox(tmp_path: Path, dash_server: Server, clients: dict[str, Path]) -> Sandbox:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".npmrc").write_text("")
    return Sandbox(tmp_path, dash_server, dash_server.key("write"), clients)


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    status, _, raw = server.request(method, path, body, key=server.key("admin"))
    assert status < 300, (status, raw)
    return json.loads(raw) if raw else None


def eventually(check: Callable[[], Any], what: str) -> Any:
    """``check()``'s first truthy answer, asked again until PATIENCE runs out."""
    end = time.monotonic() + PATIENCE
    while True:
        answer = check()
        if answer:
            return answer
        assert time.monotonic() < end, f"never: {what}"
        time.sleep(0.2)


def test_security_creates_a_key_shows_its_secret_once_and_revokes_it(
    dash_server: Server, new_page: Callable[..., Watched]
) -> None:
    w = new_page()
    sign_in(w, dash_server, section="security")
    page = w.page
    page.fill("#key-form input[name=id]", "ci-browser")
    page.select_option("#key-form select[name=permissions]", "write")
    page.fill("#key-form input[name=expiresIn]", "30d")
    page.fill("#key-form input[name=rateLimit]", "120")
    page.fill("#key-form input[name=cidr]", "127.0.0.0/8")
    page.fill("#key-form input[name=packages]", "@ci/*")
    page.click("#key-form button[type=submit]")
    secret = page.text_content("#new-key-secret") or ""
    assert secret.startswith("r13_")
    row = page.locator("#keys-table tr", has=page.locator("[data-key='ci-browser']"))
    row.wait_for()
    text = row.inner_text()
    assert "write" in text and "127.0.0.0/8" in text and "@ci/*" in text and "120" in text
    status, _, body = dash_server.request("GET", "/-/whoami", key=secret)
    assert status == 200, body
    screenshot(w, "security-key-created")
    page.click("#key-secret button:has-text('Done')")
    page.wait_for_selector("#new-key-secret", state="detached")
    assert secret not in page.content()  # shown once: gone from the page
    page.reload()
    wait_section(w, "security")
    assert secret not in page.content()
    page.click("[data-revoke='ci-browser']")  # arms
    page.click("[data-revoke='ci-browser']")  # revokes
    page.wait_for_selector("[data-key='ci-browser']", state="detached")  # hidden once revoked
    page.check("#show-revoked")
    page.wait_for_selector("[data-key='ci-browser'] .badge:has-text('revoked')")
    status, _, _ = dash_server.request("GET", "/-/whoami", key=secret)
    assert status == 401
    audit = api(dash_server, "GET", "/_api/security/audit?action=key.revoke")
    assert any(e["target"] == "ci-browser" for e in audit["events"])
    page.wait_for_selector("#security-events li[data-event='key_revoked']")


def test_npm_web_login_is_approved_on_the_sign_in_page(
    dash_server: Server, sandbox: Sandbox, new_page: Callable[..., Watched]
) -> None:
    name = sandbox.unique("web").replace("-", "")[:30].lower()
    subprocess.run(
        [str(R13), "--data", str(dash_server.data), "users", "add", name, "--role", "publisher",
         "--password-stdin"],
        input=PASSWORD + "\n", env=dash_server.env(), capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    proc = subprocess.Popen(
        [str(sandbox.clients["npm"]), "login", "--auth-type=web",
         f"--registry={dash_server.url}/"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=sandbox.env(), cwd=sandbox.root, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(PATIENCE, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        login_url, seen = None, ""
        while login_url is None:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            found = re.search(r"(http://\S+/-/v1/login/\S+)", line)
            login_url = found.group(1) if found else None
        assert login_url, seen
        w = new_page(390, 844)
        page = w.page
        page.goto(login_url)
        # The dashboard's look: its stylesheet applied (the form is the dashboard's card).
        assert page.eval_on_selector("form.login", "f => getComputedStyle(f).display") == "grid"
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", PASSWORD)
        screenshot(w, "npm-web-login")
        page.click("button[type=submit]")
        page.wait_for_selector("#approved")
        assert name in (page.text_content("#approved h1") or "")
        out, _ = proc.communicate(timeout=PATIENCE)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, seen + (out or "")
    whoami = sandbox.run("npm", "whoami", f"--registry={dash_server.url}/", cwd=sandbox.root)
    assert whoami.stdout.strip() == name


HOSTILE_README = """# Hostile readme

<script>window.__pwned = "script"; alert("script")</script>

<img src="x" onerror="window.__pwned = 'onerror'; alert('onerror')">

<a href="javascript:window.__pwned='link';alert('link')" id="js-link">click me</a>

[markdown link](javascript:alert('md'))

<div style="position:fixed;inset:0;background:red" onmouseover="alert('over')">covered</div>

<svg onload="alert('svg')"><circle r="5"/></svg>

<iframe src="javascript:alert('frame')"></iframe>

Plain **text** stays.
"""


def publish_with_npm(sandbox: Sandbox, name: str, readme: str, version: str = "1.0.0") -> None:
    d = sandbox.project(name, {"name": name, "version": version, "description": f"{name} test"})
    (d / "README.md").write_text(readme)
    (d / "index.js").write_text("module.exports = 1;\n")
    sandbox.run("npm", "publish", cwd=d)


def test_a_hostile_readme_is_inert_in_the_packages_section(
    dash_server: Server, sandbox: Sandbox, new_page: Callable[..., Watched]
) -> None:
    name = sandbox.unique("hostile")
    publish_with_npm(sandbox, name, HOSTILE_README)
    w = new_page()
    page = w.page
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    sign_in(w, dash_server, section="packages")
    page.fill("input[name=q]", name)
    page.press("input[name=q]", "Enter")
    page.click(f"[data-package='{name}']")
    page.wait_for_selector("#readme h1:has-text('Hostile readme')")
    readme = page.locator("#readme")
    assert "Plain" in readme.inner_text()
    page.hover("#readme div:has-text('covered')")
    if page.locator("#readme #js-link, #readme a:has-text('click me')").count():
        page.click("#readme a:has-text('click me')")
    checks = page.evaluate(
        """() => {
        const r = document.getElementById('readme');
        const all = [...r.querySelectorAll('*')];
        return {
          pwned: window.__pwned === undefined ? null : String(window.__pwned),
          scripts: r.querySelectorAll('script, iframe, svg, style, object, embed').length,
          handlers: all.filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
          styled: all.filter(e => e.hasAttribute('style')).length,
          jsLinks: all.filter(e => /^\\s*javascript:/i.test(e.getAttribute('href') || '')).length,
          images: r.querySelectorAll('img').length,
        };
    }"""
    )
    assert checks == {
        "pwned": None, "scripts": 0, "handlers": 0, "styled": 0, "jsLinks": 0, "images": 0,
    }  # fmt: skip
    assert dialogs == []
    screenshot(w, "packages-hostile-readme")


def test_users_add_change_role_reset_and_remove(
    dash_server: Server, new_page: Callable[..., Watched]
) -> None:
    w = new_page()
    sign_in(w, dash_server, section="users")
    page = w.page
    page.fill("#user-form input[name=name]", "browsie")
    page.fill("#user-form input[name=password]", PASSWORD)
    page.select_option("#user-form select[name=role]", "reader")
    page.fill("#user-form input[name=email]", "browsie@example.test")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("[data-user='browsie']")
    assert api(dash_server, "GET", "/_api/users/browsie")["role"] == "reader"
    page.select_option("select[data-role='browsie']", "publisher")
    eventually(
        lambda: api(dash_server, "GET", "/_api/users/browsie")["role"] == "publisher",
        "the role change reached the server",
    )
    page.click("[data-reset='browsie']")
    generated = page.text_content("#new-password") or ""
    assert len(generated) >= 20
    status, _, _ = dash_server.request(
        "PUT", "/-/user/org.couchdb.user:browsie", {"name": "browsie", "password": generated}
    )
    assert status == 201
    screenshot(w, "users")
    page.click("[data-remove='browsie']")
    page.click("[data-remove='browsie']")
    page.wait_for_selector("[data-user='browsie']", state="detached")
    status, _, _ = dash_server.request("GET", "/_api/users/browsie", key=dash_server.key("admin"))
    assert status == 404


def test_hooks_add_ping_show_the_delivery_log_and_remove(
    dash_server: Server, new_page: Callable[..., Watched]
) -> None:
    from tests.hook_receiver import Receiver

    receiver = Receiver("dashboard hook secret")
    receiver.start()
    try:
        w = new_page()
        sign_in(w, dash_server, section="hooks")
        page = w.page
        page.select_option("#hook-form select[name=type]", "scope")
        page.fill("#hook-form input[name=name]", "@browsie")
        page.fill("#hook-form input[name=endpoint]", receiver.url)
        page.fill("#hook-form input[name=secret]", "dashboard hook secret")
        page.click("#hook-form button[type=submit]")
        page.wait_for_selector("#hooks-table [data-hook]")
        [hook] = [h for h in api(dash_server, "GET", "/_api/hooks")["objects"]
                  if h["name"] == "@browsie"]  # fmt: skip
        page.click(f"[data-ping='{hook['id']}']")
        eventually(lambda: any(r.signature_ok for r in receiver.snapshot()), "the ping arrived")
        eventually(
            lambda: api(dash_server, "GET", f"/_api/hooks/{hook['id']}")["last_status"] == 204,
            "the delivery was recorded",
        )
        page.click(f"[data-log='{hook['id']}']")
        page.wait_for_selector("#hooks-attempts td:has-text('204')")
        assert "hook:ping" in (page.text_content("#hooks-deliveries") or "")
        screenshot(w, "hooks")
        page.click(f"[data-remove='{hook['id']}']")
        page.click(f"[data-remove='{hook['id']}']")
        page.wait_for_selector(f"[data-hook='{hook['id']}']", state="detached")
        status, _, _ = dash_server.request(
            "GET", f"/_api/hooks/{hook['id']}", key=dash_server.key("admin")
        )
        assert status == 404
    finally:
        receiver.stop()


def test_analytics_chart_shows_the_downloads(
    dash_server: Server, sandbox: Sandbox, new_page: Callable[..., Watched]
) -> None:
    name = sandbox.unique("popular")
    publish_with_npm(sandbox, name, "# popular\n")
    reader = dash_server.key("read")
    for _ in range(5):
        status, _, _ = dash_server.request("GET", f"/{name}/-/{name}-1.0.0.tgz", key=reader)
        assert status == 200
    eventually(
        lambda: api(dash_server, "GET", f"/_api/analytics/downloads?package={name}")["total"] >= 5,
        "every worker's download counts flushed",
    )
    total = api(dash_server, "GET", "/_api/analytics/downloads")["total"]
    w = new_page()
    sign_in(w, dash_server, section="analytics")
    page = w.page
    page.fill("input[name=package]", name)
    page.click("form.bar button[type=submit]")
    page.wait_for_selector(f"#package-chart h2:has-text('{name}')")
    assert page.locator("#downloads-chart canvas").count() == 1
    assert page.locator("#package-chart canvas").count() == 1
    shown = page.text_content("[data-tile='downloads'] .value")
    assert shown is not None and int(shown) >= total >= 5
    # The chart's own series: the day's point holds the package's downloads.
    series = page.evaluate(
        "() => [...document.querySelectorAll('#package-chart .u-legend .u-series')].length"
    )
    assert series >= 2  # the time axis and the package's line
    assert name in (page.text_content("#top-table") or "")
    screenshot(w, "analytics")


@pytest.fixture
def phone(dash_server: Server, new_page: Callable[..., Watched]) -> Iterator[Watched]:
    w = new_page(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    sign_in(w, dash_server)
    yield w


@pytest.mark.parametrize("section", ["security", "packages", "analytics", "users", "hooks"])
def test_each_section_fits_a_phone(phone: Watched, section: str) -> None:
    go(phone, section)
    page = phone.page
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"{section} is {width} px wide"
    # Its first control is on screen and usable with a thumb.
    box = page.locator("#section button").first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert box["height"] >= 28
    screenshot(phone, f"phone-{section}")
