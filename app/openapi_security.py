"""The OpenAPI paths of ``/_api/security/*`` (merged into app/openapi.py's PATHS)."""

from __future__ import annotations

from typing import Any, Final

_ERR: Final = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    texts = {
        "400": "Invalid request",
        "401": "A valid key is needed (Authorization: Bearer r13_...)",
        "403": "The key may not do this (admin needed)",
        "404": "Not found",
        "409": "The id is taken: a key or a user has (or had) that name, ignoring case",
    }
    return {code: _json(texts[code], _ERR) for code in codes}


def _param(name: str, where: str = "path", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "string"},
    }


KEY: Final[dict[str, Any]] = {
    "type": "object",
    "description": "An API key (never its secret, except `key` once at creation or rotation).",
    "properties": {
        "id": {"type": "string"},
        "permission": {"type": "string", "enum": ["read", "write", "admin"]},
        "created": {"type": "string", "format": "date-time"},
        "expires": {"type": ["string", "null"], "format": "date-time"},
        "revoked": {"type": "boolean"},
        "owner": {"type": ["string", "null"], "description": "User owning a login token"},
        "rateLimit": {"type": ["integer", "null"], "description": "Requests per window"},
        "cidr": {"type": "array", "items": {"type": "string"}},
        "packages": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
        "lastUsed": {"type": ["string", "null"], "format": "date-time"},
        "useCount": {"type": "integer"},
        "key": {"type": "string", "description": "The secret: only in create/rotate answers"},
    },
}
NEW_KEY: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {
            "type": "string",
            "description": "1-64 of A-Za-z0-9._@-; unique among keys and user names (ignoring "
            "case); the key acts as key:<id>",
        },
        "permissions": {
            "description": "read, write or admin (or a list: the highest counts)",
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        },
        "rateLimit": {"type": ["integer", "null"]},
        "expiresIn": {
            "description": "ms, or '30d'/'12h'/'15m'/'10s', or 'never'; "
            "default SECURITY_API_KEY_EXPIRY",
            "oneOf": [{"type": "number"}, {"type": "string"}],
        },
        "cidr": {"type": "array", "items": {"type": "string"}},
        "packages": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Package globs (* within a segment, ** across; at most 32, each at "
            "most 214 characters with 8 wildcards); a key with packages cannot be admin",
        },
        "description": {"type": "string"},
    },
}
BLOCK: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "ip": {
            "type": "string",
            "description": "An IPv4 address, or an IPv6 prefix (R13_IPV6_PREFIX, /64 by default)",
        },
        "reason": {"type": "string"},
        "created": {"type": "number"},
        "expires": {"type": ["number", "null"]},
        "kind": {
            "type": "string",
            "enum": ["auto", "manual"],
            "description": "auto: made by strikes, requests with a valid key pass; "
            "manual: an admin's, refuses everything",
        },
    },
}
EVENT: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "time": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "action": {"type": "string"},
        "target": {"type": "string"},
        "ip": {"type": "string"},
        "detail": {"type": "object"},
    },
}

SECURITY_PATHS: Final[dict[str, Any]] = {
    "/_api/security/keys": {
        "get": {
            "summary": "Every key, never the secrets (admin)",
            "responses": {
                "200": _json(
                    "Keys",
                    {"type": "object", "properties": {"keys": {"type": "array", "items": KEY}}},
                ),
                **_errors("401", "403"),
            },
        },
        "post": {
            "summary": "Create a key; the secret is in `key`, shown once (admin; or, while no "
            "admin key exists, without auth from this machine, never through a proxy)",
            "requestBody": {"content": {"application/json": {"schema": NEW_KEY}}},
            "responses": {"201": _json("The key", KEY), **_errors("400", "401", "403", "409")},
        },
    },
    "/_api/security/keys/{key_id}": {
        "get": {
            "summary": "One key (admin)",
            "parameters": [_param("key_id")],
            "responses": {"200": _json("The key", KEY), **_errors("401", "403", "404")},
        },
        "delete": {
            "summary": "Revoke a key at once, in every worker (admin)",
            "parameters": [_param("key_id")],
            "responses": {
                "200": _json("Revoked", {"type": "object"}),
                **_errors("401", "403", "404"),
            },
        },
    },
    "/_api/security/keys/{key_id}/rotate": {
        "post": {
            "summary": "A new secret for the key; the old one stops working at once (admin)",
            "parameters": [_param("key_id")],
            "responses": {"201": _json("The key", KEY), **_errors("400", "401", "403", "404")},
        }
    },
    "/_api/security/blocks": {
        "get": {
            "summary": "Addresses blocked now (admin)",
            "responses": {
                "200": _json(
                    "Blocks",
                    {"type": "object", "properties": {"blocks": {"type": "array", "items": BLOCK}}},
                ),
                **_errors("401", "403"),
            },
        },
        "post": {
            "summary": "Block an address (an IPv6 address blocks its prefix) or an IPv6 prefix: "
            "{ip, reason?, duration? (ms or '1h')}; refuses everything, keys too (admin)",
            "responses": {"201": _json("The block", BLOCK), **_errors("400", "401", "403")},
        },
    },
    "/_api/security/blocks/{ip}": {
        "delete": {
            "summary": "Lift the block of an address (of its prefix, for IPv6) and forget its "
            "strikes (admin)",
            "parameters": [_param("ip")],
            "responses": {
                "200": _json("Unblocked", {"type": "object"}),
                **_errors("400", "401", "403", "404"),
            },
        }
    },
    "/_api/security/blocks/{ip}/{length}": {
        "delete": {
            "summary": "Lift the block of an IPv6 prefix, e.g. DELETE .../blocks/2001:db8::/64 "
            "(admin)",
            "parameters": [_param("ip"), _param("length", type="integer")],
            "responses": {
                "200": _json("Unblocked", {"type": "object"}),
                **_errors("400", "401", "403", "404"),
            },
        }
    },
    "/_api/security/metrics": {
        "get": {
            "summary": "Requests by route and status, top clients, auth failures, rate-limit "
            "violations, anomalies by kind, active blocks, per-key usage (admin)",
            "responses": {"200": _json("Metrics", {"type": "object"}), **_errors("401", "403")},
        }
    },
    "/_api/security/audit": {
        "get": {
            "summary": "The audit log (hash-chained; `r13 security audit --verify` checks it), "
            "newest first; pass `next` as `before` for the next page",
            "parameters": [
                _param("before", "query", type="integer"),
                _param("limit", "query", type="integer", minimum=1, maximum=1000),
                _param("action", "query"),
                _param("actor", "query"),
            ],
            "responses": {
                "200": _json(
                    "A page",
                    {
                        "type": "object",
                        "properties": {
                            "events": {"type": "array", "items": EVENT},
                            "next": {"type": ["integer", "null"]},
                        },
                    },
                ),
                **_errors("400", "401", "403"),
            },
        }
    },
}
