"""The live channel and the WebSocket layer under it (docs/live.md).

* :mod:`app.live.websocket` — RFC 6455 on the gevent worker's socket through
  wsproto: handshakes, limits, timers, close codes, the 1001 on shutdown
  (reused by the terminal, ``GET /_dashboard/terminal``);
* :mod:`app.live.lifecycle` — whether this gunicorn worker still serves;
* :mod:`app.live.channel` — ``GET /_api/live``: who may connect, the r13 frames in
  both subprotocols, config writes;
* :mod:`app.live.hub` — one greenlet per worker that watches the record's
  generation and tails the events log, and fans out to that worker's connections.
"""
