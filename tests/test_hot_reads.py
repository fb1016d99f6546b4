"""The hot reads (app/hot_reads.py) answer exactly as falcon's path does, or hand over.

Two apps over one set of services (one storage, one limiter table, one set of counters):
``hot`` as `r13 serve` builds it, ``plain`` with the hot reads taken out. Each case is
sent to both, from two client addresses (so each has its own rate-limit bucket and the
two see the same limiter state), as gunicorn's environ. Compared: status, headers (the
reset time aside), body, the security counters it added, the monitor's count by route
and status, the access-log line. And each case says which path must answer it: the hot
reads themselves, or falcon after them (a spy on the hot reads records which).
"""

from __future__ import annotations

import base64
import io
import json
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.hot_reads import HotReads, in_front
from app.main import R13App, create_app
from app.resources.packages import Packages
from r13core.audit import Actor
from r13core.config import Feature
from r13core.keys import Permission
from r13core.names import PackageName
from r13core.services import Services, open_services
from r13core.settings import Settings
from tests.npm_builders import package_tgz, publish_body

ABBREV = "application/vnd.npm.install-v1+json"
HOT_IP, PLAIN_IP = "10.0.0.1", "10.0.0.2"
LIMIT = 40
KEY_IDS = ("reader", "boss", "far", "narrow", "slow", "gone")


class Spy:
    """Stands in for an app's HotReads: records whether each call answered."""

    def __init__(self, hot: HotReads) -> None:
        self.hot = hot
        self.answered: list[bool] = []

    def __call__(self, env: dict[str, Any], start_response: Any) -> Iterable[bytes] | None:
        out = self.hot(env, start_response)
        self.answered.append(out is not None)
        return out


def environ(method: str, raw: str, headers: dict[str, str] | None, ip: str) -> dict[str, Any]:
    """The environ gunicorn makes for this request."""
    path, _, query = raw.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "RAW_URI": raw,
        "PATH_INFO": unquote(path, encoding="latin-1"),  # PEP 3333: bytes as latin-1
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "4873",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "REMOTE_ADDR": ip,
        "HTTP_HOST": "127.0.0.1:4873",
    }
    for name, value in (headers or {}).items():
        if name.lower() == "content-length":
            env["CONTENT_LENGTH"] = value
        else:
            env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


@dataclass
class Answer:
    status: str
    headers: dict[str, str]
    body: bytes
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class World:
    services: Services
    hot: R13App
    plain: R13App
    spy: Spy
    keys: dict[str, str]
    data: Path

    def call(
        self,
        app: R13App,
        method: str,
        raw: str,
        headers: dict[str, str] | None = None,
        *,
        ip: str,
    ) -> Answer:
        env = environ(method, raw, headers, ip)
        got: list[Any] = []

        def start_response(status: str, hdrs: list[tuple[str, str]], exc: Any = None) -> None:
            got[:] = [status, hdrs]

        before = self.counters()
        log_before = self.log_lines()
        chunks = app(env, start_response)
        body = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        status, hdrs = got
        names = [name.lower() for name, _ in hdrs]
        assert len(names) == len(set(names)), f"a header twice: {hdrs}"
        after = self.counters()
        delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        return Answer(
            status,
            {name.lower(): value for name, value in hdrs},
            body,
            delta,
            [json.loads(line) for line in self.log_lines()[len(log_before) :]],
        )

    def fresh_keys(self) -> None:
        """Every key's own bucket emptied: both apps' calls of a case start alike."""
        for key_id in KEY_IDS:
            self.services.limiter.reset("key:" + key_id)

    def counters(self) -> dict[tuple[str, str], int]:
        totals = self.services.counters.totals()
        return {(kind, label): n for kind, labels in totals.items() for label, n in labels.items()}

    def log_lines(self) -> list[str]:
        path = self.data / "logs" / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def both(
        self, method: str, raw: str, headers: dict[str, str] | None = None
    ) -> tuple[Answer, Answer, bool]:
        """The case through both apps; whether the hot reads answered it themselves."""
        self.fresh_keys()
        hot = self.call(self.hot, method, raw, headers, ip=HOT_IP)
        answered = self.spy.answered[-1]
        self.fresh_keys()
        plain = self.call(self.plain, method, raw, headers, ip=PLAIN_IP)
        return hot, plain, answered


