"""The OpenAPI paths of webhooks: npm's ``/-/npm/v1/hooks`` and the admin ``/_api/hooks``
(merged into app/openapi.py's PATHS; docs/webhooks.md)."""

from __future__ import annotations

from typing import Any, Final

_ERR: Final = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    text = {
        "400": "Bad input: the message says which check failed (type, name, endpoint — "
        "including a private address — or secret)",
        "401": "A valid key is needed (Authorization: Bearer r13_...)",
        "403": "The key may not do this (a write key for one's own hooks; admin for others')",
        "404": "No hook with that id",
        "409": "Too many hooks for this owner",
    }
    return {code: _json(text[code], _ERR) for code in codes}


_STATE: Final = {
    "last_delivery_ms": {"type": ["integer", "null"]},
    "last_status": {"type": ["integer", "null"], "description": "HTTP status of the last attempt"},
    "last_error": {"type": ["string", "null"]},
}
HOOK: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "owner": {"type": "string", "description": "The principal that manages it"},
        "type": {"type": "string", "enum": ["package", "scope", "owner"]},
        "name": {"type": "string", "description": "A package, @scope, or a user/key name"},
        "endpoint": {"type": "string"},
        "created_ms": {"type": "integer"},
        "updated_ms": {"type": "integer"},
        **_STATE,
    },
}
NPM_HOOK: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        **HOOK["properties"],
        "username": {"type": "string"},
        "status": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "last_delivery": {"type": ["string", "null"], "format": "date-time"},
        "response_code": {"type": ["integer", "null"]},
        "deleted": {"type": "boolean"},
    },
}
NEW_HOOK: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type", "name", "endpoint", "secret"],
    "properties": {
        "type": {"type": "string", "enum": ["package", "scope", "owner"]},
        "name": {"type": "string"},
        "endpoint": {"type": "string", "description": "http:// or https://, a public address"},
        "secret": {"type": "string", "description": "Signs each body (x-npm-signature)"},
    },
}
_ID: Final = [{"name": "hook_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_BODY: Final = {"required": True, "content": {"application/json": {"schema": NEW_HOOK}}}
DELIVERY: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "Also the body's id and x-r13-delivery"},
        "hook": {"type": "string"},
        "package": {"type": "string"},
        "event": {"type": "string"},
        "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer"},
        "created_ms": {"type": "integer"},
        "next_ms": {"type": "integer"},
        "last_status": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "done_ms": {"type": ["integer", "null"]},
    },
}
ATTEMPT: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "delivery": {"type": "string"},
        "hook": {"type": "string"},
        "attempt": {"type": "integer"},
        "at_ms": {"type": "integer"},
        "status": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]},
        "duration_ms": {"type": "number"},
    },
}
_LIST: Final = {
    "type": "object",
    "properties": {
        "objects": {"type": "array", "items": NPM_HOOK},
        "total": {"type": "integer"},
        "urls": {"type": "object"},
    },
}

HOOK_PATHS: Final[dict[str, Any]] = {
    "/-/npm/v1/hooks": {
        "get": {
            "summary": "The caller's webhooks (?package=: those a change to it reaches)",
            "parameters": [{"name": "package", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _json("Hooks", _LIST), **_errors("400", "401", "403")},
        }
    },
    "/-/npm/v1/hooks/hook": {
        "post": {
            "summary": "Add a webhook (npm's hooks API): package, @scope or owner",
            "requestBody": _BODY,
            "responses": {
                "201": _json("The hook", NPM_HOOK),
                **_errors("400", "401", "403", "409"),
            },
        }
    },
    "/-/npm/v1/hooks/hook/{hook_id}": {
        "parameters": _ID,
        "get": {
            "summary": "One webhook (its owner, or an admin)",
            "responses": {"200": _json("The hook", NPM_HOOK), **_errors("401", "403", "404")},
        },
        "put": {
            "summary": "Change a webhook's endpoint and secret",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "endpoint": {"type": "string"},
                                "secret": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json("The hook", NPM_HOOK),
                **_errors("400", "401", "403", "404"),
            },
        },
        "delete": {
            "summary": "Remove a webhook, its queue and its log",
            "responses": {
                "200": _json("The removed hook (deleted: true)", NPM_HOOK),
                **_errors("401", "403", "404"),
            },
        },
    },
    "/_api/hooks": {
        "get": {
            "summary": "Every webhook (?owner=) and the delivery queue's counts (admin)",
            "parameters": [{"name": "owner", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": _json(
                    "Hooks",
                    {
                        "type": "object",
                        "properties": {
                            "objects": {"type": "array", "items": HOOK},
                            "total": {"type": "integer"},
                            "queue": {
                                "type": "object",
                                "properties": {
                                    "pending": {"type": "integer"},
                                    "delivered": {"type": "integer"},
                                    "failed": {"type": "integer"},
                                },
                            },
                        },
                    },
                ),
                **_errors("401", "403"),
            },
        },
        "post": {
            "summary": "Add a webhook for any owner (admin; body as npm's, plus owner)",
            "requestBody": _BODY,
            "responses": {"201": _json("The hook", HOOK), **_errors("400", "401", "403", "409")},
        },
    },
    "/_api/hooks/{hook_id}": {
        "parameters": _ID,
        "get": {
            "summary": "One webhook (admin)",
            "responses": {"200": _json("The hook", HOOK), **_errors("401", "403", "404")},
        },
        "delete": {
            "summary": "Remove a webhook (admin)",
            "responses": {
                "200": _json("Removed", {"type": "object"}),
                **_errors("401", "403", "404"),
            },
        },
    },
    "/_api/hooks/{hook_id}/deliveries": {
        "parameters": _ID,
        "get": {
            "summary": "A webhook's deliveries and its attempt log, newest first (admin)",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
            "responses": {
                "200": _json(
                    "The log",
                    {
                        "type": "object",
                        "properties": {
                            "hook": HOOK,
                            "deliveries": {"type": "array", "items": DELIVERY},
                            "attempts": {"type": "array", "items": ATTEMPT},
                        },
                    },
                ),
                **_errors("400", "401", "403", "404"),
            },
        },
    },
    "/_api/hooks/{hook_id}/ping": {
        "parameters": _ID,
        "post": {
            "summary": "Queue a test delivery (event hook:ping) to the webhook (admin)",
            "responses": {
                "202": _json(
                    "Queued",
                    {
                        "type": "object",
                        "properties": {"ok": {"type": "boolean"}, "delivery": {"type": "string"}},
                    },
                ),
                **_errors("401", "403", "404"),
            },
        },
    },
}
