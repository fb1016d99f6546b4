"""gunicorn's HTTP/1 response, with a whole small answer sent in one write.

gunicorn writes a response's head (``send_headers``) and then each body chunk with a
``sendall`` of its own: two system calls (and, with TCP_NODELAY, two TCP segments) for
every packument r13 sends, and on loopback a ``send`` costs the sender the receiver's
TCP work too. Under load that was the largest part of a small packument GET
(bench/RESULTS.md, "The hot read path"): a third of the worker's samples. This
subclass changes three things and nothing else about the bytes on the wire:

- when the application hands over the whole body at once (a length-delimited,
  non-chunked response whose first chunk is exactly ``Content-Length`` bytes, which is
  what falcon does for ``resp.data``), the head and the body leave together: one
  ``send``, then ``sendall`` for whatever the socket did not take;
  every other case (streams, files through sendfile, chunked, HEAD, 204/304, a body
  in several chunks) is gunicorn's own code;
- the ``Date`` header is formatted once per second instead of once per response (the
  same string: it has one-second resolution);
- a header gunicorn already accepted in this worker is not checked again: gunicorn
  validates every header of every response (two regular expressions, case folding, the
  hop-by-hop test: ~0.9 us a header here, and r13 sends nine on a packument), and most of
  r13's repeat exactly (content type, Vary, the limit's policy, an ETag while a package
  does not change). A name that passed as an ordinary header (not Content-Length, not
  hop-by-hop) and a value that passed with nothing to strip are remembered (bounded
  sets); a header whose name and value are both remembered is appended as gunicorn would
  append it. Anything else, and anything not exactly a ``str``, goes through gunicorn's
  own check, one header at a time in the same order.

:func:`install` puts it in place in a worker (app/gunicorn_conf.py's ``post_fork``);
tests/test_gunicorn_response.py checks that both classes write the same bytes and keep,
refuse and set the same for any header list.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi

_BaseResponse: Any = wsgi.Response


class _DateCache:
    """``Date`` values (RFC 9110 IMF-fixdate), remade when the second changes."""

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.value = formatdate(second, usegmt=True)
            self.second = second
        return self.value


_DATE = _DateCache()

# What gunicorn's Response.process_headers accepted in this process (see the docstring).
_PLAIN_NAMES: set[str] = set()
_PLAIN_VALUES: set[str] = set()
NAMES_KEPT = 256
VALUES_KEPT = 4096  # emptied when full: changing values (counts, lengths) come and go


class CoalescingResponse(_BaseResponse):  # type: ignore[misc]
    """gunicorn's ``Response``; a body given in one piece goes out with its head."""

    # gunicorn's own attributes (set in its __init__), typed for mypy.
    headers_sent: bool
    sent: int

    def process_headers(self, headers: Any) -> None:
        # gunicorn's, skipping the checks of a header it accepted before (module docstring).
        names, values, append = _PLAIN_NAMES, _PLAIN_VALUES, self.headers.append
        for name, value in headers:
            plain = type(name) is str and type(value) is str
            if plain and name in names and value in values:
                append((name, value))
                continue
            super().process_headers(((name, value),))  # raises as gunicorn does
            if not plain:
                continue
            if (
                len(names) < NAMES_KEPT
                and name not in names
                and name.lower() != "content-length"
                and not util.is_hoppish(name)
            ):
                names.add(name)
            if value == value.strip(" \t"):
                if len(values) >= VALUES_KEPT:
                    values.clear()
                values.add(value)

    def default_headers(self) -> list[str]:
        # gunicorn's (gunicorn/http/wsgi.py), with the Date string made once per second.
        if self.upgrade:
            connection = "upgrade"
        elif self.should_close():
            connection = "close"
        else:
            connection = "keep-alive"
        headers = [
            f"HTTP/{self.req.version[0]}.{self.req.version[1]} {self.status}\r\n",
            f"Server: {self.version}\r\n",
            f"Date: {_DATE.now()}\r\n",
            f"Connection: {connection}\r\n",
        ]
        if self.chunked:
            headers.append("Transfer-Encoding: chunked\r\n")
        return headers

    def head_bytes(self) -> bytes:
        """The status line and headers, as gunicorn's ``send_headers`` writes them."""
        tosend = self.default_headers()
        tosend.extend([f"{k}: {v}\r\n" for k, v in self.headers])
        return util.to_bytestring("".join(tosend) + "\r\n", "latin-1")  # type: ignore[no-any-return]

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        util.write(self.sock, self.head_bytes())
        self.headers_sent = True

    def write(self, arg: Any) -> None:
        if (
            self.headers_sent
            or self.chunked
            or self.sent
            or self._omits_body
            or not isinstance(arg, bytes)
            or self.response_length is None
            or len(arg) != self.response_length
            or not arg
        ):
            super().write(arg)
            return
        data = self.head_bytes() + arg
        self.headers_sent = True
        self.sent = len(arg)
        # One send first: a small answer fits the socket's buffer at once, and gevent's
        # sendall asks the kernel for the buffer's size (getsockopt) before every send.
        sent = self.sock.send(data)
        if sent < len(data):
            util.write(self.sock, memoryview(data)[sent:])


# What the subclass relies on in gunicorn's Response (gunicorn 27's; checked at install).
_NEEDED = ("_omits_body", "response_length", "sent", "chunked", "headers_sent", "upgrade")


def install() -> bool:
    """Make gunicorn build this worker's HTTP/1 responses from :class:`CoalescingResponse`
    (``gunicorn.http.wsgi.create`` looks the class up when each request comes in).

    False (gunicorn's own class stays) when the installed gunicorn's Response lacks what
    the subclass relies on.
    """
    probe = _BaseResponse.__new__(_BaseResponse)
    try:
        _BaseResponse.__init__(probe, None, None, None)
    except Exception:  # another constructor: not the gunicorn this was written against
        return False
    if not all(hasattr(probe, name) for name in _NEEDED) or not hasattr(probe, "process_headers"):
        return False
    wsgi.Response = CoalescingResponse
    return True
