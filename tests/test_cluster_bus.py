"""The cluster's bus between nodes over a real PostgreSQL (r13core/cluster/), in process.

Two "nodes" are two data dirs with their own shared-memory record and events log,
over one database (the ``pg_url`` fixture): the record's row orders changes from
both, a listener brings one node what the other changed, and after losing its
connection it resyncs what NOTIFY never replays. The multi-node tests with real
servers are tests/e2e/test_e2e_cluster.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from r13core.audit import Actor
from r13core.cluster.database import ClusterDB
from r13core.cluster.events import ClusterEventLog
from r13core.cluster.heartbeat import Heartbeat, cluster_view
from r13core.cluster.listener import ClusterListener
from r13core.cluster.node import node_id
from r13core.cluster.ratelimit import ClusterRateLimiter
from r13core.cluster.record import SharedRecord
from r13core.cluster.schema import ensure_schema
from r13core.config import Config13, ConfigStore, Feature
from r13core.config_changes import _feature_edit, _field_edit
from r13core.errors import InvalidValue
from r13core.events import EventLog
from r13core.ratelimit import (
    PACK_SECOND,
    packed_allowed,
    packed_remaining,
    packed_retry_after_seconds,
)
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.signals import FileChangeSignal
from tests.pgserver import PostgresServer


def wait_for(what: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("condition never came true")
        time.sleep(0.01)


@dataclass
class Signal:
    """A storage signal of a cluster as the listener sees it: its node-local counter."""

    local: FileChangeSignal


@dataclass(eq=False)
class Node:
    name: str
    data: Path
    db: ClusterDB
    store: ConfigStore
    record: SharedRecord
    events: ClusterEventLog
    auth: Signal

    def listener(self) -> ClusterListener:
        return ClusterListener(
            self.db,
            self.data,
            self.name,
            events=self.events,
            record=self.record,
            signals=lambda: {"auth_changes": self.auth},
            retry=0.05,
            poll=0.05,
        )


@pytest.fixture(scope="module")
def database(pg_server: PostgresServer) -> Iterator[str]:
    """One database for the module, with the cluster's tables (emptied for each test)."""
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_schema(conn)
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def pg_url(database: str) -> str:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("TRUNCATE r13_record, r13_events, r13_nodes, r13_rate_limits")
        conn.execute("ALTER SEQUENCE r13_events_seq RESTART")
    return database


@pytest.fixture
def nodes(pg_url: str, tmp_path: Path) -> Iterator[list[Node]]:
    made = []
    for name in ("a", "b"):
        data = tmp_path / name
        data.mkdir(mode=0o700)
        db = ClusterDB(pg_url)
        store = ConfigStore(data)
        made.append(
            Node(
                name,
                data,
                db,
                store,
                SharedRecord(db, store, data),
                ClusterEventLog(data, db, name),
                Signal(FileChangeSignal(data / "authgen")),
            )
        )
    yield made
    for node in made:
        node.db.close()
        node.store.close()


def test_the_first_node_seeds_the_record_and_the_next_one_takes_it(nodes: list[Node]) -> None:
    a, b = nodes
    a.store.set_field("rows", 40)
    assert a.record.load().rows == 40
    assert b.store.read().rows == 24
    assert b.record.load().rows == 40  # the database's, not its own
    assert b.record.applied_version() == a.record.applied_version() == 1


