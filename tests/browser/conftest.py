"""Fixtures for the dashboard's browser tests: a real `r13 serve` (gunicorn, gevent, three
workers) and Debian's Chromium driven by Playwright (tests/browser/chromium.py).

Every page a test opens is watched: a console error, an uncaught exception or a refused
request (a CSP violation is a console error) fails the test at its end. Screenshots go
to tests/browser/artifacts/ (git-ignored).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser.chromium import ARGS, ensure_chromium
from tests.e2e.conftest import R13, Server
from tests.ports import free_port

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SECTIONS = (
    "performance",
    "security",
    "configuration",
    "terminal",
    "packages",
    "analytics",
    "users",
    "hooks",
)
ADMIN_USER = "ada"
ADMIN_PASSWORD = "a long admin password"
# Conditions are waited for this long at most (a loaded machine is slow; nothing is timed).
WAIT_MS = 60_000

pytestmark = pytest.mark.slow


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def dash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("r13-dashboard")
    srv = Server(data=root / "data", port=free_port(), log=root / "server.log")
    srv.extra_env = {
        "R13_WORKERS": "3",
        # One second between samples: the charts get new points soon.
        "METRICS_COLLECTION_INTERVAL": "1000",
        # The Hooks section's receiver listens on loopback; retries come soon.
        "R13_HOOKS_ALLOW_PRIVATE": "1",
        "R13_HOOKS_POLL": "100",
    }
    srv.start()
    subprocess.run(
        [str(R13), "--data", str(srv.data), "users", "add", ADMIN_USER, "--role", "admin",
         "--password-stdin"],
        input=ADMIN_PASSWORD + "\n", env=srv.env(), capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()[-5000:]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    ensure_chromium()
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # launch() gives every browser a fresh, empty user-data-dir of its own.
    b = playwright.chromium.launch(
        executable_path=str(ensure_chromium()), headless=True, args=list(ARGS)
    )
    yield b
    b.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Watched]]:
    """``new_page(width=1280, height=900)``: a page in a context of its own (its own
    cookies), watched for console errors; every one is closed when the test ends."""
    contexts: list[BrowserContext] = []
    watched: list[Watched] = []

    def make(width: int = 1280, height: int = 900, **options: object) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)  # type: ignore[arg-type]
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        w = Watched(page)
        page.on("console", lambda m: w.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: w.problems.append(f"uncaught: {e}"))
        watched.append(w)
        return w

    yield make
    for context in contexts:
        context.close()
    problems = [p for w in watched for p in w.problems]
    assert not problems, problems


def open_dashboard(w: Watched, server: Server, section: str = "") -> None:
    w.page.goto(f"{server.url}/_dashboard" + (f"#{section}" if section else ""))


def sign_in(w: Watched, server: Server, *, key: str | None = None, section: str = "") -> None:
    """Open the dashboard and sign in (with the admin user's password, or ``key``)."""
    open_dashboard(w, server, section)
    page = w.page
    page.wait_for_selector("#login:not([hidden])")
    if key is None:
        page.fill("#login input[name=username]", ADMIN_USER)
        page.fill("#login input[name=password]", ADMIN_PASSWORD)
    else:
        page.fill("#login input[name=key]", key)
    page.click("#login button[type=submit]")
    wait_section(w, section or "performance")


def wait_section(w: Watched, section: str) -> None:
    w.page.wait_for_selector(f"#section[data-section='{section}'][data-ready='1']")


def go(w: Watched, section: str) -> None:
    """Navigate to ``section`` through the page's navigation (the menu on a phone)."""
    page = w.page
    if page.is_visible("#menu"):
        page.click("#menu")
    page.click(f"#nav a[data-section='{section}']")
    wait_section(w, section)


def screenshot(w: Watched, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    w.page.screenshot(path=str(path), full_page=True)
    return path
