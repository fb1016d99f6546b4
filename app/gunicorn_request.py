"""Per-request costs of gunicorn's request handling that do not change within a worker.

Profiled under load (``bench.profile_hot`` on a worker answering ``GET /small``,
bench/RESULTS.md "Issue 15, fifth session"), three things gunicorn does for every request
give the same answer for every request of a worker (the first two were ~7 % of the
worker's samples; the third, which a sampling profiler mostly misses, ~16 % of its CPU):

- **wsgi.errors.** ``base_environ`` made a new ``WSGIErrorsWrapper`` for every request,
  and its constructor looks the ``gunicorn.error`` logger up by name
  (``logging.getLogger``, under the logging module's lock: a gevent lock once the worker
  is patched) to copy the streams of its handlers. :class:`ErrorStreams` is one object per
  worker that finds the same streams when something is written, which is rare (r13 logs
  through its own loggers), and so also follows a log file reopened by ``USR1``.
- **The forwarded-headers trust check.** Every request asked whether its peer is a trusted
  proxy (``forwarded_allow_ips``), and gunicorn parsed the peer's address with
  ``ipaddress.ip_address`` to compare it with the list even when the list is empty, which
  r13's configuration always makes it (r13 reads client addresses itself, from
  ``R13_TRUSTED_PROXIES``; gunicorn trusts no forwarded header). With an empty list the
  answer depends only on the kind of peer: a TCP peer (an address tuple) is never trusted,
  a Unix socket peer always is, as in gunicorn's own check. :func:`peer_trust` answers
  that without the parse and defers to gunicorn's check whenever the list is not empty.
- **Reading a setting.** gunicorn reads its settings as attributes of its ``Config``
  (``cfg.keepalive``, ``cfg.limit_request_line``, ``cfg.post_request`` ...: dozens per
  request in the parser, the worker loop and the response), and ``Config`` answers them
  from ``__getattr__``, which Python calls only after the ordinary lookup has failed, and
  that failure raises and catches an ``AttributeError`` every time. :func:`freeze` copies
  each setting's value onto the worker's ``Config`` as an ordinary attribute (gunicorn
  reads settings in a worker; it sets them in the master while it loads its
  configuration, before it forks), so the ordinary lookup finds it; a later
  ``cfg.set(name, value)`` in the worker refreshes the copy.

:func:`install` puts the first two in place in a worker and :func:`freeze` the third
(app/gunicorn_conf.py's ``post_fork``), or they leave gunicorn as it is when the installed
version lacks what they replace; tests/test_gunicorn_request.py holds them to gunicorn's
own answers.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.http import message, wsgi

ERROR_LOGGER = "gunicorn.error"


class ErrorStreams(io.RawIOBase):
    """``wsgi.errors`` of every request of a worker: what gunicorn's ``WSGIErrorsWrapper``
    writes to (standard error when ``errorlog`` is ``-``, and every error-log handler with a
    stream), found at each write."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.log = logging.getLogger(ERROR_LOGGER)

    @property
    def streams(self) -> list[Any]:
        """The streams a write goes to, in gunicorn's order."""
        handlers = self.log.handlers
        found: list[Any] = []
        if self.cfg.errorlog == "-":
            # gunicorn's own first handler is that stderr one; it writes to sys.stderr itself.
            found.append(sys.stderr)
            handlers = handlers[1:]
        found.extend(h.stream for h in handlers if hasattr(h, "stream"))
        return found

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> None:  # as gunicorn's: returns None
        for stream in self.streams:
            try:
                stream.write(data)
            except UnicodeError:
                stream.write(data.encode("UTF-8"))
            stream.flush()


class _SharedErrors:
    """Stands in for gunicorn's ``WSGIErrorsWrapper(cfg)``: one :class:`ErrorStreams` per
    configuration (a worker has one)."""

    def __init__(self) -> None:
        self.current: ErrorStreams | None = None

    def __call__(self, cfg: Any) -> ErrorStreams:
        current = self.current
        if current is None or current.cfg is not cfg:
            current = self.current = ErrorStreams(cfg)
        return current


def peer_trust(gunicorns: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """gunicorn's ``HeaderPolicy._peer_is_trusted_proxy``, answered without parsing the
    peer's address when ``forwarded_allow_ips`` is empty (then nothing is in the list)."""

    def _peer_is_trusted_proxy(self: Any) -> bool:
        if not self.cfg.forwarded_allow_ips:
            return not isinstance(self.peer_addr, tuple)
        return gunicorns(self)

    _peer_is_trusted_proxy.gunicorns = gunicorns  # type: ignore[attr-defined]
    return _peer_is_trusted_proxy


def install() -> bool:
    """Put :class:`ErrorStreams` and :func:`peer_trust` where gunicorn looks them up.

    False (gunicorn stays as it is) when its request set-up is not the one these were
    written against (gunicorn 27: ``gunicorn.http.wsgi.WSGIErrorsWrapper`` called by
    ``base_environ``, ``HeaderPolicy._peer_is_trusted_proxy`` in gunicorn.http.message).
    Installing twice changes nothing more.
    """
    policy = getattr(message, "HeaderPolicy", None)
    check = getattr(policy, "_peer_is_trusted_proxy", None)
    if policy is None or check is None or not hasattr(wsgi, "WSGIErrorsWrapper"):
        return False
    if not isinstance(wsgi.WSGIErrorsWrapper, _SharedErrors):
        wsgi.WSGIErrorsWrapper = _SharedErrors()
    if not hasattr(check, "gunicorns"):
        policy._peer_is_trusted_proxy = peer_trust(check)
    return True


def freeze(cfg: Any) -> int:
    """Copy every setting's value onto ``cfg`` (gunicorn's ``Config`` of this worker) as an
    ordinary attribute; the number copied. Settings that ``Config`` itself defines as a
    property or method (``sendfile``, ``worker_class`` ...) are left to it. 0 (nothing
    changed) for an object that is not a gunicorn ``Config`` as these were written against.
    """
    settings = getattr(cfg, "settings", None)
    if not isinstance(settings, dict) or not callable(getattr(cfg, "set", None)):
        return 0
    kind = type(cfg)
    names = frozenset(name for name in settings if not hasattr(kind, name))
    for name in names:
        # Config.__setattr__ refuses a setting's name (it would be ignored by reads through
        # __getattr__); here being read first, instead of __getattr__, is the point.
        object.__setattr__(cfg, name, settings[name].get())
    if not hasattr(cfg.set, "frozen"):
        gunicorns_set = cfg.set

        def set_and_copy(name: str, value: Any) -> None:
            gunicorns_set(name, value)
            if name in names:
                object.__setattr__(cfg, name, settings[name].get())

        set_and_copy.frozen = names  # type: ignore[attr-defined]
        object.__setattr__(cfg, "set", set_and_copy)
    return len(names)
