"""OpenAPI paths of the cluster (docs/cluster.md): ``GET /_api/cluster``."""

from __future__ import annotations

from typing import Any, Final

from app.openapi_security import _errors, _json

_NODE: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["node", "url", "started", "heartbeat", "age_ms", "state"],
    "properties": {
        "node": {"type": "string"},
        "url": {"type": ["string", "null"]},
        "pid": {"type": ["integer", "null"]},
        "self": {"type": "boolean", "description": "the node that answered"},
        "started": {"type": "number", "description": "Unix seconds"},
        "heartbeat": {"type": "number", "description": "Unix seconds (the database's clock)"},
        "age_ms": {"type": "number"},
        "state": {"type": "string", "enum": ["alive", "stale"]},
        "sample": {"type": ["object", "null"], "description": "the node's latest sample"},
    },
}

CLUSTER_PATHS: Final[dict[str, Any]] = {
    "/_api/cluster": {
        "get": {
            "summary": "The nodes of the cluster with their last heartbeat, alive or stale "
            "(R13_NODE_STALE_AFTER), their latest sample and the cluster total (admin)",
            "responses": {
                "200": _json(
                    "The cluster",
                    {
                        "type": "object",
                        "required": ["clustered", "nodes"],
                        "properties": {
                            "clustered": {"type": "boolean"},
                            "node": {"type": ["string", "null"]},
                            "stale_after_ms": {"type": "integer"},
                            "nodes": {"type": "array", "items": _NODE},
                            "total": {"type": ["object", "null"]},
                        },
                    },
                ),
                **_errors("401", "403"),
            },
        }
    },
}