def same(hot: Answer, plain: Answer) -> None:
    """The two answers are one answer (the client address and the clock aside)."""
    assert hot.status == plain.status
    assert hot.body == plain.body.replace(PLAIN_IP.encode(), HOT_IP.encode())
    h, p = dict(hot.headers), dict(plain.headers)
    # Seconds since the epoch plus the window: the two calls may straddle a second.
    assert abs(int(h.pop("x-ratelimit-reset", "0")) - int(p.pop("x-ratelimit-reset", "0"))) <= 1
    assert h == p
    assert hot.counters == {
        (kind, HOT_IP if label == PLAIN_IP else label.replace(PLAIN_IP, HOT_IP)): n
        for (kind, label), n in plain.counters.items()
    }
    assert len(hot.log) == len(plain.log)
    for a, b in zip(hot.log, plain.log, strict=True):
        for record, ip in ((a, HOT_IP), (b, PLAIN_IP)):
            assert record.pop("ip") == ip
            record.pop("ts")
            record.pop("ms")
        assert a == b


def make_world(data: Path, **more: str) -> World:
    env = {
        "R13_DATA": str(data),
        "R13_FEATURE_PRIVATE_REGISTRY": "0",
        "SECURITY_RATE_LIMIT_MAX": str(LIMIT),
        **more,
    }
    services = open_services(Settings.from_env(env))
    admin = Actor("admin")
    put = services.registry.put_package
    for name in ("small", "@scope/pkg", "other"):
        put(PackageName.parse(name), publish_body(name, "1.0.0"), actor=admin)
    # A tarball over SmallTarballs' 256 KiB: sent from its file, not from memory.
    big = package_tgz("big", "1.0.0", extra_files={"blob.bin": random.randbytes(300_000)})
    put(PackageName.parse("big"), publish_body("big", "1.0.0", big), actor=admin)
    ident = services.identity
    keys = {
        "read": ident.create_key(admin, "reader", Permission.READ, 30)[1],
        "admin": ident.create_key(admin, "boss", Permission.ADMIN, 30)[1],
        "elsewhere": ident.create_key(admin, "far", Permission.READ, 30, cidr=["192.0.2.0/24"])[1],
        "only-other": ident.create_key(admin, "narrow", Permission.READ, 30, packages=["other"])[1],
        "own-limit": ident.create_key(admin, "slow", Permission.READ, 30, rate_limit=3)[1],
    }
    revoked = ident.create_key(admin, "gone", Permission.READ, 30)
    ident.revoke_key(admin, revoked[0].id)
    keys["revoked"] = revoked[1]
    services.config.set_feature(Feature.LOGGING, True)
    services.config.set_feature(Feature.METRICS, True)
    hot = create_app(services)
    assert hot.hot is not None
    spy = Spy(hot.hot)
    hot.hot = cast(HotReads, spy)
    plain = create_app(services)
    plain.hot = None
    return World(services, hot, plain, spy, keys, data)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = make_world(tmp_path)
    yield made
    made.services.config.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# (method, raw path, headers) -> the hot reads answer it themselves
