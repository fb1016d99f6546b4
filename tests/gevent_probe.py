"""Scenarios run inside a gevent-patched process, for tests/test_gevent_safety.py.

``python -m tests.gevent_probe SCENARIO DATA_DIR`` patches the process as
gunicorn's gevent worker does (``monkey.patch_all()`` before anything else),
runs one scenario and prints one JSON object. Nothing here is timed: each
scenario waits for conditions (bounded by generous deadlines) and reports what
happened, and the test asserts on that.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import contextlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402

from r13core.audit import Actor  # noqa: E402
from r13core.hooks import Deliverer  # noqa: E402
from r13core.keys import Permission  # noqa: E402
from r13core.locks import InstanceLock, LeaderJob  # noqa: E402
from r13core.names import PackageName  # noqa: E402
from r13core.services import open_services  # noqa: E402
from r13core.settings import Settings  # noqa: E402
from r13core.storage.blobs import FileBlobStore  # noqa: E402
from r13core.storage.sqlite import SQLiteStorage  # noqa: E402
from r13core.usage import UsageRecorder  # noqa: E402
from tests.e2e.publish_body import publish_body, tarball  # noqa: E402

GENEROUS = 120.0  # seconds: only a broken (blocked) worker ever reaches it


def _wait_for(condition: Callable[[], bool]) -> bool:
    """Yield to the hub until ``condition`` holds (True) or the generous deadline (False)."""
    deadline = time.monotonic() + GENEROUS
    while not condition():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.005)
    return True


class Ticker:
    """A greenlet that counts its turns: it advances only while the hub is free."""

    def __init__(self) -> None:
        self.ticks = 0
        self._g = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(0.002)
            self.ticks += 1

    def stop(self) -> None:
        self._g.kill()


def _probe_table(storage: SQLiteStorage) -> None:
    with storage._transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (who TEXT, step INTEGER)")


def _plain_begin(conn: Any) -> None:
    conn.execute("BEGIN IMMEDIATE")  # SQLite's busy handler: a wait in C


def two_writers(data: Path, bare: bool) -> dict[str, Any]:
    """Two greenlets write at once; the first yields inside its transaction (the bug the
    write gate survives). ``bare``: the gate and the cooperative BEGIN taken away."""
    storage = SQLiteStorage(data / "db.sqlite3", busy_timeout_ms=2000)
    _probe_table(storage)
    if bare:
        storage._gate = contextlib.nullcontext()
        storage._begin_cooperatively = _plain_begin  # type: ignore[method-assign]
    errors: list[str] = []
    inside = gevent.event.Event()

    def first() -> None:
        try:
            with storage._transaction() as conn:
                conn.execute("INSERT INTO probe VALUES ('first', 1)")
                inside.set()
                gevent.sleep(0.05)  # a yield inside the transaction
                conn.execute("INSERT INTO probe VALUES ('first', 2)")
        except Exception as exc:
            errors.append(f"first: {exc}")

    def second() -> None:
        inside.wait()
        try:
            with storage._transaction() as conn:
                conn.execute("INSERT INTO probe VALUES ('second', 1)")
        except Exception as exc:
            errors.append(f"second: {exc}")

    gevent.joinall([gevent.spawn(first), gevent.spawn(second)], timeout=GENEROUS)
    rows = storage._conn().execute("SELECT who, step FROM probe ORDER BY rowid").fetchall()
    return {"errors": errors, "rows": [list(r) for r in rows]}


HOLD_SQLITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO probe VALUES ('holder', 1)")
print("held", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""

HOLD_FLOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def _held_elsewhere(script: str, path: Path) -> Iterator[Callable[[], None]]:
    """Another process holds a lock on ``path`` until the returned release() is called."""
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"

    def release() -> None:
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()

    try:
        yield release
    finally:
        with contextlib.suppress(OSError):
            release()
        holder.wait(GENEROUS)


def _wait_behind(hold: Callable[[], Any], lock_script: str, path: Path) -> dict[str, Any]:
    """``hold()`` in a greenlet while another process holds the lock; does the hub run?"""
    done: list[str] = []

    def waiter() -> None:
        try:
            hold()
            done.append("ok")
        except Exception as exc:
            done.append(f"error: {exc}")

    with _held_elsewhere(lock_script, path) as release:
        ticker = Ticker()
        g = gevent.spawn(waiter)
        # While the other process holds the lock, the waiter waits and the hub runs others.
        ran = _wait_for(lambda: ticker.ticks >= 50 or bool(done))
        result = {"ticks_while_held": ticker.ticks, "done_while_held": list(done), "ran": ran}
        release()
        g.join(GENEROUS)
        ticker.stop()
    result["done"] = done
    return result


def sqlite_other_process(data: Path) -> dict[str, Any]:
    """A write waits for another process's write transaction on the hub."""
    storage = SQLiteStorage(data / "db.sqlite3")
    _probe_table(storage)

    def write() -> None:
        with storage._transaction() as conn:
            conn.execute("INSERT INTO probe VALUES ('waiter', 1)")

    result = _wait_behind(write, HOLD_SQLITE, storage.path)
    rows = storage._conn().execute("SELECT who FROM probe ORDER BY rowid").fetchall()
    result["rows"] = [r[0] for r in rows]
    return result


