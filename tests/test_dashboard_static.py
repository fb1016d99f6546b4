"""Serving the dashboard's files (app/resources/dashboard.py): digest URLs cached for a
year, the page revalidated by ETag, gzip, the security headers, and a page with no
inline script or style."""

from __future__ import annotations

import gzip
import re
from html.parser import HTMLParser
from pathlib import Path

import falcon
import falcon.testing
import pytest

from app import errors
from app.resources import dashboard

STATIC = dashboard.STATIC_ROOT


@pytest.fixture(scope="module")
def client() -> falcon.testing.TestClient:
    app = falcon.App()
    errors.install(app)
    dashboard.add_routes(app, dashboard.StaticFiles())
    return falcon.testing.TestClient(app)


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/_dashboard/static/[^"]+)"', page)


def test_the_page_carries_a_strict_policy_and_is_revalidated(
    client: falcon.testing.TestClient,
) -> None:
    r = client.simulate_get("/_dashboard")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'"
    assert csp["style-src-attr"] == "'none'"
    assert "unsafe-inline" not in csp["style-src"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-cache"
    again = client.simulate_get("/_dashboard", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_assets_live_under_the_builds_digest_and_are_cached_for_a_year(
    client: falcon.testing.TestClient,
) -> None:
    page = client.simulate_get("/_dashboard").text
    urls = asset_urls(page)
    files = dashboard.StaticFiles()
    assert urls and all(u.startswith(files.base) for u in urls)
    for url in urls:
        r = client.simulate_get(url)
        assert r.status_code == 200, url
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.content == (STATIC / url[len(files.base) :]).read_bytes()
    stale = urls[0].replace(files.digest, "0" * len(files.digest))
    r = client.simulate_get(stale)
    assert r.status_code == 404 and "error" in r.json
    assert client.simulate_get(files.base + "js/nope.js").status_code == 404


def test_gzip_when_the_client_accepts_it(client: falcon.testing.TestClient) -> None:
    url = dashboard.StaticFiles().base + "js/main.js"
    plain = client.simulate_get(url)
    assert "content-encoding" not in plain.headers
    packed = client.simulate_get(url, headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert len(packed.content) < len(plain.content)
    assert gzip.decompress(packed.content) == plain.content


def test_files_are_read_on_first_use_and_a_file_replaced_since_start_is_not_served(
    tmp_path: Path,
) -> None:
    (tmp_path / "index.html").write_text('<script src="/_dashboard/static/app.js"></script>')
    (tmp_path / "app.js").write_text("console.log('one');" * 40)
    (tmp_path / "other.js").write_text("let a = 1;")
    files = dashboard.StaticFiles(tmp_path)
    assert files.base in files.page.body.decode()
    app = falcon.App()
    errors.install(app)
    dashboard.add_routes(app, files)
    client = falcon.testing.TestClient(app)
    # Served with the bytes hashed at start, and kept: later reads do not touch the disk.
    first = client.simulate_get(files.base + "app.js", headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert gzip.decompress(first.content) == (tmp_path / "app.js").read_bytes()
    (tmp_path / "app.js").write_text("changed")
    again = client.simulate_get(files.base + "app.js")
    assert again.status_code == 200 and again.content == b"console.log('one');" * 40
    # Not read yet when it changed: its bytes are not the build's any more.
    (tmp_path / "other.js").write_text("let a = 2;")
    stale = client.simulate_get(files.base + "other.js")
    assert stale.status_code == 404 and "error" in stale.json
    # Gone: 404, never a 500.
    (tmp_path / "gone.js").write_text("x")
    later = dashboard.StaticFiles(tmp_path)
    (tmp_path / "gone.js").unlink()
    app2 = falcon.App()
    errors.install(app2)
    dashboard.add_routes(app2, later)
    assert falcon.testing.TestClient(app2).simulate_get(later.base + "gone.js").status_code == 404


def test_the_libraries_come_from_the_build_not_from_git() -> None:
    vendor = STATIC / "vendor"
    assert (vendor / "uPlot.esm.js").is_file() and (vendor / "xterm.mjs").is_file()
    ignored = (Path(__file__).resolve().parent.parent / ".gitignore").read_text().splitlines()
    assert "app/static/dashboard/vendor/" in ignored
    for name in ("uPlot.esm.js", "xterm.mjs"):
        assert b"sourceMappingURL" not in (vendor / name).read_bytes()


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        if tag == "style" or "style" in names or any(k.startswith("on") for k in names):
            self.found.append(f"<{tag} {sorted(names)}>")
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")

    def handle_data(self, data: str) -> None:
        pass


def test_no_inline_script_or_style_and_no_inner_html() -> None:
    parser = _Inline()
    parser.feed((STATIC / "index.html").read_text())
    assert parser.found == []
    for module in (STATIC / "js").rglob("*.js"):
        text = module.read_text()
        assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|\beval\(", text), module
