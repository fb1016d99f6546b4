"""The OpenAPI 3.1 document of ``/_api/*`` (and ``/metrics``), served at
``/_api/openapi.json``.

Written by hand: each feature adds its paths to ``PATHS`` (a test checks
that every ``/_api`` route the app registers is documented here).
"""

from __future__ import annotations

from typing import Any, Final

from app.openapi_analytics import ANALYTICS_PATHS
from app.openapi_cluster import CLUSTER_PATHS
from app.openapi_dashboard import DASHBOARD_PATHS
from app.openapi_hooks import HOOK_PATHS
from app.openapi_live import LIVE_PATHS
from app.openapi_security import SECURITY_PATHS
from app.openapi_uplink import UPLINK_PATHS
from r13core._version import __version__

_ERROR: Final = {"$ref": "#/components/schemas/Error"}
_NUM: Final = {"type": ["number", "null"]}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    texts = {
        "400": "Invalid request",
        "401": "A key is needed (Authorization: Bearer r13_...)",
        "403": "Not allowed (see the access hook in app/monitoring.py)",
        "404": "Not found, or switched off",
        "503": "Not available yet",
    }
    return {code: _json(texts[code], _ERROR) for code in codes}


SAMPLE: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One sample of the monitor (rates are per second over `interval_s`).",
    "properties": {
        "seq": {"type": "integer", "description": "Sample number, grows across samplers"},
        "ts": {"type": "number", "description": "Unix time of the sample, s"},
        "interval_s": {"type": "number"},
        "sampler_pid": {"type": "integer", "description": "Worker that took the sample"},
        "master_pid": {"type": "integer"},
        "server_started": {"type": "number", "description": "Unix time the server started"},
        "cpu_percent": {"type": "number", "description": "Process tree CPU, % of all cores"},
        "memory_rss_bytes": {"type": "integer"},
        "memory_percent": {"type": "number", "description": "Process tree RSS, % of RAM"},
        "processes": {"type": "integer"},
        "system_cpu_percent": {"type": "number"},
        "system_memory_percent": {"type": "number"},
        "requests": {"type": "integer", "description": "Requests in this interval"},
        "requests_per_s": {"type": "number"},
        "active_requests": {"type": "integer"},
        "bytes_in_per_s": {"type": "number"},
        "bytes_out_per_s": {"type": "number"},
        "latency_avg_ms": _NUM,
        "latency_p50_ms": _NUM,
        "latency_p95_ms": _NUM,
        "latency_p99_ms": _NUM,
        "errors_per_s": {"type": "number", "description": "5xx per second"},
        "client_errors_per_s": {"type": "number", "description": "4xx per second"},
        "error_rate_percent": {"type": "number", "description": "5xx / requests, %"},
        "requests_total": {"type": "integer"},
        "errors_total": {"type": "integer"},
        "bytes_in_total": {"type": "integer"},
        "bytes_out_total": {"type": "integer"},
        "packages": {"type": ["integer", "null"]},
        "versions": {"type": ["integer", "null"]},
        "publishes_per_s": {"type": "number"},
        "unpublishes_per_s": {"type": "number"},
        "downloads_per_s": {"type": "number"},
        "publishes_total": {"type": "integer"},
        "unpublishes_total": {"type": "integer"},
        "downloads_total": {"type": "integer"},
        "cache_hit_rate": _NUM,
        "cache_hits_total": {"type": "integer"},
        "cache_misses_total": {"type": "integer"},
        "uplink_requests_per_s": {"type": "number"},
        "uplink_errors_per_s": {"type": "number"},
        "uplink_stale_per_s": {"type": "number"},
        "uplink_latency_ms": _NUM,
        "uplink_requests_total": {"type": "integer"},
        "uplink_errors_total": {"type": "integer"},
        "uplink_stale_total": {"type": "integer"},
        "uplink_breaker": {
            "type": ["string", "null"],
            "enum": ["closed", "open", "half-open", None],
        },
        "uplink_breaker_failures": {"type": ["integer", "null"]},
        "ws_connections": {"type": "integer"},
        "ws_messages_per_s": {"type": "number"},
        "ws_heartbeat_ms": _NUM,
        "config_generation": {"type": ["integer", "null"]},
        "config_updates": {"type": "integer"},
        "workers": {"type": "integer"},
    },
    "required": ["seq", "ts", "sampler_pid", "requests_total"],
    "additionalProperties": True,
}

ALERT: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "rule": {"type": "string", "enum": ["cpu", "memory", "latency", "error_rate"]},
        "metric": {"type": "string"},
        "threshold": {"type": "number"},
        "started": {"type": "number"},
        "ended": {"type": ["number", "null"]},
        "peak": {"type": "number"},
        "value": {"type": "number"},
        "state": {"type": "string", "enum": ["active", "cleared"]},
    },
}