HOT_CASES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/small", {}),
    ("HEAD", "/small", {}),
    ("GET", "/small", {"Accept": ABBREV}),
    ("GET", "/small", {"Accept-Encoding": "gzip, deflate"}),
    ("GET", "/small", {"Accept-Encoding": "gzip;q=0"}),
    ("GET", "/small", {"If-None-Match": "*"}),
    ("GET", "/small/", {}),
    ("GET", "/@scope%2fpkg", {}),
    ("GET", "/@scope%2Fpkg", {"Accept": ABBREV, "Accept-Encoding": "gzip"}),
    ("GET", "/@scope/pkg", {}),
    ("GET", "/missing", {}),
    ("GET", "/@scope%2fmissing", {"Accept": ABBREV}),
    ("HEAD", "/missing", {}),
    ("GET", "/small", {"Content-Length": "0"}),
    ("GET", "/small/-/small-1.0.0.tgz", {}),
    ("HEAD", "/small/-/small-1.0.0.tgz", {}),
    ("GET", "/small/-/small-1.0.0.tgz", {"If-None-Match": "*"}),
    ("GET", "/@scope/pkg/-/pkg-1.0.0.tgz", {}),
    ("GET", "/@scope%2fpkg/-/pkg-1.0.0.tgz", {}),
    ("GET", "/big/-/big-1.0.0.tgz", {}),
    ("HEAD", "/big/-/big-1.0.0.tgz", {}),
    ("GET", "/small/-/small-9.9.9.tgz", {}),
    ("GET", "/missing/-/missing-1.0.0.tgz", {}),
]
# ... and these go to falcon (after the hot reads looked)
FALCON_CASES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/small?write=true", {}),
    ("GET", "/small?", {}),
    ("GET", "/Bad%20Name", {}),
    ("GET", "/-/ping", {}),
    ("GET", "/_api/config", {}),
    ("GET", "/..%2fsmall", {}),
    ("GET", "/small/%2e%2e", {}),
    ("GET", "/small/1.0.0", {}),
    ("GET", "/small/-/small-1.0.0.txt", {}),
    ("GET", "/small/-/.hidden.tgz", {}),
    ("GET", "/small/-/small-1.0.0.tgz/-rev/1", {}),
    ("PUT", "/small", {}),
    ("DELETE", "/small", {}),
    ("POST", "/small", {}),
    ("GET", "/small", {"Cookie": "r13_session=nothing"}),
    ("GET", "/small", {"Upgrade": "websocket", "Connection": "upgrade"}),
    ("GET", "/small", {"Content-Length": "5"}),
    ("GET", "/small", {"Transfer-Encoding": "chunked"}),
    ("GET", "/small", {"Authorization": "Token abc"}),
    ("GET", "/small", {"Authorization": "Bearer not-a-key"}),
    ("GET", "/small", {"Authorization": "Bearer "}),
]


@pytest.mark.parametrize(("method", "raw", "headers"), HOT_CASES)
def test_the_hot_reads_answer_a_plain_read_as_falcon_does(
    world: World, method: str, raw: str, headers: dict[str, str]
) -> None:
    hot, plain, answered = world.both(method, raw, headers)
    assert answered, "the hot reads handed this one to falcon"
    same(hot, plain)
    assert hot.counters, "nothing was counted"
    assert len(hot.log) == 1


@pytest.mark.parametrize(("method", "raw", "headers"), FALCON_CASES)
def test_the_hot_reads_hand_the_rest_to_falcon_untouched(
    world: World, method: str, raw: str, headers: dict[str, str]
) -> None:
    hot, plain, answered = world.both(method, raw, headers)
    assert not answered, "the hot reads answered what falcon must"
    same(hot, plain)


@pytest.mark.parametrize("key", ["read", "admin", "own-limit"])
def test_a_read_with_a_key_is_hot_and_counted_as_that_key(world: World, key: str) -> None:
    for auth in (
        bearer(world.keys[key]),
        {"Authorization": "Basic " + base64.b64encode(f"u:{world.keys[key]}".encode()).decode()},
    ):
        hot, plain, answered = world.both("GET", "/small", auth)
        assert answered
        same(hot, plain)
        assert any(kind == "key_requests" for kind, _ in hot.counters)


@pytest.mark.parametrize(
    ("key", "status"),
    [("revoked", "401"), ("elsewhere", "401"), ("only-other", "403")],
)
def test_a_key_the_policy_refuses_goes_to_falcon_for_its_reason(
    world: World, key: str, status: str
) -> None:
    hot, plain, answered = world.both("GET", "/small", bearer(world.keys[key]))
    assert not answered
    assert hot.status.startswith(status)
    same(hot, plain)
    # The narrow key still reads its own package the hot way.
    if key == "only-other":
        hot, plain, answered = world.both("GET", "/other", bearer(world.keys[key]))
        assert answered and hot.status.startswith("200")
        same(hot, plain)


def test_a_private_registry_refuses_anonymous_reads_the_long_way(world: World) -> None:
    world.services.config.set_feature(Feature.PRIVATE_REGISTRY, True)
    hot, plain, answered = world.both("GET", "/small")
    assert not answered and hot.status.startswith("401")
    same(hot, plain)
    hot, plain, answered = world.both("GET", "/small", bearer(world.keys["read"]))
    assert answered and hot.status.startswith("200")
    same(hot, plain)


