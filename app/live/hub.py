"""One greenlet per worker that fans the live state out to that worker's connections.

While the worker has live-channel clients, :class:`Hub` runs one loop. It wakes
when the events log grows (an inotify watch through the gevent loop's stat
watcher: every audited record change, publish or block appends there, in any
process), when a connection of this worker wrote the record (:meth:`Hub.poke`),
and at the latest every ``interval`` s (50 ms: the fallback for a change nothing
announced, and for a loop without inotify). Each time it

- reads the record's generation (a seqlock read in shared memory, ~0.2 µs): when
  it moved — a change made by any worker, the CLI or the terminal — every client
  gets the new record (0x01), encoded once per subprotocol;
- tails the events log (r13core/events.py; one ``stat`` when nothing is new):
  each event becomes a broadcast (0x05) to the clients allowed to see its topic
  (r13core/broadcasts.py: admin-only topics, package events only for packages
  the key may read);
- watches the identity storage's change signal (an 8-byte read) and, once a
  second, the clock: a client whose key was revoked, lost its owner or expired
  is closed with 1008; a key whose permission changed is re-read;
- every ``heartbeat_interval`` s sends each client a heartbeat (0x03) stamped with
  the worker's monotonic clock; the client's echo gives the round trip that
  feeds the monitor's WebSocket latency.

Sends never block (app/live/websocket.py): one slow client cannot hold the loop.
Polling the generation every few milliseconds instead would wake every worker
hundreds of times a second with nothing to do; the watch costs nothing while nothing
happens, and a change still reaches every worker within a millisecond or so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event

from app.live.websocket import CLOSE_POLICY, WebSocket, prepare_bytes, prepare_text
from r13core import frames
from r13core.access import is_admin
from r13core.broadcasts import ADMIN_TOPICS, TOPICS
from r13core.config import ConfigStore, Feature
from r13core.errors import FrameError, InvalidValue, Unauthorized
from r13core.events import EventCursor, EventLog, EventRecord
from r13core.frames import Broadcast, ConfigState, Frame, Heartbeat, Topic
from r13core.frames_json import encode_json
from r13core.keys import KeyInfo
from r13core.metrics import Event, Gauge, Metrics

log = logging.getLogger("r13.live")

_U32 = 0xFFFFFFFF


@dataclass(eq=False)
class LiveClient:
    """One live-channel connection and what the hub needs to serve it."""

    ws: WebSocket
    binary: bool  # r13.v1 (binary frames) or r13.json.v1
    identity: KeyInfo
    secret: str  # to re-check the key when keys change anywhere
    address: str
    admin: bool
    reads: Callable[[str], bool]  # which packages' events it may see
    heartbeat: tuple[int, int] | None = None  # (seq, sent_ns) of the hub's last one
    closing: bool = False
    joined: float = field(default_factory=time.monotonic)

    def send(self, frame: Frame) -> None:
        """Send one frame in this client's subprotocol."""
        if self.binary:
            self.ws.send_bytes(frames.encode(frame))
        else:
            self.ws.send_text(encode_json(frame))


class _Encoded:
    """One frame's wire bytes per subprotocol, made on first use."""

    __slots__ = ("_bin", "_json", "frame")

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self._bin: bytes | None = None
        self._json: bytes | None = None

    def for_client(self, binary: bool) -> bytes:
        if binary:
            if self._bin is None:
                self._bin = prepare_bytes(frames.encode(self.frame))
            return self._bin
        if self._json is None:
            self._json = prepare_text(encode_json(self.frame))
        return self._json