def test_concurrent_changes_on_two_nodes_are_ordered_by_the_database_and_lose_no_bit(
    nodes: list[Node],
) -> None:
    a, b = nodes
    a.record.load()
    b.record.load()
    bits = {a: range(8, 16), b: range(16, 24)}  # reserved bits: each node sets its own

    def turn_on(node: Node) -> None:
        for bit in bits[node]:
            node.record.change(_feature_edit(bit, True))

    threads = [threading.Thread(target=turn_on, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = a.record.fetch()
    assert row is not None
    version, raw = row
    assert version == 1 + 16
    flags = Config13.from_bytes(raw).feature_flags
    assert all(flags >> bit & 1 for bit in range(8, 24))
    # The node whose change committed last holds the whole record; the other at least its own.
    last = a if a.record.applied_version() == version else b
    assert last.store.read_bytes() == raw


def test_a_bad_edit_changes_nothing_anywhere(nodes: list[Node]) -> None:
    a, _ = nodes
    a.record.load()
    before = a.record.fetch()
    with pytest.raises(ValueError, match="terminal_mode"):
        a.record.change(lambda raw: raw[:9] + b"\x07" + raw[10:])
    assert a.record.fetch() == before
    assert a.store.read_bytes() == before[1] if before else False


def test_the_listener_brings_record_events_and_signals_and_resyncs_what_it_missed(
    nodes: list[Node], pg_url: str
) -> None:
    a, b = nodes
    a.record.load()
    b.record.load()
    listener = b.listener()
    listener.start()
    try:
        assert listener.connected.wait(30)
        # A record change on A reaches B's live record.
        a.record.change(_field_edit("cols", 132))
        wait_for(lambda: b.store.read().cols == 132)
        # An event appended on A reaches B's events log once, marked with its origin.
        sent = a.events.append("package", {"package": "left-pad", "event": "publish"})
        wait_for(lambda: any(e.topic == "package" for e in EventLog(b.data).read_after(0)))
        got = [e for e in EventLog(b.data).read_after(0) if e.topic == "package"]
        assert [e.data for e in got] == [{**sent.data, "node": "a"}]
        # ... and never comes back to A (no echo).
        assert [e.topic for e in EventLog(a.data).read_after(0)] == ["package"]
        # A storage signal NOTIFYed by A bumps B's node-local counter.
        before = b.auth.local.version()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('r13_signal', 'auth_changes')")
        wait_for(lambda: b.auth.local.version() > before)
        # The connection dies (the server ends it): the listener reconnects and resyncs.
        resyncs = listener.resyncs
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'r13-listener:b'"
            )
        wait_for(lambda: listener.resyncs > resyncs)
    finally:
        listener.stop()
    # While B listens to nothing, A changes things: NOTIFY is lost for B...
    a.record.change(_feature_edit(Feature.DEBUG, True))
    a.events.append("security", {"event": "block", "ip": "203.0.113.9"})
    a.events.append("config", {"event": "change"})
    signal_before = b.auth.local.version()
    assert not b.store.read().has(Feature.DEBUG)
    # ...so the next listener of B (a restart, another worker taking over) resyncs.
    again = b.listener()
    again.start()
    try:
        assert again.connected.wait(30)
        assert b.store.read().has(Feature.DEBUG)
        topics = [e.topic for e in EventLog(b.data).read_after(0)]
        assert topics == ["package", "security", "config"]
        assert b.auth.local.version() > signal_before  # every cache of B flushes
    finally:
        again.stop()


def test_a_long_event_travels_by_id(nodes: list[Node]) -> None:
    a, b = nodes
    listener = b.listener()
    listener.start()
    try:
        assert listener.connected.wait(30)
        big = {"text": "x" * 20000}
        a.events.append("package", big)
        wait_for(lambda: len(EventLog(b.data).read_after(0)) == 1)
        assert EventLog(b.data).read_after(0)[0].data == {**big, "node": "a"}
    finally:
        listener.stop()


def test_metrics_samples_stay_on_their_node(nodes: list[Node], pg_url: str) -> None:
    a, _ = nodes
    a.events.append("metrics", {"seq": 1})
    a.events.append("alert", {"rule": "cpu"})
    with psycopg.connect(pg_url) as conn:
        topics = [r[0] for r in conn.execute("SELECT topic FROM r13_events ORDER BY id")]
    assert topics == ["alert"]


def test_heartbeats_list_every_node_alive_or_stale(nodes: list[Node], pg_url: str) -> None:
    a, b = nodes
    Heartbeat(a.db, "a", "http://a:4873").beat({"requests_per_s": 10.0, "workers": 2})
    Heartbeat(b.db, "b", "http://b:4873").beat({"requests_per_s": 5.0, "workers": 2})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE r13_nodes SET heartbeat = now() - interval '1 hour' WHERE node_id='b'")
    view = cluster_view(a.db, "a", 10_000)
    states = {n["node"]: (n["state"], n["self"], n["url"]) for n in view["nodes"]}
    assert states == {"a": ("alive", True, "http://a:4873"), "b": ("stale", False, "http://b:4873")}
    assert view["total"]["requests_per_s"] == 10.0  # the stale node does not count
    assert view["total"]["alive"] == 1 and view["total"]["nodes"] == 2


def test_cluster_rate_limits_count_every_node_against_one_budget(nodes: list[Node]) -> None:
    a, b = nodes
    limits = [ClusterRateLimiter(a.db, 64), ClusterRateLimiter(b.db, 64)]
    decisions = [limits[i % 2].check("ip:198.51.100.7", 10, 60_000) for i in range(14)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 4
    assert decisions[9].remaining == 0 and decisions[10].retry_after_ns > 0
    limits[0].reset("ip:198.51.100.7")
    assert limits[1].check("ip:198.51.100.7", 10, 60_000).allowed


def test_cluster_limits_take_like_the_c_limiter(nodes: list[Node]) -> None:
    """ClusterLimit.take/take_with (what the security middleware calls in cluster scope):
    the packed decision of check(), the tighter of two limits marked when it is the second,
    and a bad second key refused before the first limit counts."""
    a, b = nodes
    ip, key = (
        ClusterRateLimiter(a.db, 64).limit(10, 60_000),
        ClusterRateLimiter(b.db, 64).limit(3, 60_000),
    )
    first = ip.take("ip:203.0.113.9")
    assert packed_allowed(first) and packed_remaining(first) == 9
    both = ip.take_with("ip:203.0.113.9", key, "key:k1")
    assert both & PACK_SECOND and packed_remaining(both) == 2  # the key's 2 of 3 < 8 of 10
    with pytest.raises(InvalidValue):
        ip.take_with("ip:203.0.113.9", key, "")
    assert ip.check("ip:203.0.113.9").remaining == 7  # two counted, not three
    for _ in range(2):
        assert packed_allowed(ip.take_with("ip:203.0.113.9", key, "key:k1"))
    refused = ip.take_with("ip:203.0.113.9", key, "key:k1")
    assert not packed_allowed(refused) and refused & PACK_SECOND
    assert packed_retry_after_seconds(refused) >= 1


def test_a_node_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = node_id(tmp_path)
    assert first == node_id(tmp_path) == (tmp_path / "node-id").read_text().strip()
    assert node_id(tmp_path / "other") != first
    assert node_id(tmp_path, "edge-1") == "edge-1"


def test_nodes_wired_by_the_services_change_the_record_through_the_database(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    url = pg_server.create_database()
    opened = []
    try:
        for name in ("a", "b"):
            env = {"R13_DATA": str(tmp_path / name), "R13_DATABASE_URL": url, "R13_NODE_ID": name}
            opened.append(open_services(Settings.from_env(env)))
        a, b = opened
        assert a.settings.clustered and a.cluster is not None and a.cluster.node_id == "a"
        a.config_changes.set_feature(Actor.cli(), Feature.DEBUG, True)
        assert b.config.read().has(Feature.DEBUG)  # b starts from the database's record
        b.config_changes.set_field(Actor.cli(), "rows", 40)
        row = Config13.from_bytes(a._shared_record().fetch()[1])  # type: ignore[index]
        assert row.rows == 40 and row.has(Feature.DEBUG)
        # Each change was audited once, where it was made, and published to the others.
        with psycopg.connect(url) as conn:
            published = conn.execute(
                "SELECT origin, topic FROM r13_events WHERE topic = 'config' ORDER BY id"
            ).fetchall()
        assert published == [("a", "config"), ("b", "config")]
    finally:
        for services in opened:
            services.close()
        pg_server.drop_database(url)
