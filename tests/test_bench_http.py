"""The HTTP load harness against a tiny in-process fake registry (loopback only)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from array import array
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench import compare, load, scenarios, seeding
from bench import http as bh
from bench.drivers import choose_driver, wrk_script
from bench.drivers import load as drive

TOKEN = "test-token"


class FakeRegistry(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.docs: dict[str, dict[str, Any]] = {}
        self.tarballs: dict[str, bytes] = {}
        self.puts = 0
        self.gets = 0
        self.auth_gets = 0
        self.encodings: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.reply(401, b'{"error":"auth"}')
            return
        name = urllib.parse.unquote(self.path[1:])
        doc = json.loads(body)
        assert doc["name"] == name == doc["_id"]
        ((version, manifest),) = doc["versions"].items()
        ((filename, att),) = doc["_attachments"].items()
        data = base64.b64decode(att["data"])
        assert len(data) == att["length"]
        assert manifest["dist"]["shasum"] == hashlib.sha1(data).hexdigest()
        assert manifest["dist"]["integrity"] == seeding.integrity_of(data)
        assert filename == f"{name}-{version}.tgz"  # as libnpmpublish names it, scope included
        tar_path = f"/{name}/-/{filename}"
        with self.server.lock:
            self.server.puts += 1
            stored = self.server.docs.setdefault(
                name, {"_id": name, "name": name, "dist-tags": {}, "versions": {}}
            )
            if version in stored["versions"]:
                self.reply(409, b'{"error":"exists"}')
                return
            manifest["dist"]["tarball"] = self.server.url + tar_path
            stored["versions"][version] = manifest
            stored["dist-tags"].update(doc["dist-tags"])
            self.server.tarballs[tar_path] = data
        self.reply(201, b'{"ok":true}')

    def do_GET(self) -> None:
        path = urllib.parse.unquote(self.path)
        with self.server.lock:
            self.server.gets += 1
            if self.headers.get("Authorization"):
                self.server.auth_gets += 1
            encoding = self.headers.get("Accept-Encoding", "")
            self.server.encodings[encoding] = self.server.encodings.get(encoding, 0) + 1
            tgz = self.server.tarballs.get(path)
            doc = self.server.docs.get(path[1:])
            body = json.dumps(doc).encode() if doc else b""
        if tgz is not None:
            self.reply(200, tgz, "application/octet-stream")
        elif doc is not None:
            self.reply(200, body)
        else:
            self.reply(404, b'{"error":"not found"}')


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert load.percentile(values, 50) == 50
    assert load.percentile(values, 99) == 99
    assert load.percentile(values, 100) == 100
    assert load.percentile(values, 0) == 1
    assert load.percentile([7], 99) == 7
    assert load.percentile([], 50) == 0.0
    assert load.percentile([1, 2, 3, 4], 50) == 2
    res = load.LoadResult(count=4, latencies_us=array("q", [4000, 1000, 3000, 2000]))
    s = load.summarize(res, 2.0)
    assert (s["rps"], s["p50_ms"], s["p99_ms"], s["max_ms"]) == (2.0, 2.0, 4.0, 4.0)


def test_response_parser_framing() -> None:
    p = load.ResponseParser()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert p.feed(bytearray(head + b"hel")) == -1
    assert p.feed(bytearray(head + b"helloHTTP")) == len(head) + 5
    p.reset()
    chunked = b"HTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    assert p.feed(bytearray(chunked)) == -1
    full = chunked + b"2;x=1\r\nde\r\n0\r\n\r\n"
    assert p.feed(bytearray(full)) == len(full)
    assert p.status == 404
    p.reset()
    assert p.feed(bytearray(b"HTTP/1.1 304 NM\r\nETag: x\r\n\r\nHTTP/1.1")) == 28


def test_target_refuses_remote() -> None:
    assert load.parse_target("http://localhost:1/").url == "http://localhost:1"
    assert load.parse_target("http://[::1]:9/r").base_path == "/r"
    with pytest.raises(load.HarnessError):
        load.parse_target("http://10.1.2.3:4873")
    with pytest.raises(load.HarnessError):
        load.parse_target("https://127.0.0.1:4873")
    assert load.parse_target("http://10.1.2.3:4873", allow_remote=True).port == 4873


def test_tarball_is_a_real_npm_tarball() -> None:
    import io
    import tarfile

    tgz = seeding.make_tarball("@bench/x", "1.2.3")
    assert tgz == seeding.make_tarball("@bench/x", "1.2.3")  # deterministic
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["package/index.js", "package/package.json"]
        pj = tar.extractfile("package/package.json")
        assert pj is not None
        assert json.load(pj)["version"] == "1.2.3"
    assert seeding.packument_path("@bench/x") == "/@bench%2fx"


@pytest.mark.slow
def test_seed_and_scenarios(
    registry: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_json = tmp_path / "r.json"
    out_md = tmp_path / "r.md"
    asked: dict[str, set[str]] = {}  # scenario -> the Accept-Encoding its requests carry
    built = scenarios.scenario_requests

    def recording(opts: Any, seeded: Any, name: str) -> list[bytes]:
        reqs = built(opts, seeded, name)
        for r in reqs:
            for line in r.decode("latin-1").split("\r\n"):
                if line.startswith("Accept-Encoding: "):
                    asked.setdefault(name, set()).add(line.removeprefix("Accept-Encoding: "))
        return reqs

    monkeypatch.setattr(scenarios, "scenario_requests", recording)
    rc = bh.main(
        [
            "--url", registry.url, "--token", TOKEN, "--prefix", "t1",
            "--small", "5", "--big-versions", "7",
            # Bounded by counts; the duration is only a limit a healthy run never meets.
            "--requests", "30", "--duration", "600", "--warmup", "0",
            "--concurrency", "3", "--clients", "1",
            "--label", "fake", "--quiet",
            "--json", str(out_json), "--markdown", str(out_md),
        ]
    )  # fmt: skip
    assert rc == 0
    # 5 small + scoped + pub + 7 versions of big, then publish-scenario versions.
    pub = registry.docs["t1-pub"]["versions"]
    assert registry.puts == 5 + 2 + 7 + len(pub) - 1
    assert len(registry.docs["t1-big"]["versions"]) == 7
    assert "@bench/t1-scoped" in registry.docs
    report = json.loads(out_json.read_text())
    assert report["label"] == "fake"
    assert report["seed"]["publishes"] == 14
    scen = report["scenarios"]
    assert list(scen) == list(bh.ALL_SCENARIOS)
    for name, s in scen.items():
        # The loop checks its count between rounds of answers: up to 2 more on 3 connections.
        assert 30 <= s["requests"] <= (30 if name == "publish" else 32), name
        assert s["errors"] == 0, name
        assert s["p50_ms"] <= s["p99_ms"] <= s["max_ms"], name
        assert s["statuses"] == {"201" if name == "publish" else "200": s["requests"]}
    assert scen["publish"]["requests"] == len(pub) - 1
    # Every counted GET reached the server (in-flight ones at the deadline are dropped).
    counted = sum(s["requests"] for n, s in scen.items() if n != "publish")
    assert counted <= registry.gets
    assert registry.auth_gets >= scen["auth-full"]["requests"]
    # The compressed scenarios ask as npm does; the others ask for the uncompressed bytes.
    compressed = sum(scen[n]["requests"] for n in bh.COMPRESSED_SCENARIOS)
    plain = sum(s["requests"] for n, s in scen.items() if n not in bh.COMPRESSED_SCENARIOS)
    assert registry.encodings[load.NPM_ENCODING] >= compressed > 0
    assert registry.encodings["identity"] >= plain - scen["publish"]["requests"] > 0
    # ... and each scenario its own: npm's for the compressed ones, identity for the rest.
    assert asked == {
        n: {load.NPM_ENCODING} if n in bh.COMPRESSED_SCENARIOS else {"identity"}
        for n in scenarios.READ_SCENARIOS
    }
    md = out_md.read_text()
    assert "| scenario | req/s | p50 ms | p99 ms | errors | requests |" in md
    for name in bh.ALL_SCENARIOS:
        assert f"| {name} | " in md
    # Compare mode: ratio of a report to itself is 1.00.
    table = bh.compare_table(report, report)
    assert "| small-full |" in table and "| 1.00 |" in table


def test_errors_are_counted(registry: FakeRegistry) -> None:
    target = load.parse_target(registry.url)
    reqs = [load.encode_get(target, "/missing", load.FULL_ACCEPT, None)]
    spec = load.LoadSpec(target.host, target.port, reqs, 2, 600, 0.0, max_responses=10)
    res = load.run_parallel([spec, spec])  # two worker processes
    assert 20 <= res.count <= 22
    assert res.errors == res.count == res.statuses[404]
    assert len(res.latencies_us) == res.count


def test_seed_failure_is_reported(registry: FakeRegistry) -> None:
    target = load.parse_target(registry.url)
    names = seeding.Names("bad", 2)
    with pytest.raises(load.HarnessError, match="HTTP 401"):
        seeding.seed(target, "wrong-token", names, 1)


def test_without_wrk_the_python_driver_runs_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    wrk = choose_driver("wrk")
    assert (wrk.name, wrk.requested) == ("python", "wrk") and "not installed" in wrk.note
    assert choose_driver("auto").name == "python"
    assert choose_driver("python").as_dict() == {
        "driver": "python", "driver_requested": "python", "driver_note": ""
    }  # fmt: skip
    with pytest.raises(load.HarnessError):
        choose_driver("ab")


def test_a_counted_run_never_uses_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.drivers.wrk_available", lambda: True)
    assert choose_driver("wrk").name == "wrk"
    counted = choose_driver("wrk", counted=True)
    assert counted.name == "python" and "number of requests" in counted.note


def test_the_report_records_the_driver_that_ran(
    registry: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "probe.json"
    rc = bh.main(["--url", registry.url, "--probe", "/missing", "--driver", "wrk",
                  "--requests", "5", "--duration", "600", "--warmup", "0",
                  "--concurrency", "1", "--clients", "1", "--json", str(out)])  # fmt: skip
    assert rc == 0
    report = json.loads(out.read_text())
    params = report["params"]
    assert (params["driver"], params["driver_requested"]) == ("python", "wrk")
    assert "not installed" in params["driver_note"]
    (result,) = report["scenarios"].values()
    assert result["driver"] == "python" and result["requests"] == 5
    assert "driver python (wrk is not installed" in bh.markdown_table(report)


def test_drive_spreads_a_response_cap_over_the_client_processes(registry: FakeRegistry) -> None:
    target = load.parse_target(registry.url)
    reqs = [load.encode_get(target, "/missing", load.FULL_ACCEPT, None)]
    out = drive(choose_driver("python"), target, reqs, duration=600, warmup=0,
                concurrency=4, clients=3, max_responses=2)  # fmt: skip
    # Two processes with one response each (a third would have no share and no bound).
    assert 2 <= out["requests"] <= 4 and out["driver"] == "python"


def test_rounds_combine_into_medians_per_scenario() -> None:
    def report(rps: float, p50: float, started: str) -> dict[str, Any]:
        run = {"rps": rps, "p50_ms": p50, "p99_ms": p50 * 3, "max_ms": p50 * 4,
               "requests": 10, "errors": 0, "driver": "python"}  # fmt: skip
        seed = {"publishes": 1, "seconds": 0.1}
        return {"label": "r13", "url": "u", "started": started, "params": {"duration": 1.0},
                "seed": seed, "scenarios": {"tarball": run}}  # fmt: skip

    one = compare.combine([report(100, 2, "a")])
    assert one["scenarios"]["tarball"]["rps"] == 100 and "rounds" not in one["params"]
    three = compare.combine([report(100, 2, "a"), report(300, 1, "b"), report(200, 9, "c")])
    s = three["scenarios"]["tarball"]
    assert (s["rps"], s["p50_ms"], s["p99_ms"], s["requests"]) == (200, 2, 6, 30)
    assert s["rps_runs"] == [100, 300, 200] and three["rounds"] == ["a", "b", "c"]
    assert "(medians of 3 rounds)" in bh.markdown_table(
        {**three, "params": {**three["params"], "concurrency": 1, "clients": 1,
                             "driver": "python"}})  # fmt: skip


def test_static_wsgi_serves_the_rendered_files_by_accept_and_path(tmp_path: Path) -> None:
    """bench/static_wsgi.py (the stack's ceiling in bench.compare) answers what nginx-static
    answers from the same docroot: the variant by Accept, scoped names, tarballs, 404."""
    from bench import static_wsgi

    for rel, body in {
        "full/small.json": b'{"v":"full"}',
        "abbrev/small.json": b'{"v":"abbrev"}',
        "full/@s/pkg.json": b'{"v":"scoped"}',
        "small/-/small-1.0.0.tgz": b"\x1f\x8bTGZ",
    }.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    app = static_wsgi.make_app(static_wsgi.load(tmp_path))

    def get(path: str, accept: str = "*/*") -> tuple[str, dict[str, str], bytes]:
        seen: list[tuple[str, list[tuple[str, str]]]] = []
        body = b"".join(
            app({"PATH_INFO": path, "HTTP_ACCEPT": accept}, lambda s, h: seen.append((s, h)))
        )
        status, headers = seen[0]
        return status, dict(headers), body

    assert get("/small")[2] == b'{"v":"full"}'
    assert get("/small", static_wsgi.ABBREVIATED)[2] == b'{"v":"abbrev"}'
    assert get("/@s/pkg")[2] == b'{"v":"scoped"}'
    status, headers, body = get("/small/-/small-1.0.0.tgz")
    assert (status, headers["Content-Type"], body) == ("200 OK", "application/octet-stream",
                                                       b"\x1f\x8bTGZ")  # fmt: skip
    assert headers["Content-Length"] == "5"
    assert get("/missing")[0].startswith("404")
    assert get("/-/ping")[:1] == ("200 OK",)


def test_wrk_sends_the_headers_the_python_engine_sends() -> None:
    target = load.parse_target("http://127.0.0.1:4873")
    npm = wrk_script([load.encode_get(target, "/a", load.FULL_ACCEPT, "t", load.NPM_ENCODING)])
    assert 'wrk.headers["Accept-Encoding"] = "gzip,deflate"' in npm
    assert 'wrk.headers["Authorization"] = "Bearer t"' in npm
    assert f'wrk.headers["Accept"] = {json.dumps(load.FULL_ACCEPT)}' in npm
    plain = wrk_script([load.encode_get(target, "/a", "*/*", None)])
    assert 'wrk.headers["Accept-Encoding"] = "identity"' in plain
    assert 'wrk.headers["Accept"] = "*/*"' in plain
    assert "Authorization" not in plain