class Hub:
    """The fan-out of one worker (see the module docstring)."""

    def __init__(
        self,
        store: ConfigStore,
        events: EventLog,
        *,
        authenticate: Callable[[str, object], KeyInfo],
        auth_version: Callable[[], object],
        reader: Callable[[KeyInfo, str], Callable[[str], bool]],
        metrics: Metrics | None = None,
        interval: float = 0.05,
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.events = events
        self.authenticate = authenticate
        self.auth_version = auth_version
        self.reader = reader
        self.metrics = metrics
        self.interval = interval
        self.heartbeat_interval = heartbeat_interval
        self.clients: set[LiveClient] = set()
        self._loop: gevent.Greenlet[Any, Any] | None = None
        self._poke = gevent.event.Event()
        self._generation = -1
        self._seq = 0

    # -- clients ------------------------------------------------------------------------

    def join(self, client: LiveClient) -> None:
        """Add ``client`` and send it the record (0x01) as it is now."""
        generation, raw = self.store.snapshot()
        self.clients.add(client)
        if self.metrics is not None:
            self.metrics.gauge_add(Gauge.WS_CONNECTIONS, 1)
        client.send(ConfigState(generation & _U32, raw))
        self._count_out(1)
        if self._loop is None or self._loop.dead:
            self._generation = generation
            # The cursor starts now, before this client can change anything.
            self._loop = gevent.spawn(self._run, self.events.cursor())

    def leave(self, client: LiveClient) -> None:
        """Forget ``client`` (its connection ended)."""
        if client in self.clients:
            self.clients.discard(client)
            if self.metrics is not None:
                self.metrics.gauge_add(Gauge.WS_CONNECTIONS, -1)

    def send(self, client: LiveClient, frame: Frame) -> None:
        """Send ``frame`` to one client (an answer, an echo), counted in the monitor."""
        client.send(frame)
        self._count_out(1)

    def poke(self) -> None:
        """Look at the record now rather than at the next tick (after a local write)."""
        self._poke.set()

    def heartbeat_echoed(self, client: LiveClient, beat: Heartbeat) -> bool:
        """Whether ``beat`` is the echo of the hub's last heartbeat to ``client``; if so,
        its round trip is counted in the monitor."""
        sent = client.heartbeat
        if sent is None or (beat.seq, beat.sent_ns) != sent:
            return False
        client.heartbeat = None
        rtt = time.monotonic_ns() - beat.sent_ns
        if self.metrics is not None and rtt >= 0 and self._counting():
            self.metrics.count(Event.WS_HEARTBEATS)
            self.metrics.count(Event.WS_HEARTBEAT_NS, rtt)
        return True

    def count_in(self, n: int = 1) -> None:
        """Count messages received from clients (the monitor's messages/s)."""
        if self.metrics is not None and self._counting():
            self.metrics.count(Event.WS_MESSAGES_IN, n)

    def _count_out(self, n: int) -> None:
        if self.metrics is not None and n and self._counting():
            self.metrics.count(Event.WS_MESSAGES_OUT, n)

    def _counting(self) -> bool:
        return self.store.enabled(Feature.METRICS)

    # -- the loop -------------------------------------------------------------------------

    def _run(self, cursor: EventCursor) -> None:
        watch = self._watch_events()
        auth = self.auth_version()
        now = time.monotonic()
        next_keys = now + 1.0
        next_beat = now + self.heartbeat_interval
        try:
            while self.clients:
                try:
                    self.check_record()
                    for record in cursor.poll(1000):
                        self._broadcast(record)
                    now = time.monotonic()
                    if now >= next_keys:
                        next_keys = now + 1.0
                        version = self.auth_version()
                        self._check_keys(version, changed=version != auth)
                        auth = version
                    if now >= next_beat:
                        next_beat = now + self.heartbeat_interval
                        self._send_heartbeats()
                except Exception:
                    log.exception("live channel fan-out failed; carrying on")
                self._poke.wait(self.interval)
                self._poke.clear()
        finally:
            if watch is not None:
                watch.stop()

    def _watch_events(self) -> Any:
        """An inotify-backed stat watcher on the events log that pokes the loop (None if
        this gevent loop has none: the interval alone then paces the loop)."""
        stat = getattr(gevent.get_hub().loop, "stat", None)
        if stat is None:
            return None
        try:
            watch = stat(str(self.events.path), 0.0)
            watch.start(self._poke.set)
        except (OSError, ValueError, TypeError) as exc:
            log.info("no watch on the events log (%s): polling every %g s", exc, self.interval)
            return None
        return watch

    def check_record(self) -> None:
        """Send the record to every client if its generation moved (never blocks)."""
        if not self.clients:
            return
        generation, raw = self.store.snapshot()
        if generation == self._generation:
            return
        self._generation = generation
        encoded = _Encoded(ConfigState(generation & _U32, raw))
        sent = 0
        for client in list(self.clients):
            if client.ws.send_prepared(encoded.for_client(client.binary)):
                sent += 1
        self._count_out(sent)

    def _broadcast(self, record: EventRecord) -> None:
        topic = TOPICS.get(record.topic)
        if topic is None:
            return
        text = json.dumps(record.as_dict(), separators=(",", ":"), ensure_ascii=False)
        try:
            encoded = _Encoded(Broadcast(int(topic), text))
            encoded.for_client(True)  # too long for a frame: refused here, once
        except (FrameError, InvalidValue) as exc:
            log.warning("event %d (%s) cannot be broadcast: %s", record.seq, record.topic, exc)
            return
        package = str(record.data.get("package", "")) if topic is Topic.PACKAGE else ""
        sent = 0
        for client in list(self.clients):
            if topic in ADMIN_TOPICS and not client.admin:
                continue
            if package and not client.reads(package):
                continue
            if client.ws.send_prepared(encoded.for_client(client.binary)):
                sent += 1
        self._count_out(sent)

    def _check_keys(self, version: object, *, changed: bool) -> None:
        now = time.time()
        for client in list(self.clients):
            expires = client.identity.expires
            if expires is not None and expires.timestamp() <= now:
                self._drop(client, "key expired")
                continue
            if not changed:
                continue
            try:
                identity = self.authenticate(client.secret, version)
            except Unauthorized:
                self._drop(client, "key revoked or expired")
                continue
            if identity != client.identity:  # a role or its limits changed: re-read them
                client.identity = identity
                client.admin = is_admin(identity)
                client.reads = self.reader(identity, client.address)

    def _drop(self, client: LiveClient, why: str) -> None:
        client.closing = True
        self.clients.discard(client)
        if self.metrics is not None:
            self.metrics.gauge_add(Gauge.WS_CONNECTIONS, -1)
        client.ws.close(CLOSE_POLICY, why)

    def _send_heartbeats(self) -> None:
        self._seq = (self._seq + 1) & _U32
        sent_ns = time.monotonic_ns()
        encoded = _Encoded(Heartbeat(sent_ns, self._seq))
        sent = 0
        for client in list(self.clients):
            client.heartbeat = (self._seq, sent_ns)
            if client.ws.send_prepared(encoded.for_client(client.binary)):
                sent += 1
        self._count_out(sent)
