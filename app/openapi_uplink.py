"""The OpenAPI paths of ``/_api/uplink*`` (merged into app/openapi.py's PATHS)."""

from __future__ import annotations

from typing import Any, Final

_ERR: Final = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS: Final = {
    "401": _json("A valid key is needed (Authorization: Bearer r13_...)", _ERR),
    "403": _json("The key may not do this (admin needed)", _ERR),
}
_OK: Final = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
BREAKER: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "state": {"type": "string", "enum": ["closed", "open", "half-open"]},
        "failures": {"type": "integer", "description": "Failures in a row"},
        "retry_in_ms": {"type": "integer", "description": "While open: until the next probe"},
        "changed_ms": {"type": "integer"},
    },
}
STATUS: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "url": {"type": "string"},
        "proxy_mode": {"type": "boolean"},
        "cache_enabled": {"type": "boolean"},
        "breaker": BREAKER,
        "cache": {
            "type": "object",
            "properties": {
                "packuments": {"type": "integer"},
                "packument_bytes": {"type": "integer"},
                "tarballs": {"type": "integer"},
                "tarball_bytes": {"type": "integer"},
                "oldest_ms": {"type": ["integer", "null"]},
            },
        },
        "private_scopes": {"type": "array", "items": {"type": "string"}},
        "in_flight": {"type": "integer"},
    },
}
OVERRIDES: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "objects": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "by": {"type": "string"},
                    "created_ms": {"type": "integer"},
                },
            },
        }
    },
}


def _override(scoped: bool) -> dict[str, Any]:
    names = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if scoped:
        names[0]["description"] = "The scope, with its @"
        names.append({"name": "bare", "in": "path", "required": True, "schema": {"type": "string"}})
    what = "@scope/name" if scoped else "an unscoped name"
    return {
        "put": {
            "summary": f"Allow publishing {what} here although the upstream has it (audited)",
            "parameters": names,
            "responses": {
                "201": _json("Allowed", _OK),
                "200": _json("Already allowed", _OK),
                "400": _json("Not a package name", _ERR),
                **_ERRORS,
            },
        },
        "delete": {
            "summary": f"Withdraw the override of {what} (audited)",
            "parameters": names,
            "responses": {
                "200": _json("Withdrawn", _OK),
                "404": _json("There was none", _ERR),
                **_ERRORS,
            },
        },
    }


UPLINK_PATHS: Final[dict[str, Any]] = {
    "/_api/uplink": {
        "get": {
            "summary": "The uplink: flags, circuit breaker, cache sizes (admin key)",
            "responses": {"200": _json("Status", STATUS), **_ERRORS},
        }
    },
    "/_api/uplink/breaker/reset": {
        "post": {
            "summary": "Close the circuit breaker now (audited)",
            "responses": {"200": _json("Closed", {"type": "object"}), **_ERRORS},
        }
    },
    "/_api/uplink/overrides": {
        "get": {
            "summary": "Names allowed to be published although the upstream has them",
            "responses": {"200": _json("Overrides", OVERRIDES), **_ERRORS},
        }
    },
    "/_api/uplink/overrides/{name}": _override(False),
    "/_api/uplink/overrides/{name}/{bare}": _override(True),
}
