"""The live channel's part of the OpenAPI document (``GET /_api/live``, docs/live.md).

OpenAPI describes the handshake only; the messages are in docs/live.md, and the
JSON Schema of each broadcast topic's payload is attached here as
``x-r13-topics`` (from r13core/broadcasts.py, the one copy).
"""

from __future__ import annotations

from typing import Any, Final

from r13core.broadcasts import SCHEMAS, TOPICS

_ERROR: Final = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _header(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


LIVE_PATHS: Final[dict[str, Any]] = {
    "/_api/live": {
        "get": {
            "summary": "The live channel: a WebSocket (RFC 6455) speaking r13.v1 or r13.json.v1",
            "description": (
                "Send a WebSocket handshake with a key that has read permission "
                "(Authorization: Bearer); admin keys may also write the record. "
                "Messages, topics and limits: docs/live.md."
            ),
            "parameters": [
                _header("Upgrade", "websocket", required=True),
                _header("Connection", "Upgrade", required=True),
                _header("Sec-WebSocket-Version", "13", required=True),
                _header("Sec-WebSocket-Key", "16 random bytes in base64", required=True),
                _header(
                    "Sec-WebSocket-Protocol",
                    "r13.v1 (binary frames; only while BINARY_PROTOCOL is on) and/or r13.json.v1",
                    required=True,
                ),
                _header("Authorization", "Bearer r13_... (read to subscribe, admin to write)"),
                _header("Origin", "a browser's page must be r13's own origin"),
            ],
            "responses": {
                "101": {"description": "Switching Protocols: the WebSocket is open"},
                "400": _error("Bad handshake key, or no supported subprotocol offered"),
                "401": _error("No key, or a bad, revoked or expired one"),
                "403": _error("Another site's page (Origin), or too weak a key"),
                "426": _error("Not a WebSocket handshake, or not version 13"),
                "503": _error("The worker is stopping, is full, or is not the gevent worker"),
            },
            "x-r13-topics": {
                name: {"topic": int(byte), "schema": SCHEMAS[name]} for name, byte in TOPICS.items()
            },
        }
    },
}