STATS: Final = {
    "type": ["object", "null"],
    "properties": {k: {"type": "number"} for k in ("min", "avg", "max", "p50", "p95", "p99")},
}

ADVISORY: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A security advisory answered by npm/pnpm/bun audit.",
    "properties": {
        "id": {"type": "integer"},
        "package": {"type": "string", "description": "Package name (also module_name)"},
        "vulnerable_versions": {"type": "string", "description": "A semver range"},
        "patched_versions": {"type": "string"},
        "severity": {"type": "string", "enum": ["info", "low", "moderate", "high", "critical"]},
        "title": {"type": "string"},
        "url": {"type": "string"},
    },
    "required": ["package", "vulnerable_versions"],
}

PATHS: Final[dict[str, Any]] = {
    "/_api/advisories": {
        "get": {
            "summary": "Every advisory (admin key)",
            "responses": {
                "200": _json("Advisories", {"type": "array", "items": ADVISORY}),
                **_errors("401", "403"),
            },
        },
        "post": {
            "summary": "Add an advisory (admin key)",
            "requestBody": {"content": {"application/json": {"schema": ADVISORY}}},
            "responses": {
                "201": _json("The stored advisory", ADVISORY),
                **_errors("400", "401", "403"),
            },
        },
    },
    "/_api/advisories/{advisory_id}": {
        "delete": {
            "summary": "Remove an advisory (admin key)",
            "parameters": [
                {
                    "name": "advisory_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": _json("Removed", {"type": "object"}),
                **_errors("401", "403", "404"),
            },
        }
    },
    "/_api/config": {
        "get": {
            "summary": "The live 13-byte record, decoded",
            "responses": {"200": _json("The record", {"type": "object"})},
        }
    },
    "/_api/config/layout": {
        "get": {
            "summary": "The record's fields (offset, size, maximum, meaning), flags (bit, meaning)",
            "responses": {"200": _json("The layout", {"type": "object"})},
        }
    },
    "/_api/session": {
        "post": {
            "summary": "Sign in to the dashboard (admin user's password or admin key): sets "
            "the HttpOnly r13_session cookie; the body carries the CSRF token (docs/dashboard.md)",
            "responses": {
                "201": _json("The session", {"type": "object"}),
                **_errors("400", "401", "403"),
            },
        },
        "get": {
            "summary": "The current session, or signed_in false",
            "responses": {"200": _json("The session", {"type": "object"}), **_errors("401", "403")},
        },
        "delete": {
            "summary": "Sign out: end every session of the caller's user or key, clear the cookie",
            "responses": {"200": _json("The ended sessions", {"type": "object"}), **_errors("403")},
        },
    },
    "/_api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
        }
    },
    "/_api/performance/metrics": {
        "get": {
            "summary": "The latest monitor sample",
            "responses": {
                "200": _json("The sample", {"$ref": "#/components/schemas/Sample"}),
                **_errors("403", "503"),
            },
        }
    },
    "/_api/performance/summary": {
        "get": {
            "summary": "Min/avg/max/percentiles over the history, uptime and totals",
            "responses": {
                "200": _json(
                    "The summary",
                    {
                        "type": "object",
                        "properties": {
                            "samples": {"type": "integer"},
                            "uptime_s": _NUM,
                            "totals": {"type": "object"},
                            "figures": {"type": "object", "additionalProperties": STATS},
                        },
                    },
                ),
                **_errors("403"),
            },
        }
    },
    "/_api/performance/alerts": {
        "get": {
            "summary": "Active alerts, the recent alert log and the rules",
            "responses": {
                "200": _json(
                    "Alerts",
                    {
                        "type": "object",
                        "properties": {
                            "active": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Alert"},
                            },
                            "recent": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Alert"},
                            },
                            "rules": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                ),
                **_errors("403"),
            },
        }
    },
    "/_api/performance/history": {
        "get": {
            "summary": "Every kept sample (METRICS_HISTORY_SIZE), oldest first",
            "responses": {
                "200": _json(
                    "History",
                    {
                        "type": "object",
                        "properties": {
                            "samples": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Sample"},
                            }
                        },
                    },
                ),
                **_errors("403"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text exposition (format 0.0.4) of every counter and gauge",
            "responses": {
                "200": {
                    "description": "Metrics",
                    "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                },
                **_errors("403", "404"),
            },
        }
    },
    **SECURITY_PATHS,
    **ANALYTICS_PATHS,
    **LIVE_PATHS,
    **UPLINK_PATHS,
    **HOOK_PATHS,
    **DASHBOARD_PATHS,
    **CLUSTER_PATHS,
}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "r13 API", "version": __version__},
        "paths": PATHS,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                },
                "Sample": SAMPLE,
                "Alert": ALERT,
            }
        },
    }
