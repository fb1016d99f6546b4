"""The monitor in a real gunicorn with two workers (tests/monitor_app.py)."""

from __future__ import annotations

import json
import os
import shutil
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

from r13core.events import EventLog
from r13core.monitor import MonitorView
from tests.ports import NeverAnswered, free_port, wait_until_serving
from tests.workers import until_answered_by

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
    for _ in range(5):  # another process may take the port before gunicorn binds it
        server = _start(tmp_path, env)
        if server is not None:
            break
    else:
        raise RuntimeError("every port tried was taken")
    try:
        yield server
    finally:
        proc = server.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(tmp_path: Path, env: dict[str, str]) -> Server | None:
    """gunicorn over tests/monitor_app.py on a fresh data dir, once it answers; None if
    its port was taken."""
    port = free_port()
    data = tmp_path / "var"
    shutil.rmtree(data, ignore_errors=True)  # left by a start whose port was taken
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
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:  # a file: a pipe nobody reads would block the workers
        proc = subprocess.Popen(
            [*cmd, "tests.monitor_app:application"],
            env=full,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", data, proc)
    try:
        if not wait_until_serving(proc, port, log, lambda: server.get("/-/ping")[0] > 0):
            return None
    except NeverAnswered:
        proc.kill()
        proc.wait()
        raise
    return server


def worker_of(answer: tuple[int, Any, dict[str, str]]) -> str:
    """The pid of the worker that sent ``answer`` (DEBUG is on)."""
    return answer[2].get("x-r13-worker", "")


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
        # A fresh connection each, until both workers have answered (and 300 at least).
        pings = until_answered_by(2, lambda: srv.get("/-/ping"), worker_of, at_least=300)
        assert [status for status, _, _ in pings] == [200] * len(pings)
        assert srv.ping_count() == before + len(pings)
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
    # Ten minutes of samples: the first ones are still in the history when it is read,
    # however long a loaded machine takes to get there (60 would be six seconds).
    with serve(tmp_path, METRICS_HISTORY_SIZE="6000") as srv:
        first = wait_for(lambda: srv.get("/_api/performance/metrics")[1].get("seq", 0) >= 3 and
                         srv.json("/_api/performance/metrics"))  # fmt: skip
        victim = first["sampler_pid"]
        # The counters outlive a worker while another process holds their segment: see
        # that the other worker is up (it opened the counters before its first answer),
        # however long it took to start. Killed alone, the victim would take them along.
        until_answered_by(2, lambda: srv.get("/_api/performance/metrics"), worker_of)
        pings = srv.ping_count()
        assert pings >= 1  # the start-up ping
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
    # The log also carries every sample (topic "metrics") for the live channel.
    alerts = [e for e in EventLog(srv.data).read_after(0) if e.topic == "alert"]
    return [e.data["event"] for e in alerts if e.data["rule"] == rule]


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
        # Low: on a machine busy with other work the burner gets only a share of the CPU.
        "ALERT_CPU_THRESHOLD": "8",
        "R13_ALERT_SAMPLES": "2",
        "ALERT_LATENCY_THRESHOLD": "60000",
    }
    with serve(tmp_path, **env) as srv:
        raised = _load_until(
            srv, "/_test/burn?ms=500", 2,
            lambda: _alert(srv, "cpu", "active") or _alert(srv, "cpu", "cleared"),
        )  # fmt: skip
        assert raised["peak"] > 8
        log = wait_for(lambda: _all_cleared(srv, "cpu"))
        assert raised["id"] in {a["id"] for a in log}
        assert _events(srv, "cpu") == ["raised", "cleared"] * len(log)
        _, text, _ = srv.get("/metrics")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"r13_alert_active", "r13_process_cpu_ratio"} <= names
