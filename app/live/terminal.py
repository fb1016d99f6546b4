"""``GET /_dashboard/terminal``: the terminal over WebSocket (docs/terminal.md).

The handshake is an ordinary request first (counted, rate-limited, its key
authenticated by the middleware). Here:

1. a browser's request must come from r13's own origin (403 otherwise);
2. an admin key (401 without a key, 403 with a lesser one), as for every admin route;
3. the record's terminalMode must not be 0 (403 ``the terminal is off``);
4. the one subprotocol is ``r13.term.v1`` (anything else: 400).

Then the session of r13core/terminal/session.py runs in the connection's
greenlet, acting as the key's principal from the client's address (so every
change it makes is audited as that admin). Messages are JSON text; a
malformed one gets an ``error`` message and the connection stays. Before each
message the key is checked again: revoked, expired or no longer admin, the
session ends (``bye``, close 1008). ``bye`` from the session (exit, ctrl-d,
terminalMode turned to 0) closes with 1000.
"""

from __future__ import annotations

import json
import logging

import falcon

from app.auth import Guard
from app.live.websocket import WebSocket, WebSockets
from app.security_middleware import cross_site
from r13core.access import Action, is_admin
from r13core.errors import Forbidden, R13Error
from r13core.services import Services
from r13core.terminal.interpreter import Interpreter
from r13core.terminal.session import Message, TerminalSession

log = logging.getLogger("r13.terminal")

SUBPROTOCOL = "r13.term.v1"
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


class TerminalResource:
    """The resource of ``GET /_dashboard/terminal`` and the session behind it."""

    def __init__(
        self, sockets: WebSockets, guard: Guard, services: Services, origins: frozenset[str]
    ) -> None:
        self.sockets = sockets
        self.guard = guard
        self.services = services
        self.origins = origins

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if cross_site(req.env, self.origins):
            raise Forbidden("a WebSocket from another site's page is refused (Origin)")
        actor = self.guard.acting(req, Action.ADMIN)
        # terminalMode 0 refuses here, before the upgrade: 403 with the reason.
        session = TerminalSession(Interpreter(self.services, actor), self.services.config.read)
        secret = str(getattr(req.context, "token", "") or "")
        self.sockets.accept(req, resp, (SUBPROTOCOL,), lambda ws: self.serve(ws, session, secret))

    def _still_admin(self, secret: str) -> bool:
        try:
            return is_admin(self.guard.authenticate(secret))
        except R13Error:
            return False

    def serve(self, ws: WebSocket, session: TerminalSession, secret: str) -> None:
        """Run one session until it ends or the connection closes (its own greenlet)."""
        _send(ws, session.hello())
        while (message := ws.receive()) is not None:
            if not self._still_admin(secret):
                _send(ws, [{"type": "bye", "reason": "key revoked or expired"}])
                ws.close(POLICY_VIOLATION, "key revoked or expired")
                _drain(ws)
                break
            if isinstance(message, bytes):
                _send(ws, [{"type": "error", "text": "messages are JSON text, not binary"}])
                continue
            try:
                decoded: object = json.loads(message)
            except ValueError:
                _send(ws, [{"type": "error", "text": "a message is one JSON object"}])
                continue
            try:
                answer = session.receive(decoded)
            except Exception:  # a fault of r13's (storage, disk), never of the input
                log.exception("terminal session of %s failed", session.interpreter.actor.name)
                _send(ws, [{"type": "bye", "reason": "internal error (see the server log)"}])
                ws.close(INTERNAL_ERROR, "internal error")
                _drain(ws)
                break
            _send(ws, answer)
            if session.closed:
                ws.close(1000, "bye")
                _drain(ws)
                break
        session.closed = True


def _send(ws: WebSocket, messages: list[Message]) -> None:
    for message in messages:
        ws.send_text(json.dumps(message, ensure_ascii=False))


def _drain(ws: WebSocket) -> None:
    # After our close frame: read until the client's answer (or the layer's timeout).
    while ws.receive() is not None:
        pass