def read_while_a_writer_waits(data: Path) -> dict[str, Any]:
    """A packument read whose render is not cached yet (it saves one), in one greenlet,
    while another greenlet of the same worker waits in its cooperative ``BEGIN IMMEDIATE``
    for another process's writer: the read must neither fail ("database is locked") nor
    wait in SQLite's busy handler (which stops the hub)."""
    services = open_services(Settings.from_env({"R13_DATA": str(data)}))
    storage = services.storage
    assert isinstance(storage, SQLiteStorage)
    # A short busy timeout: a read that waits in C gives up (and fails) within the run.
    storage._busy_timeout_ms = 3000
    storage._conn().execute("PRAGMA busy_timeout = 3000")
    _probe_table(storage)
    name = PackageName.parse("@probe/read")
    body = publish_body(str(name), "1.0.0", tarball(str(name), "1.0.0"))
    services.registry.put_package(name, body, actor=Actor.cli())
    with storage._transaction() as conn:
        conn.execute("DELETE FROM renders")  # the read renders and saves afresh
    reads: list[str] = []
    writes: list[str] = []

    def writer() -> None:
        try:
            with storage._transaction() as conn:
                conn.execute("INSERT INTO probe VALUES ('waiter', 1)")
            writes.append("ok")
        except Exception as exc:
            writes.append(f"error: {exc}")

    def reader() -> None:
        try:
            rendered = services.registry.packument(name, abbreviated=False)
            reads.append(json.loads(bytes(rendered.body))["name"])
        except Exception as exc:
            reads.append(f"error: {type(exc).__name__}: {exc}")

    with _held_elsewhere(HOLD_SQLITE, storage.path) as release:
        ticker = Ticker()
        w = gevent.spawn(writer)
        # The writer holds the gate and sleeps between its BEGIN attempts.
        waiting = _wait_for(lambda: storage.writer is not None)
        # What any other greenlet's statement meets on the shared connection meanwhile.
        busy_timeout_seen = storage.pragma("busy_timeout")
        r = gevent.spawn(reader)
        before = ticker.ticks
        ran = _wait_for(lambda: ticker.ticks >= before + 50 or bool(reads))
        result: dict[str, Any] = {
            "waiting": waiting,
            "busy_timeout_seen": busy_timeout_seen,
            "ran": ran,
            "ticks_while_held": ticker.ticks - before,
            "reads_while_held": list(reads),
        }
        release()
        gevent.joinall([w, r], timeout=GENEROUS)
        ticker.stop()
    rows = storage._conn().execute("SELECT name, kind FROM renders ORDER BY kind").fetchall()
    result.update(reads=reads, writes=writes, renders=[list(row) for row in rows])
    return result


