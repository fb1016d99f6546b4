"""The dashboard in a real Chromium against a real `r13 serve` (tests/browser/conftest.py).

Every wait is for a condition (generous timeouts), never a fixed time; every page opened
is checked for console errors when the test ends.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from tests.browser.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    SECTIONS,
    Watched,
    go,
    open_dashboard,
    screenshot,
    sign_in,
    wait_section,
)
from tests.e2e.conftest import R13, Server

pytestmark = pytest.mark.slow
NewPage = Callable[..., Watched]


def config_hex(server: Server) -> str:
    status, _, body = server.request("GET", "/_api/config", key=server.admin_key)
    assert status == 200
    return str(json.loads(body)["hex"])


def r13_config(server: Server, *args: str) -> None:
    subprocess.run(
        [str(R13), "--data", str(server.data), "config", *args],
        env=server.env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip


def test_sign_in_with_a_password_then_with_a_key(dash_server: Server, new_page: NewPage) -> None:
    w = new_page()
    open_dashboard(w, dash_server)
    page = w.page
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#login input[name=username]", ADMIN_USER)
    page.fill("#login input[name=password]", "not the password")
    page.click("#login button[type=submit]")
    page.wait_for_function("() => document.getElementById('login-error').textContent.length > 0")
    assert page.is_visible("#login")
    w.problems.clear()  # the refused sign-in's 401 is logged by the browser: expected
    page.fill("#login input[name=password]", ADMIN_PASSWORD)
    page.click("#login button[type=submit]")
    wait_section(w, "performance")
    assert page.text_content("#who") == ADMIN_USER
    # A reload keeps the session (the cookie), without asking again.
    page.reload()
    wait_section(w, "performance")
    k = new_page()
    sign_in(k, dash_server, key=dash_server.admin_key)
    assert k.page.text_content("#who") == "admin"


def test_the_cookie_is_httponly_strict_and_the_page_keeps_no_secret(
    dash_server: Server, new_page: NewPage
) -> None:
    w = new_page()
    sign_in(w, dash_server)
    (cookie,) = [c for c in w.page.context.cookies() if c["name"] == "r13_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http here; Secure when r13 is reached by https
    assert "r13_session" not in w.page.evaluate("document.cookie")
    stored = w.page.evaluate(
        "[localStorage.length, sessionStorage.length, JSON.stringify(localStorage), "
        "JSON.stringify(sessionStorage)]"
    )
    assert stored[:2] == [0, 0], stored
    assert cookie["value"] not in w.page.content()


def test_a_state_changing_call_needs_the_csrf_token(dash_server: Server, new_page: NewPage) -> None:
    w = new_page()
    sign_in(w, dash_server)
    page = w.page
    script = """async ([method, path, token]) => {
        const headers = {"Content-Type": "application/json"};
        if (token !== null) headers["X-R13-CSRF"] = token;
        const body = JSON.stringify({id: "csrf-probe", permission: "read"});
        const r = await fetch(path, {method, headers, credentials: "same-origin", body});
        return [r.status, await r.text()];
    }"""
    status, body = page.evaluate(script, ["POST", "/_api/security/keys", None])
    assert status == 403 and "CSRF" in json.loads(body)["error"]
    status, _ = page.evaluate(script, ["POST", "/_api/security/keys", "0" * 32])
    assert status == 403
    w.problems.clear()  # the refused calls above are logged by the browser
    csrf = page.evaluate("fetch('/_api/session').then((r) => r.json()).then((s) => s.csrf)")
    status, body = page.evaluate(script, ["POST", "/_api/security/keys", csrf])
    assert status == 201, body
    # The cookie is no credential for another site's request (Origin names it).
    cookie = next(c for c in page.context.cookies() if c["name"] == "r13_session")
    hdrs = {"Cookie": f"r13_session={cookie['value']}", "Origin": "http://evil.example"}
    status, _, answer = dash_server.request("GET", "/_api/session", headers=hdrs)
    assert status == 200 and json.loads(answer) == {"signed_in": False}
    hdrs["Origin"] = dash_server.url
    status, _, answer = dash_server.request("GET", "/_api/session", headers=hdrs)
    assert json.loads(answer)["signed_in"] is True


def test_a_chart_receives_new_points_from_the_live_channel(
    dash_server: Server, new_page: NewPage
) -> None:
    w = new_page()
    sign_in(w, dash_server)
    page = w.page
    page.wait_for_selector("[data-chart='requests'][data-points]")
    before = int(page.get_attribute("[data-chart='requests']", "data-points") or "0")
    seq = page.get_attribute("#section", "data-last-seq")
    page.wait_for_function(
        "(n) => Number(document.querySelector(\"[data-chart='requests']\").dataset.points) > n"
        " || document.querySelector(\"[data-chart='requests']\").dataset.points === '300'",
        arg=before,
    )
    page.wait_for_function(
        "(s) => document.getElementById('section').dataset.lastSeq !== s", arg=seq or ""
    )
    last = int(page.get_attribute("#section", "data-last-seq") or "0")
    _, _, body = dash_server.request("GET", "/_api/performance/history", key=dash_server.admin_key)
    assert last in [s["seq"] for s in json.loads(body)["samples"]]
    assert page.text_content("[data-tile='workers'] .value") == "3"
    screenshot(w, "performance")


def test_a_byte_edited_in_one_browser_shows_in_another(
    dash_server: Server, new_page: NewPage
) -> None:
    a, b = new_page(), new_page()
    sign_in(a, dash_server, section="configuration")
    sign_in(b, dash_server, section="configuration")
    old = config_hex(dash_server)
    cols = int(old[22:24], 16)
    new = 100 if cols != 100 else 90
    a.page.wait_for_selector(".hexrow[data-hex]")
    a.page.click(".byte[data-offset='11']")
    a.page.fill(".byte-editor input[name=byte]", f"{new:02x}")
    a.page.click(".byte-editor button[type=submit]")
    want = old[:22] + f"{new:02x}" + old[24:]
    b.page.wait_for_selector(f".hexrow[data-hex='{want}']")
    b.page.wait_for_selector(".byte[data-offset='11'].changed")
    b.page.wait_for_selector(f"tr[data-field='cols'] td.num:text-is('{new}')")
    assert config_hex(dash_server) == want
    # A byte the record refuses (terminalMode 9) is refused and nothing changes.
    a.page.click(".byte[data-offset='9']")
    a.page.fill(".byte-editor input[name=byte]", "09")
    a.page.click(".byte-editor button[type=submit]")
    a.page.wait_for_selector(".toast:has-text('refused')")
    assert config_hex(dash_server) == want
    # A change made by `r13 config` arrives too.
    r13_config(dash_server, "set", "cols", str(cols))
    b.page.wait_for_selector(f".hexrow[data-hex='{old}']")
    screenshot(a, "configuration")


def test_export_and_import_of_the_record(dash_server: Server, new_page: NewPage) -> None:
    w = new_page()
    sign_in(w, dash_server, section="configuration")
    page = w.page
    old = config_hex(dash_server)
    page.wait_for_selector(f".hexrow[data-hex='{old}']")
    assert page.text_content("#export-hex") == old
    page.fill(".import input[name=record]", "0102")
    page.click(".import button[type=submit]")
    page.wait_for_selector(".import .error:has-text('26 digits')")
    changed = old[:20] + "30" + old[22:]  # rows 48
    page.fill(".import input[name=record]", changed)
    page.click(".import button[type=submit]")
    page.wait_for_selector(f".hexrow[data-hex='{changed}']")
    assert config_hex(dash_server) == changed
    page.fill(".import input[name=record]", old)
    page.click(".import button[type=submit]")
    page.wait_for_selector(f".hexrow[data-hex='{old}']")


def test_turning_private_registry_off_and_on_in_the_page(
    dash_server: Server, new_page: NewPage
) -> None:
    w = new_page()
    sign_in(w, dash_server, section="configuration")
    page = w.page
    switch = "input[data-flag='PRIVATE_REGISTRY']"
    page.wait_for_selector(f"{switch}:checked")
    assert dash_server.request("GET", "/left-pad")[0] == 401
    page.click(switch)
    page.wait_for_selector(f"{switch}:not(:checked)")
    status = 401
    # The record is in shared memory before the switch shows it; every worker reads it.
    for _ in range(20):
        status = dash_server.request("GET", "/left-pad")[0]
        if status == 404:
            break
    assert status == 404  # anyone may read: the package just does not exist
    page.click(switch)
    page.wait_for_selector(f"{switch}:checked")
    assert dash_server.request("GET", "/left-pad")[0] == 401


def test_a_terminal_command_in_raw_mode(dash_server: Server, new_page: NewPage) -> None:
    r13_config(dash_server, "set", "terminalMode", "2")
    try:
        w = new_page()
        sign_in(w, dash_server, section="terminal")
        page = w.page
        page.wait_for_selector("#section[data-mode='raw'][data-state='open']")
        page.wait_for_function(
            "() => document.querySelector('.xterm-rows').textContent.includes('r13>')"
        )
        page.click("#terminal")
        page.keyboard.type("config exportx")
        page.keyboard.press("Backspace")  # raw mode: the server's line editor handles it
        page.keyboard.type(" hex")
        page.keyboard.press("Enter")
        hexed = config_hex(dash_server)
        page.wait_for_function(
            "(h) => document.querySelector('.xterm-rows').textContent.includes(h)", arg=hexed
        )
        screenshot(w, "terminal")
    finally:
        r13_config(dash_server, "set", "terminalMode", "1")


def test_every_section_without_console_errors(dash_server: Server, new_page: NewPage) -> None:
    w = new_page()
    sign_in(w, dash_server)
    for section in SECTIONS:
        go(w, section)
        assert w.page.get_attribute("#nav a[aria-current='page']", "data-section") == section
        screenshot(w, f"desktop-{section}")
    assert w.problems == []


def test_a_phone_reaches_and_uses_every_section(dash_server: Server, new_page: NewPage) -> None:
    w = new_page(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    sign_in(w, dash_server)
    page = w.page
    assert page.is_visible("#menu") and not page.is_visible("#nav")
    for section in SECTIONS:
        go(w, section)
        assert not page.is_visible("#nav")  # the menu folds away once a section is chosen
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (section, width)
        screenshot(w, f"phone-{section}")
    # Usable, not only visible: edit a byte on the phone.
    go(w, "configuration")
    old = config_hex(dash_server)
    page.wait_for_selector(f".hexrow[data-hex='{old}']")
    page.tap(".byte[data-offset='12']")
    page.fill(".byte-editor input[name=byte]", "07")
    page.tap(".byte-editor button[type=submit]")
    want = old[:24] + "07"
    page.wait_for_selector(f".hexrow[data-hex='{want}']")
    r13_config(dash_server, "set", "reserved", str(int(old[24:], 16)))
    page.wait_for_selector(f".hexrow[data-hex='{old}']")


def test_logout_ends_every_session_of_that_admin(dash_server: Server, new_page: NewPage) -> None:
    a, b = new_page(), new_page()
    sign_in(a, dash_server)
    sign_in(b, dash_server, section="configuration")
    a.page.click("#logout")
    a.page.wait_for_selector("#login:not([hidden])")
    # The other browser's live channel is closed by the revocation; it returns to the form.
    b.page.wait_for_selector("#login:not([hidden])")
    _, _, body = dash_server.request("GET", "/_api/session")
    assert json.loads(body) == {"signed_in": False}
    assert not [c for c in a.page.context.cookies() if c["name"] == "r13_session"]
