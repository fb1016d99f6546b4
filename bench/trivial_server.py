"""A trivial HTTP/1.1 server for measuring the load harness's own ceiling.

``python -m bench.trivial_server --port P [--workers N]`` answers every request with
the same tiny JSON (201 for PUT), keep-alive, on 127.0.0.1. N forked processes
accept on one listening socket. It is deliberately as cheap as asyncio allows, so that
``python -m bench.http --probe /x`` against it shows how many requests the harness
can push, not how fast a registry is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence

BODY = b'{"ok":true}'
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
CREATED = OK.replace(b"200 OK", b"201 Created", 1)


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            need = end + 4
            i = head.lower().find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                need += int(head[i + 17 : j if j >= 0 else len(head)])
            if len(buf) < need:
                break
            out.append(CREATED if head.startswith(b"PUT ") else OK)
            buf = buf[need:]
        self.buf = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


def _serve(sock: socket.socket) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def on_signal() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        server = await loop.create_server(_Proto, sock=sock)
        async with server:
            await stop

    asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trivial_server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    print(f"http://127.0.0.1:{sock.getsockname()[1]} {os.getpid()}", flush=True)
    children = []
    for _ in range(max(1, args.workers) - 1):
        pid = os.fork()
        if pid == 0:
            _serve(sock)
            os._exit(0)
        children.append(pid)
    try:
        _serve(sock)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