def test_a_blocked_address_is_refused_by_falcon_and_counted_once(world: World) -> None:
    for ip in (HOT_IP, PLAIN_IP):
        world.services.abuse.block(Actor("admin"), ip, "test", None)
    hot, plain, answered = world.both("GET", "/small")
    assert not answered and hot.status.startswith("403")
    same(hot, plain)
    assert hot.counters[("blocked_requests", HOT_IP)] == 1


def test_the_debug_flag_sends_reads_through_falcon(world: World) -> None:
    world.services.config.set_feature(Feature.DEBUG, True)
    hot, plain, answered = world.both("GET", "/small", {"X-Request-Id": "abc"})
    assert not answered
    assert hot.headers["x-request-id"] == plain.headers["x-request-id"] == "abc"


def test_with_metrics_and_logging_off_both_paths_agree_and_log_nothing(world: World) -> None:
    world.services.config.set_feature(Feature.METRICS, False)
    world.services.config.set_feature(Feature.LOGGING, False)
    hot, plain, answered = world.both("GET", "/small")
    assert answered
    same(hot, plain)
    assert hot.log == [] and plain.log == []


def test_the_rate_limit_counts_each_hot_read_once_and_falcon_refuses_past_it(
    world: World,
) -> None:
    """LIMIT reads in a row: the same remaining count on both paths, then one 429 each
    (taken by the hot reads and handed over with the request: never counted twice)."""
    for i in range(LIMIT):
        hot, plain, answered = world.both("GET", "/small")
        assert answered
        assert hot.headers["x-ratelimit-remaining"] == str(LIMIT - 1 - i)
        same(hot, plain)
    hot, plain, answered = world.both("GET", "/small")
    assert not answered
    assert hot.status.startswith("429") and "retry-after" in hot.headers
    same(hot, plain)


def test_a_key_with_its_own_limit_is_refused_at_that_limit_on_both_paths(world: World) -> None:
    auth = bearer(world.keys["own-limit"])
    hot, plain, _ = world.both("GET", "/small", auth)
    same(hot, plain)
    # One key's bucket, 3 requests a window: the fourth is refused (falcon's 429).
    world.fresh_keys()
    for left in (2, 1, 0):
        ok = world.call(world.hot, "GET", "/small", auth, ip=HOT_IP)
        assert ok.status.startswith("200") and ok.headers["x-ratelimit-remaining"] == str(left)
        assert world.spy.answered[-1] is True
    refused = world.call(world.hot, "GET", "/small", auth, ip=HOT_IP)
    assert refused.status.startswith("429")
    assert world.spy.answered[-1] is False
    assert refused.headers["ratelimit-policy"] == '"default";q=3;w=900'


def test_the_monitor_counts_hot_reads_under_the_package_route(world: World) -> None:
    for _ in range(3):
        world.both("GET", "/small")
    world.both("GET", "/missing")
    text = world.call(world.plain, "GET", "/metrics", ip="127.0.0.1").body.decode()
    counts = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("r13_http_requests_total{") and 'route="/{package}"' in line
    }
    ok = [v for k, v in counts.items() if 'status="200"' in k and 'method="GET"' in k]
    missing = [v for k, v in counts.items() if 'status="404"' in k]
    assert ok == [6.0] and missing == [2.0], counts
    gauge = [line for line in text.splitlines() if line.startswith("r13_http_requests_in_flight ")]
    assert gauge and float(gauge[0].split()[1]) == 1.0  # the scrape itself


def test_a_changed_package_is_served_fresh_by_the_hot_reads(world: World) -> None:
    first, _, answered = world.both("GET", "/small")
    assert answered
    world.services.registry.put_package(
        PackageName.parse("small"), publish_body("small", "2.0.0"), actor=Actor("admin")
    )
    second, plain, answered = world.both("GET", "/small")
    assert answered
    same(second, plain)
    assert b'"2.0.0"' in second.body and second.headers["etag"] != first.headers["etag"]


