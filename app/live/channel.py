"""``GET /_api/live``: the live channel (docs/live.md).

The handshake is an ordinary request first: the security middleware has counted
it, rate-limited it and authenticated its key. Here:

1. a browser's request must come from r13's own origin (``Origin`` /
   ``Sec-Fetch-Site``, app/security_middleware.py ``cross_site``): 403 otherwise;
2. a key with ``read`` is needed whatever PRIVATE_REGISTRY says (the channel
   carries the record and the registry's events): no key 401, a bad one 401,
   decided by r13core/access.py like every route;
3. the subprotocols offered are ``r13.v1`` (binary frames) and ``r13.json.v1``,
   or only ``r13.json.v1`` while BINARY_PROTOCOL is off; anything else is 400.

Then the session: the client gets the record (0x01) at once, and from the hub
(app/live/hub.py) every change, broadcast and heartbeat. What the client sends:

- 0x01 config write / 0x02 feature toggle: an admin key (checked again at each
  write, r13core/access.py), then ``ConfigChanges.write_bytes`` / ``set_feature``
  with the admin as the ``Actor`` (atomic in the C record, audited, broadcast);
  every client of every worker then gets the new record from its hub;
- 0x03 heartbeat: the echo of the hub's own is timed (the monitor's latency);
  any other is echoed unchanged;
- anything that is well framed as WebSocket but is not a valid r13 frame gets an
  error frame (0x04) with an :class:`~r13core.frames.ErrorCode` and the
  connection stays open.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from app.auth import Guard
from app.live.hub import Hub, LiveClient
from app.live.websocket import WebSocket, WebSockets
from app.security_middleware import cross_site
from r13core import frames
from r13core.access import Action, Policy, is_admin
from r13core.audit import Actor
from r13core.config import ConfigStore, Feature
from r13core.config_changes import ConfigChanges
from r13core.errors import Forbidden, FrameError, InvalidValue, R13Error, Unauthorized
from r13core.frames import (
    ConfigWrite,
    Direction,
    ErrorCode,
    ErrorFrame,
    FeatureToggle,
    Frame,
    Heartbeat,
)
from r13core.frames_json import decode_json
from r13core.keys import KeyInfo

log = logging.getLogger("r13.live")

BINARY: str = "r13.v1"
JSON: str = "r13.json.v1"


class LiveChannel:
    """The resource of ``GET /_api/live`` and the session behind it."""

    def __init__(
        self,
        sockets: WebSockets,
        hub: Hub,
        guard: Guard,
        policy: Policy,
        store: ConfigStore,
        changes: ConfigChanges,
        origins: frozenset[str],
    ) -> None:
        self.sockets = sockets
        self.hub = hub
        self.guard = guard
        self.policy = policy
        self.store = store
        self.changes = changes
        self.origins = origins

    def subprotocols(self) -> tuple[str, ...]:
        """What a client may ask for now (BINARY_PROTOCOL decides whether r13.v1 is one)."""
        return (BINARY, JSON) if self.store.enabled(Feature.BINARY_PROTOCOL) else (JSON,)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if cross_site(req.env, self.origins):
            raise Forbidden("a WebSocket from another site's page is refused (Origin)")
        identity = self.guard.identity(req)
        address = str(getattr(req.context, "client_ip", "") or "")
        # A key is needed even while the registry is public: private=True.
        self.policy.authorize(identity, Action.READ, private=True, client_ip=address)
        assert identity is not None  # authorize() refuses no key for a private read
        secret = str(getattr(req.context, "token", "") or "")
        private = self.store.enabled(Feature.PRIVATE_REGISTRY)
        client: dict[str, Any] = {
            "identity": identity,
            "secret": secret,
            "address": address,
            "admin": is_admin(identity),
            "reads": self.policy.reader(identity, private=private, client_ip=address),
        }
        self.sockets.accept(req, resp, self.subprotocols(), lambda ws: self.session(ws, client))

    def reader(self, identity: KeyInfo, address: str) -> Any:
        """Which packages' events ``identity`` may see (for the hub after a key change)."""
        private = self.store.enabled(Feature.PRIVATE_REGISTRY)
        return self.policy.reader(identity, private=private, client_ip=address)

    # -- the session ----------------------------------------------------------------------

    def session(self, ws: WebSocket, known: dict[str, Any]) -> None:
        """Serve one connection until it closes (its own greenlet)."""
        client = LiveClient(ws=ws, binary=ws.subprotocol == BINARY, **known)
        self.hub.join(client)
        try:
            while (message := ws.receive()) is not None:
                self.hub.count_in()
                if client.closing:
                    continue
                self.handle(client, message)
        finally:
            self.hub.leave(client)

    def handle(self, client: LiveClient, message: str | bytes) -> None:
        """Act on one message from ``client``; errors go back as error frames."""
        try:
            frame = self._decode(client, message)
        except InvalidValue as exc:
            self.hub.send(client, ErrorFrame(ErrorCode.INVALID_VALUE, str(exc)))
            return
        except FrameError as exc:
            self.hub.send(client, ErrorFrame(ErrorCode.MALFORMED, str(exc)))
            return
        if isinstance(frame, Heartbeat):
            if not self.hub.heartbeat_echoed(client, frame):
                self.hub.send(client, frame)
            return
        if isinstance(frame, ConfigWrite | FeatureToggle):
            self._write(client, frame)
            return
        self.hub.send(
            client, ErrorFrame(ErrorCode.UNSUPPORTED, "a client does not send this frame")
        )

    def _decode(self, client: LiveClient, message: str | bytes) -> Frame:
        if client.binary:
            if isinstance(message, str):
                raise FrameError(_EXPECT_BINARY)
            return frames.decode(message, Direction.FROM_CLIENT)
        if isinstance(message, bytes):
            raise FrameError(_EXPECT_TEXT)
        return decode_json(message)

    def _write(self, client: LiveClient, frame: ConfigWrite | FeatureToggle) -> None:
        try:
            self.policy.authorize(
                client.identity, Action.ADMIN, private=True, client_ip=client.address
            )
        except (Forbidden, Unauthorized) as exc:
            self.hub.send(
                client, ErrorFrame(ErrorCode.FORBIDDEN, f"changing the record needs: {exc}")
            )
            return
        actor = Actor(client.identity.username, client.address)
        before = self.store.generation()
        try:
            if isinstance(frame, ConfigWrite):
                self.changes.write_bytes(actor, frame.offset, frame.data)
            else:
                self.changes.set_feature(actor, frame.bit, frame.on)
        except InvalidValue as exc:
            self.hub.send(client, ErrorFrame(ErrorCode.INVALID_VALUE, str(exc)))
            return
        except R13Error as exc:
            log.error("live config write failed: %s", exc)
            self.hub.send(client, ErrorFrame(ErrorCode.INTERNAL, "the record could not be written"))
            return
        if self.store.generation() == before:
            # Nothing moved (the bytes were already so): the writer still gets an answer.
            generation, raw = self.store.snapshot()
            self.hub.send(client, frames.ConfigState(generation & 0xFFFFFFFF, raw))
        self.hub.poke()


_EXPECT_BINARY = "r13.v1 carries binary messages (type byte + payload); this was text"
_EXPECT_TEXT = "r13.json.v1 carries text messages (JSON objects); this was binary"
