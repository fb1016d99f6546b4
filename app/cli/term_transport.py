"""Where `r13 term` sends its messages: a session in this process, or a server's.

Both speak the terminal protocol of docs/terminal.md (dicts here, JSON text
messages on the WebSocket ``GET /_dashboard/terminal``, subprotocol
``r13.term.v1``). The remote side uses the ``websockets`` package's sync
client.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

from r13core.errors import R13Error
from r13core.terminal.session import TerminalSession

Message = dict[str, Any]
SUBPROTOCOL: Final = "r13.term.v1"
PATH: Final = "/_dashboard/terminal"


class TerminalUnavailable(R13Error):
    """The server refused the terminal or could not be reached; the message says why."""


class Transport(Protocol):
    pushes: bool
    """Whether messages may arrive on their own (read them with :meth:`incoming`)."""

    def hello(self) -> list[Message]:
        """The session's opening messages."""

    def send(self, message: Message) -> list[Message]:
        """Send one message; the answer when it comes back in turn (else [])."""

    def incoming(self) -> Iterator[list[Message]]:
        """Messages as they arrive, until the session ends."""

    def close(self) -> None:
        """End the session."""


class LocalTransport:
    """A session in this process: every answer comes back from the call."""

    pushes = False

    def __init__(self, session: TerminalSession) -> None:
        self.session = session

    def hello(self) -> list[Message]:
        return self.session.hello()

    def send(self, message: Message) -> list[Message]:
        return self.session.receive(message)

    def incoming(self) -> Iterator[list[Message]]:
        return iter(())

    def close(self) -> None:
        self.session.closed = True


def terminal_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` -> ``ws(s)://host[:port][/prefix]/_dashboard/terminal``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise TerminalUnavailable(f"--url {url!r}: expected http://HOST[:PORT] or https://...")
    path = parts.path.rstrip("/")
    if not path.endswith(PATH):
        path += PATH
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class RemoteTransport:
    """A server's terminal over WebSocket, with an admin key."""

    def __init__(self, url: str, key: str) -> None:
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        target = terminal_url(url)
        self._stack = contextlib.ExitStack()
        try:
            opening = connect(
                target,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {key}"},
                compression=None,
                proxy=None,
                open_timeout=30,
            )
            self.ws = self._stack.enter_context(opening)
        except InvalidStatus as exc:
            raise TerminalUnavailable(f"{target}: {_refusal(exc.response)}") from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise TerminalUnavailable(f"{target}: {exc}") from None
        self.mode = "line"
        self.pushes = False

    def _receive(self) -> Message | None:
        from websockets.exceptions import ConnectionClosed

        try:
            raw = self.ws.recv()
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else "closed"
            return {"type": "bye", "reason": f"connection closed ({reason})"}
        message = json.loads(raw)
        return message if isinstance(message, dict) else {"type": "error", "text": str(raw)}

    def _until(self, *kinds: str) -> list[Message]:
        found: list[Message] = []
        while True:
            message = self._receive()
            if message is None:
                return found
            found.append(message)
            if message.get("type") in (*kinds, "bye"):
                return found

    def hello(self) -> list[Message]:
        first = self._until("hello")
        if first and first[-1].get("type") == "hello":
            self.mode = str(first[-1].get("mode"))
        if self.mode == "raw":
            self.pushes = True
            return first + self._until("screen")
        return first + self._until("prompt")

    def send(self, message: Message) -> list[Message]:
        self.ws.send(json.dumps(message))
        if self.pushes:
            return []
        return self._until("prompt", "error")

    def incoming(self) -> Iterator[list[Message]]:
        while True:
            message = self._receive()
            if message is None:
                return
            yield [message]
            if message.get("type") == "bye":
                return

    def close(self) -> None:
        self._stack.close()


def _refusal(response: Any) -> str:
    try:
        body = json.loads(response.body or b"{}")
        detail = body.get("error") or body.get("title") or ""
    except (ValueError, AttributeError):
        detail = ""
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