def blob_lock_other_process(data: Path) -> dict[str, Any]:
    """A publish's hold on the blob store waits for another process's sweep on the hub."""
    services = open_services(Settings.from_env({"R13_DATA": str(data)}))
    blobs = services.registry.blobs
    assert isinstance(blobs, FileBlobStore)
    lock_path = blobs._lock_path

    def hold() -> None:
        with blobs.hold():
            pass

    return _wait_behind(hold, HOLD_FLOCK, lock_path)


def instance_lock_other_process(data: Path) -> dict[str, Any]:
    """A worker's shared instance lock waits for `r13 serve`'s exclusive hold on the hub."""
    lock = InstanceLock(data)
    result = _wait_behind(lock.shared, HOLD_FLOCK, lock.path)
    result["held"] = lock.held
    lock.release()
    return result


class _Job(LeaderJob):
    def __init__(self, path: Path) -> None:
        super().__init__(path, name="probe-leader", poll=0.01)
        self.turns = 0

    def lead(self, stop: threading.Event) -> None:
        while not stop.wait(0.005):
            self.turns += 1


def leader_elsewhere(data: Path) -> dict[str, Any]:
    """A leader election while another process leads: the hub runs; then this one leads."""
    job = _Job(data / "probe.lock")
    with _held_elsewhere(HOLD_FLOCK, job._leader.path) as release:
        ticker = Ticker()
        job.start()
        ran = _wait_for(lambda: ticker.ticks >= 50)
        result: dict[str, Any] = {"ran": ran, "ticks_while_held": ticker.ticks}
        result["led_while_held"] = job.leading
        release()
        result["leads_after"] = _wait_for(lambda: job.leading and job.turns >= 3)
        ticker.stop()
    job.stop()
    result["leading_after_stop"] = job.leading
    return result


class SwitchesInsideWrites:
    """While entered, records every greenlet switch (and how many) away from a greenlet
    that is inside a write transaction of ``storage``: none may happen."""

    def __init__(self, storage: SQLiteStorage) -> None:
        self.storage = storage
        self.violations: list[str] = []
        self.switches = 0
        self._previous: Any = None

    def _trace(self, event: str, args: Any) -> None:
        if event in ("switch", "throw"):
            origin, _target = args
            self.switches += 1
            writer = self.storage.writer
            if writer is not None and id(origin) == writer:
                self.violations.append(repr(origin))

    def __enter__(self) -> SwitchesInsideWrites:
        self._previous = greenlet.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        greenlet.settrace(self._previous)


def writes_never_yield(data: Path, yield_inside: bool) -> dict[str, Any]:
    """Publishes, keys, usage counts, audit and config changes from several greenlets at
    once, under a tracer that records every switch away from a greenlet that is inside a
    write transaction. ``yield_inside``: one extra write that yields (the tracer's control)."""
    env = {"R13_DATA": str(data), "R13_HOOKS_ALLOW_PRIVATE": "1", "R13_HOOKS_RETRY_BASE": "1"}
    services = open_services(Settings.from_env(env))
    storage = services.storage
    assert isinstance(storage, SQLiteStorage)
    tracer = SwitchesInsideWrites(storage)
    # A webhook on every probe package: each publish queues a delivery in its transaction,
    # and a delivery worker claims, sends (to a closed port) and records meanwhile.
    services.hooks.add(Actor.cli(), owner="cli", kind="scope", name="@probe",
                       endpoint="http://127.0.0.1:9/hook", secret="s")  # fmt: skip
    deliverer = Deliverer(storage, services.settings.hooks)

    def deliveries() -> None:
        for _ in range(8):
            deliverer.run_once()
            gevent.sleep(0)

    def publisher(who: str) -> None:
        for i in range(4):
            name = f"@probe/{who}-{i}"
            body = publish_body(name, "1.0.0", tarball(name, "1.0.0"))
            services.registry.put_package(PackageName.parse(name), body, actor=Actor.cli())
            gevent.sleep(0)

    def identity(who: str) -> None:
        for i in range(4):
            services.identity.create_key(Actor.cli(), f"{who}-{i}", Permission.READ, 1)
            gevent.sleep(0)

    recorder = UsageRecorder(storage)

    def usage_and_config() -> None:
        for i in range(4):
            recorder.record("download", f"@probe/g0-{i}")
            recorder.flush()
            services.config_changes.set_feature(Actor.cli(), "DEBUG", i % 2 == 0)
            gevent.sleep(0)

    def yielder() -> None:
        with storage._transaction() as conn:
            conn.execute("SELECT 1")
            gevent.sleep(0)

    jobs = [publisher, publisher, identity, identity]
    with tracer:
        greenlets = [gevent.spawn(job, f"g{n}") for n, job in enumerate(jobs)]
        greenlets.append(gevent.spawn(usage_and_config))
        greenlets.append(gevent.spawn(deliveries))
        if yield_inside:
            greenlets.append(gevent.spawn(yielder))
        gevent.joinall(greenlets, timeout=GENEROUS, raise_error=True)
    packages = sum(1 for _ in storage.packages())
    chain = services.audit.verify()
    return {
        "audit_events": chain.checked,
        "audit_broken_at": chain.broken_at,
        "violations": tracer.violations,
        "switches": tracer.switches,
        "packages": packages,
        "hook_deliveries": sum(storage.queue_counts().values()),
    }


