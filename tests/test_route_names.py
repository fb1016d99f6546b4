"""Metrics route names come from the route table, never from the request path (item 13).

The review filled the 128 shared route slots with ``/-/package/x/<segment>``
requests (each raw segment became a route name), and a segment over 63
bytes answered 400 "registering route...".
"""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from app.main import create_app
from app.resources import dist_tags, packages
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.metrics import Metrics
from r13core.services import open_services
from r13core.settings import Settings


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
def test_raw_path_segments_never_become_route_names(tmp_path: Path) -> None:
    client = falcon.testing.TestClient(
        create_app(open_services(Settings.from_env({"R13_DATA": str(tmp_path)})))
    )
    segments = [f"seg{i}-" + "x" * 70 for i in range(150)]
    for seg in segments:
        r = client.simulate_get(f"/-/package/pkg/{seg}", remote_addr="127.0.0.1")
        assert r.status_code in (401, 404), r.text  # never 400 "registering route"
        client.simulate_get(f"/pkg/{seg}/{seg}/{seg}", remote_addr="127.0.0.1")
        client.simulate_get(f"/{seg}", remote_addr="127.0.0.1")
    # Made-up methods are one name, too.
    for i in range(30):
        client.simulate_request(f"X{i:03d}METHOD", "/-/ping", remote_addr="127.0.0.1")
    with Metrics(tmp_path) as metrics:
        names = {metrics.route_name(rid) for rid in metrics.route_ids()}
    # The security metrics' per-route counters are named the same way.
    _, admin = KeyStore(open_database(tmp_path)).create("root", Permission.ADMIN, None)
    m = client.simulate_get(
        "/_api/security/metrics",
        headers={"Authorization": f"Bearer {admin}"},
        remote_addr="127.0.0.1",
    ).json
    labels = set(m["requests"]["byRoute"])
    assert "GET /-/package/{package}/*" in labels and "OTHER /-/ping" in labels, labels
    assert not any("seg" in label or "METHOD" in label for label in labels), labels
    assert not any("seg" in name or "METHOD" in name for name in names), names
    # Every name is a method and a template the app declared (or "*").
    declared = packages.ROUTES | dist_tags.ROUTES
    for name in names - {"*"}:
        method, _, template = name.partition(" ")
        assert method in {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"}
        assert template in declared or template.startswith(("/-/", "/_api/", "/metrics")), name
    assert len(names) < 40


def test_dist_tags_sink_names_only_its_fixed_routes() -> None:
    t = dist_tags.route_template
    assert t(["dist-tags"]) == "/-/package/{package}/dist-tags"
    assert t(["dist-tags", "beta"]) == "/-/package/{package}/dist-tags/{tag}"
    assert t(["owners"]) == "/-/package/{package}/owners"
    assert t(["anything-at-all"]) == "/-/package/{package}/*"
    assert t(["dist-tags", "a", "b"]) == "/-/package/{package}/*"
    assert {t(r) for r in (["dist-tags"], ["dist-tags", "x"], ["owners"], ["zz"])} == (
        dist_tags.ROUTES
    )
