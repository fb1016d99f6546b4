"""The OpenAPI paths of ``/_api/analytics/*`` (merged into app/openapi.py's PATHS)."""

from __future__ import annotations

from typing import Any, Final

from r13core.usage import DEFAULT_DAYS, KINDS, MAX_DAYS, MAX_TOP

_ERR: Final = {"$ref": "#/components/schemas/Error"}
_DAY: Final = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS: Final = {
    "400": _json("A malformed date or name, from after to, a range too long, a bad limit", _ERR),
    "401": _json("A valid key is needed (Authorization: Bearer r13_...)", _ERR),
    "403": _json("The key may not do this (admin needed)", _ERR),
}

_RANGE: Final = [
    {
        "name": "from",
        "in": "query",
        "required": False,
        "description": f"First UTC day (inclusive); default: {DEFAULT_DAYS - 1} days before `to`",
        "schema": _DAY,
    },
    {
        "name": "to",
        "in": "query",
        "required": False,
        "description": f"Last UTC day (inclusive); default: today. At most {MAX_DAYS} days.",
        "schema": _DAY,
    },
]

SERIES: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Daily counts, every day of the range present (0 when none).",
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "package": {"type": ["string", "null"], "description": "null: all packages"},
        "from": _DAY,
        "to": _DAY,
        "total": {"type": "integer"},
        "days": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"day": _DAY, "count": {"type": "integer"}},
                "required": ["day", "count"],
            },
        },
    },
    "required": ["kind", "package", "from", "to", "total", "days"],
}

TOP: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "from": _DAY,
        "to": _DAY,
        "packages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"package": {"type": "string"}, "count": {"type": "integer"}},
            },
        },
    },
    "required": ["kind", "from", "to", "packages"],
}


def _series(what: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": f"{what} per UTC day, of one package or all (admin key)",
            "parameters": [
                {
                    "name": "package",
                    "in": "query",
                    "required": False,
                    "description": "A package name (`@scope/name`); absent: every package",
                    "schema": {"type": "string"},
                },
                *_RANGE,
            ],
            "responses": {"200": _json(what, SERIES), **_ERRORS},
        }
    }


ANALYTICS_PATHS: Final[dict[str, Any]] = {
    "/_api/analytics/downloads": _series("Tarball downloads (200 answers to GET)"),
    "/_api/analytics/publishes": _series("Versions published"),
    "/_api/analytics/unpublishes": _series("Versions unpublished"),
    "/_api/analytics/top": {
        "get": {
            "summary": "The packages with the most downloads (or publishes...) over a range",
            "parameters": [
                {
                    "name": "kind",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(KINDS), "default": "downloads"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": 10},
                },
                *_RANGE,
            ],
            "responses": {"200": _json("Highest first, ties by name", TOP), **_ERRORS},
        }
    },
}