def uplink_never_yields(data: Path) -> dict[str, Any]:
    """Greenlets missing the same upstream packages and tarballs at once, under the switch
    tracer, while the upstream holds its answers: the worker's hub stays free (a ticker
    advances), no greenlet yields inside a transaction, one upstream request per thing."""
    from tests.uplink_fakes import FaultyUpstream

    upstream = FaultyUpstream().start()
    names = ["alpha", "beta", "@s/gamma"]
    for name in names:
        upstream.add(name, "1.0.0")
    env = {"R13_DATA": str(data), "R13_UPLINK_URL": upstream.url}
    services = open_services(Settings.from_env(env))
    services.config_changes.set_feature(Actor.cli(), "PROXY_MODE", True)
    storage = services.storage
    assert isinstance(storage, SQLiteStorage)
    tracer = SwitchesInsideWrites(storage)

    got: list[str] = []

    def client(name: str) -> None:
        package = PackageName.parse(name)
        services.registry.packument(package, abbreviated=True)
        blob = services.registry.tarball(package, package.tarball_file("1.0.0"))
        got.append(f"{name}:{blob.size > 0}")

    ticker = Ticker()
    upstream.gate.clear()
    try:
        with tracer:
            greenlets = [gevent.spawn(client, n) for n in names for _ in range(3)]
            held = _wait_for(lambda: upstream.count("/alpha") >= 1)
            before = ticker.ticks
            gevent.sleep(0.2)  # the upstream holds every answer meanwhile
            ticks_while_waiting = ticker.ticks - before
            upstream.gate.set()
            gevent.joinall(greenlets, timeout=GENEROUS, raise_error=True)
    finally:
        ticker.stop()
        upstream.stop()
    return {
        "held": held,
        "ticks_while_waiting": ticks_while_waiting,
        "violations": tracer.violations,
        "switches": tracer.switches,
        "got": sorted(got),
        "upstream_requests": dict(upstream.counts),
    }


def main() -> None:
    scenario, data = sys.argv[1], Path(sys.argv[2])
    data.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "two_writers": lambda: two_writers(data, bare=False),
        "two_writers_bare": lambda: two_writers(data, bare=True),
        "sqlite_other_process": lambda: sqlite_other_process(data),
        "read_while_a_writer_waits": lambda: read_while_a_writer_waits(data),
        "blob_lock_other_process": lambda: blob_lock_other_process(data),
        "instance_lock_other_process": lambda: instance_lock_other_process(data),
        "leader_elsewhere": lambda: leader_elsewhere(data),
        "writes_never_yield": lambda: writes_never_yield(data, yield_inside=False),
        "writes_yield_control": lambda: writes_never_yield(data, yield_inside=True),
        "uplink_never_yields": lambda: uplink_never_yields(data),
    }
    result = runs[scenario]()
    result["patched"] = monkey.is_module_patched("threading")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