def test_in_front_moves_the_hot_reads_before_the_wrappers(world: World) -> None:
    seen: list[str] = []
    hot = world.hot

    def wrapper(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(env["RAW_URI"])
        return hot(env, start_response)

    front = in_front(hot, wrapper)
    assert hot.hot is None  # the falcon app no longer tries them itself
    base = world.call(world.plain, "GET", "/small", ip=HOT_IP)
    statuses: list[str] = []
    out = front(environ("GET", "/small", {}, HOT_IP), lambda s, h, e=None: statuses.append(s))
    assert seen == [] and b"".join(out) == base.body and statuses == ["200 OK"]
    b"".join(front(environ("GET", "/-/ping", {}, HOT_IP), lambda s, h, e=None: statuses.append(s)))
    assert seen == ["/-/ping"] and statuses[-1].startswith("200")


def test_a_falcon_route_shadowing_a_package_name_stays_falcon_s(world: World) -> None:
    """``/metrics`` is a route: a package named ``metrics`` is not served there."""
    world.services.registry.put_package(
        PackageName.parse("metrics"), publish_body("metrics", "1.0.0"), actor=Actor("admin")
    )
    hot = world.call(world.hot, "GET", "/metrics", ip=HOT_IP)
    assert world.spy.answered[-1] is False
    assert hot.status.startswith("200") and hot.headers["content-type"].startswith("text/plain")


PATH_PART = st.text(
    alphabet=st.sampled_from("abcz019-._~%2fF@/:?#!*'()+,;=\\ "), min_size=0, max_size=14
)


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tail=PATH_PART,
    method=st.sampled_from(["GET", "HEAD"]),
    accept=st.sampled_from(["", ABBREV, "application/json"]),
)
def test_any_read_path_gets_one_answer_from_either_path(
    world: World, tail: str, method: str, accept: str
) -> None:
    """Whatever the path, the app with hot reads answers as the app without them."""
    raw = "/" + tail
    headers = {"Accept": accept} if accept else {}
    hot, plain, _ = world.both(method, raw, headers)
    # The limit is per address and this runs many examples: lift it between examples.
    world.services.limiter.reset("ip:" + HOT_IP)
    world.services.limiter.reset("ip:" + PLAIN_IP)
    same(hot, plain)


def test_a_tarball_s_etag_answers_304_on_both_paths(world: World) -> None:
    first, _, _ = world.both("GET", "/small/-/small-1.0.0.tgz")
    hot, plain, answered = world.both(
        "GET", "/small/-/small-1.0.0.tgz", {"If-None-Match": first.headers["etag"]}
    )
    assert answered and hot.status.startswith("304") and hot.body == b""
    same(hot, plain)


def test_a_download_is_counted_once_per_tarball_get(world: World) -> None:
    """The per-package download count (the dashboard's analytics) moves by one for each
    GET on either path, and not for a HEAD or a 304."""
    counted: list[str] = []
    for app in (world.hot, world.plain):
        sink = next(s[1] for s in app._sinks if isinstance(s[1], Packages))
        sink.on_download = counted.append
    world.both("GET", "/small/-/small-1.0.0.tgz")
    world.both("GET", "/big/-/big-1.0.0.tgz")
    world.both("HEAD", "/small/-/small-1.0.0.tgz")
    world.both("GET", "/small/-/small-1.0.0.tgz", {"If-None-Match": "*"})
    assert counted == ["small", "small", "big", "big"]


def test_behind_the_nginx_front_both_paths_answer_with_x_accel_redirect(tmp_path: Path) -> None:
    front = make_world(tmp_path, R13_ACCEL_REDIRECT="/_blobs/")
    try:
        for method in ("GET", "HEAD"):
            hot, plain, answered = front.both(method, "/big/-/big-1.0.0.tgz")
            assert answered
            assert hot.headers["x-accel-redirect"].startswith("/_blobs/")
            assert hot.headers["content-length"] == "0" and hot.body == b""
            same(hot, plain)
    finally:
        front.services.config.close()


def test_r13_hot_reads_0_sends_every_request_through_falcon(tmp_path: Path) -> None:
    services = open_services(Settings.from_env({"R13_DATA": str(tmp_path), "R13_HOT_READS": "0"}))
    try:
        app = create_app(services)
        assert app.hot is None
        inner = cast(Callable[..., Iterable[bytes]], app)
        assert in_front(app, inner) is inner
    finally:
        services.config.close()
    assert Settings.from_env({"R13_DATA": str(tmp_path)}).server.hot_reads is True
    with pytest.raises(ValueError, match="R13_HOT_READS"):
        Settings.from_env({"R13_DATA": str(tmp_path), "R13_HOT_READS": "maybe"})
