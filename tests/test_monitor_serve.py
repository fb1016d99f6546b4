"""The monitor in a real gunicorn with two workers (tests/monitor_app.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from r13core.monitor import MonitorView
from tests.test_serve import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, url: str, data: Path, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.data, self.proc = url, data, proc
        self.requests = 0  # requests this test completed (each one counted by r13)

    def get(self, path: str) -> tuple[int, Any, dict[str, str]]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as resp:
                raw = resp.read()
                status, headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
            headers = {k.lower(): v for k, v in exc.headers.items()}
        self.requests += 1
        ctype = headers.get("content-type", "")
        return status, json.loads(raw) if "json" in ctype else raw.decode(), headers

    def json(self, path: str) -> Any:
        status, body, _ = self.get(path)
        assert status == 200, body
        return body

    def ping_count(self) -> float:
        _, text, _ = self.get("/metrics")
        for fam in text_string_to_metric_families(text):
            if fam.name == "r13_http_requests":
                for s in fam.samples:
                    if s.labels["route"] == "/-/ping" and s.labels["status"] == "200":
                        return float(s.value)
        return 0.0


@contextmanager
def serve(tmp_path: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    data = tmp_path / "var"
    full = {
        **os.environ,
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "R13_DATA": str(data),
        "R13_WORKERS": "2",
        "R13_FEATURE_DEBUG": "1",
        "R13_FEATURE_PRIVATE_REGISTRY": "0",
        "METRICS_COLLECTION_INTERVAL": "100",
        **env,
    }
    cmd = [sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf"]
    proc = subprocess.Popen(
        [*cmd, "tests.monitor_app:application"],
        env=full,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(f"http://127.0.0.1:{port}", data, proc)
    deadline = time.monotonic() + 120  # generous: a loaded machine starts gunicorn slowly
    while True:
        try:
            server.get("/-/ping")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.1)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(cond: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_counters_are_exact_across_two_workers(tmp_path: Path) -> None:
    with serve(tmp_path) as srv:
        before = srv.ping_count()
        workers = set()
        for _ in range(300):  # a fresh connection each: both workers answer
            _, _, headers = srv.get("/-/ping")
            workers.add(headers["x-r13-worker"])
        assert len(workers) == 2
        assert srv.ping_count() == before + 300
        # The server is quiet now: wait (reading the sampler's file, not asking over HTTP,
        # which would count) for a sample taken after the last request: it counts them all.
        done = srv.requests
        view = MonitorView(srv.data)

        def counted_all() -> dict[str, Any] | None:
            return next((s for s in view.history() if s["requests_total"] >= done), None)

        latest = wait_for(counted_all)
        assert latest["requests_total"] == done
        assert latest["workers"] == 2 and latest["processes"] >= 3
        summary = srv.json("/_api/performance/summary")
        assert summary["totals"]["requests_total"] >= done
        assert summary["uptime_s"] > 0


def test_the_history_survives_the_death_of_the_sampling_worker(tmp_path: Path) -> None:
    with serve(tmp_path) as srv:
        first = wait_for(lambda: srv.get("/_api/performance/metrics")[1].get("seq", 0) >= 3 and
                         srv.json("/_api/performance/metrics"))  # fmt: skip
        victim = first["sampler_pid"]
        pings = srv.ping_count()
        os.kill(victim, signal.SIGKILL)

        def taken_over() -> Any:
            status, body, _ = srv.get("/_api/performance/metrics")
            ok = status == 200 and body["sampler_pid"] != victim and body["seq"] > first["seq"] + 3
            return body if ok else None

        after = wait_for(taken_over)
        history = srv.json("/_api/performance/history")["samples"]
        seqs = [s["seq"] for s in history]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert {victim, after["sampler_pid"]} <= {s["sampler_pid"] for s in history}
        assert seqs[0] <= first["seq"]  # one history, not a new one
        assert srv.ping_count() == pings  # counters live on in shared memory


def _load_until(srv: Server, path: str, threads: int, done: Callable[[], Any]) -> Any:
    """GET ``path`` from ``threads`` threads until ``done()`` returns something; return it.

    The load lasts as long as the server needs to notice it, however slow the machine.
    """
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            srv.get(path)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    try:
        return wait_for(done)
    finally:
        stop.set()
        for t in pool:
            t.join()


def _alert(srv: Server, rule: str, state: str) -> dict[str, Any] | None:
    for a in srv.json("/_api/performance/alerts")["recent"]:
        if a["rule"] == rule and a["state"] == state:
            return dict(a)
    return None


def _all_cleared(srv: Server, rule: str) -> list[dict[str, Any]] | None:
    log = [a for a in srv.json("/_api/performance/alerts")["recent"] if a["rule"] == rule]
    return log if log and all(a["state"] == "cleared" for a in log) else None


def _events(srv: Server, rule: str) -> list[str]:
    lines = (srv.data / "run" / "events.jsonl").read_text().splitlines()
    return [e["data"]["event"] for e in map(json.loads, lines) if e["data"]["rule"] == rule]


def test_slow_requests_raise_and_then_clear_a_latency_alert(tmp_path: Path) -> None:
    env = {"ALERT_LATENCY_THRESHOLD": "50", "R13_ALERT_SAMPLES": "2"}
    with serve(tmp_path, **env) as srv:
        assert _alert(srv, "latency", "active") is None
        raised = _load_until(
            srv, "/_test/slow?ms=150", 4,
            lambda: _alert(srv, "latency", "active") or _alert(srv, "latency", "cleared"),
        )  # fmt: skip
        assert raised["peak"] > 50 and raised["threshold"] == 50
        # Back to fast requests only (this polling): the alert clears.
        log = wait_for(lambda: _all_cleared(srv, "latency"))
        assert raised["id"] in {a["id"] for a in log}
        assert all(a["ended"] > a["started"] for a in log)
        # Each raise is published once and cleared once.
        assert _events(srv, "latency") == ["raised", "cleared"] * len(log)


def test_a_cpu_burner_raises_and_then_clears_a_cpu_alert(tmp_path: Path) -> None:
    env = {
        "ALERT_CPU_THRESHOLD": "15",
        "R13_ALERT_SAMPLES": "2",
        "ALERT_LATENCY_THRESHOLD": "60000",
    }
    with serve(tmp_path, **env) as srv:
        raised = _load_until(
            srv, "/_test/burn?ms=500", 2,
            lambda: _alert(srv, "cpu", "active") or _alert(srv, "cpu", "cleared"),
        )  # fmt: skip
        assert raised["peak"] > 15
        log = wait_for(lambda: _all_cleared(srv, "cpu"))
        assert raised["id"] in {a["id"] for a in log}
        assert _events(srv, "cpu") == ["raised", "cleared"] * len(log)
        _, text, _ = srv.get("/metrics")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"r13_alert_active", "r13_process_cpu_ratio"} <= names
