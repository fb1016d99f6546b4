"""Property: whatever JSON document a publish accepts can be rendered and fetched.

Random JSON — text with lone surrogates and astral characters, huge and
non-finite numbers, deep nesting — goes into the places a publish body
carries free-form data, is sent as UTF-8 (escaped or raw, even with
surrogates encoded as raw bytes), and PUT through the real app on a real
SQLite data dir. The answer is 201 or a 400 JSON error, never anything else;
after a 201 every GET of the package (full and abbreviated packument, the
version, the tarball) answers 200 with strict UTF-8 JSON that parses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from itertools import count
from typing import Any

import falcon.testing
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.main import create_app
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.services import open_services
from r13core.settings import Settings
from tests.npm_builders import publish_body

ABBREVIATED = "application/vnd.npm.install-v1+json"


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[falcon.testing.TestClient, str]]:
    data = tmp_path_factory.mktemp("property") / "data"
    key = KeyStore(open_database(data)).create("writer", Permission.WRITE, None)[1]
    settings_ = Settings.from_env({"R13_DATA": str(data), "R13_PUBLIC_URL": "http://r13.test"})
    yield falcon.testing.TestClient(create_app(open_services(settings_))), key


# Lone surrogates, astral characters, quotes, NUL, and anything else.
_chars = st.sampled_from('\ud800\udbff\udc00\udfff\U0001f600\u00e9"\\\x00') | st.characters()
_text = st.text(_chars, max_size=8)
_scalars = (
    _text
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)
_places = st.sampled_from(["description", "readme", "keywords", "extra", "funding", "key"])
_numbers = count()


def _encode(body: dict[str, Any], raw: bool) -> bytes:
    """As a client would send it: escaped ASCII, or raw UTF-8 (surrogates as their bytes)."""
    text = json.dumps(body, ensure_ascii=not raw, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=_json, place=_places, raw=st.booleans())
@example(value="\ud800", place="description", raw=False)
@example(value="\udfff", place="readme", raw=True)
@example(value={"\udc00": 1}, place="extra", raw=False)
@example(value=["ok", "\ud83d"], place="keywords", raw=True)
@example(value=float("inf"), place="funding", raw=False)
@example(value="\ud83d\ude00", place="description", raw=True)
def test_what_a_publish_accepts_can_be_rendered_and_fetched(
    app: tuple[falcon.testing.TestClient, str], value: Any, place: str, raw: bool
) -> None:
    client, key = app
    auth = {"Authorization": f"Bearer {key}"}
    name = f"prop-{next(_numbers)}"
    body = publish_body(name, "1.0.0")
    manifest = body["versions"]["1.0.0"]
    if place == "readme":
        body["readme"] = value
    elif place == "keywords":
        manifest["keywords"] = [value]
    elif place == "key":
        manifest["extra"] = {str(value): 1}
    else:
        manifest[place] = value
    sent = _encode(body, raw)
    r = client.simulate_put(
        f"/{name}", body=sent, headers={**auth, "Content-Type": "application/json"}
    )
    if r.status_code != 201:
        assert r.status_code == 400, r.text
        assert set(json.loads(r.content.decode("utf-8"))) == {"error"}
        return
    for accept in ("application/json", ABBREVIATED):
        got = client.simulate_get(f"/{name}", headers={**auth, "Accept": accept})
        assert got.status_code == 200, got.text
        doc = json.loads(got.content.decode("utf-8"))  # strict UTF-8, then JSON
        assert "1.0.0" in doc["versions"]
    one = client.simulate_get(f"/{name}/1.0.0", headers=auth)
    assert one.status_code == 200
    stored = json.loads(one.content.decode("utf-8"))
    if place in ("description", "extra", "funding") and _finite(value):
        # What the JSON text meant (an escaped surrogate pair is one character).
        assert stored[place] == json.loads(json.dumps(value))
    tarball = client.simulate_get(f"/{name}/-/{name}-1.0.0.tgz", headers=auth)
    assert tarball.status_code == 200


def _finite(value: Any) -> bool:
    """Whether ``value`` compares equal to itself after a round trip (no NaN inside)."""
    if isinstance(value, float):
        return not math.isnan(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def test_the_property_sees_both_answers(app: tuple[falcon.testing.TestClient, str]) -> None:
    """The property is not vacuous: a surrogate is refused, plain text is stored."""
    client, key = app
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bad = publish_body("prop-bad", "1.0.0")
    bad["versions"]["1.0.0"]["description"] = "\ud800"
    assert (
        client.simulate_put("/prop-bad", body=_encode(bad, False), headers=headers).status_code
        == 400
    )
    assert (
        client.simulate_put("/prop-bad", body=_encode(bad, True), headers=headers).status_code
        == 400
    )
    good = publish_body("prop-good", "1.0.0")
    good["versions"]["1.0.0"]["description"] = "caf\u00e9 \U0001f600"
    assert (
        client.simulate_put("/prop-good", body=_encode(good, True), headers=headers).status_code
        == 201
    )
