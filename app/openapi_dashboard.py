"""The OpenAPI paths the dashboard's Users and Packages sections add (merged into
app/openapi.py's PATHS): ``/_api/users*`` and ``/_api/packages/overview``."""

from __future__ import annotations

from typing import Any, Final

_ERR: Final = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    texts = {
        "400": "A missing or malformed field (the message says which)",
        "401": "A valid key or session is needed",
        "403": "Not allowed (admin needed)",
        "404": "No such user or package",
        "409": "The name is taken",
    }
    return {code: _json(texts[code], _ERR) for code in codes}


_ROLE: Final = {"type": "string", "enum": ["reader", "publisher", "admin"]}
USER: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "role": _ROLE,
        "email": {"type": "string"},
        "created": {"type": "number", "description": "Unix time"},
    },
}
_REVOKED: Final = {"type": "array", "items": {"type": "string"}, "description": "Token ids"}
_NAME: Final = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


OVERVIEW: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "license": {"type": ["string", "null"]},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "distTags": {"type": "object", "additionalProperties": {"type": "string"}},
        "versions": {
            "type": "array",
            "description": "Newest first",
            "items": {
                "type": "object",
                "properties": {
                    "version": {"type": "string"},
                    "published": {"type": ["string", "null"], "format": "date-time"},
                    "deprecated": {"type": ["string", "null"]},
                    "types": {"type": "boolean", "description": "Declares types/typings"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "maintainers": {"type": "array", "items": {"type": "object"}},
        "created": {"type": ["string", "null"]},
        "modified": {"type": ["string", "null"]},
        "types": {"type": "string", "enum": ["included", "definitely-typed", "none"]},
        "deprecated": {"type": "boolean", "description": "Every version is deprecated"},
        "readmeHtml": {
            "type": "string",
            "description": "The README rendered from markdown and sanitised on the server "
            "(no script, event handlers, style or javascript: URLs; r13core/readme.py)",
        },
    },
}

DASHBOARD_PATHS: Final[dict[str, Any]] = {
    "/_api/users": {
        "get": {
            "summary": "Every user (admin)",
            "responses": {
                "200": _json(
                    "Users", {"type": "object", "properties": {"users": {"type": "array"}}}
                ),
                **_errors("401", "403"),
            },
        },
        "post": {
            "summary": "Add a user (admin; audited as user.add)",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["name", "password", "role"],
                    "properties": {
                        "name": {"type": "string"},
                        "password": {"type": "string"},
                        "role": _ROLE,
                        "email": {"type": "string"},
                    },
                }
            ),
            "responses": {"201": _json("The user", USER), **_errors("400", "401", "403", "409")},
        },
    },
    "/_api/users/{name}": {
        "parameters": _NAME,
        "get": {
            "summary": "One user (admin)",
            "responses": {"200": _json("The user", USER), **_errors("401", "403", "404")},
        },
        "patch": {
            "summary": "Change a user's role; tokens above the new ceiling are revoked "
            "(admin; audited as user.role)",
            "requestBody": _body({"type": "object", "properties": {"role": _ROLE}}),
            "responses": {
                "200": _json(
                    "The user and the revoked token ids",
                    {**USER, "properties": {**USER["properties"], "revoked": _REVOKED}},
                ),
                **_errors("400", "401", "403", "404"),
            },
        },
        "delete": {
            "summary": "Remove a user and revoke its keys; the name stays reserved "
            "(admin; audited as user.remove)",
            "responses": {
                "200": _json("Removed", {"type": "object"}),
                **_errors("401", "403", "404"),
            },
        },
    },
    "/_api/users/{name}/password": {
        "parameters": _NAME,
        "post": {
            "summary": "Set a password, or without one generate one (shown once in the "
            "answer); every token of the user is revoked (admin; audited as user.passwd)",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"password": {"type": "string"}}}
                    }
                },
            },
            "responses": {
                "200": _json(
                    "Done",
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "password": {"type": "string", "description": "Only when generated"},
                            "revoked": _REVOKED,
                        },
                    },
                ),
                **_errors("400", "401", "403", "404"),
            },
        },
    },
    "/_api/packages/overview": {
        "get": {
            "summary": "One package as the dashboard shows it: versions, dist-tags, "
            "deprecations, owners, types badge, the README as sanitised HTML "
            "(whoever may read the package)",
            "parameters": [
                {"name": "name", "in": "query", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": _json("The package", OVERVIEW),
                **_errors("400", "401", "403", "404"),
            },
        }
    },
}
