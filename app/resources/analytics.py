"""``/_api/analytics/*``: downloads, publishes and unpublishes per package and day (admin).

Routes::

    GET /_api/analytics/downloads?package=&from=&to=    a daily series (one package or all)
    GET /_api/analytics/publishes?package=&from=&to=
    GET /_api/analytics/unpublishes?package=&from=&to=
    GET /_api/analytics/top?kind=downloads&from=&to=&limit=10

``from``/``to`` are UTC dates ``YYYY-MM-DD`` (inclusive; default: the last 30
days up to today). Every day of the range is in a series, zero-filled. The
answering worker writes its own buffered counts first; other workers' counts
arrive within ``R13_USAGE_FLUSH_INTERVAL``.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import send_media
from r13core.access import Action
from r13core.errors import InvalidValue
from r13core.names import PackageName
from r13core.usage import Analytics, UsageRecorder

SERIES = ("downloads", "publishes", "unpublishes")


class AnalyticsResource:
    """The routes above (``suffix`` per kind)."""

    def __init__(self, analytics: Analytics, guard: Guard, recorder: UsageRecorder | None) -> None:
        self.analytics = analytics
        self.guard = guard
        self.recorder = recorder

    def _prepare(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        resp.cache_control = ["no-store"]
        if self.recorder is not None:
            self.recorder.flush()

    def _series(self, req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        self._prepare(req, resp)
        raw = req.get_param("package")
        package = str(PackageName.parse(raw)) if raw else None
        send_media(
            resp,
            self.analytics.series(
                kind, package=package, first=req.get_param("from"), last=req.get_param("to")
            ),
        )

    def on_get_downloads(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Downloads per day."""
        self._series(req, resp, "downloads")

    def on_get_publishes(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Versions published per day."""
        self._series(req, resp, "publishes")

    def on_get_unpublishes(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Versions unpublished per day."""
        self._series(req, resp, "unpublishes")

    def on_get_top(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The top packages of a range."""
        self._prepare(req, resp)
        raw_limit = req.get_param("limit") or "10"
        if not (raw_limit.isascii() and raw_limit.isdigit()):
            raise InvalidValue(f"limit must be a whole number, not {raw_limit!r}")
        send_media(
            resp,
            self.analytics.top(
                req.get_param("kind") or "downloads",
                first=req.get_param("from"),
                last=req.get_param("to"),
                limit=int(raw_limit),
            ),
        )


def add_routes(
    app: falcon.App[falcon.Request, falcon.Response], resource: AnalyticsResource
) -> None:
    """Register the analytics routes on ``app``."""
    for kind in (*SERIES, "top"):
        app.add_route(f"/_api/analytics/{kind}", resource, suffix=kind)
