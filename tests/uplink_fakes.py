"""A small npm upstream that misbehaves on demand, for the uplink's fault tests.

:class:`FaultyUpstream` serves packuments (full and abbreviated, with ETags and
304s), tarballs, npm audit and search from memory on a loopback port, in
threads of this process, and can be told to answer any path:

* ``ok`` — as a registry would;
* ``slow`` — hold the answer until the test releases it (or 30 s pass), so an
  uplink with a short timeout gives up — no sleeping in the test itself;
* ``5xx`` — 503 with a JSON error;
* ``reset`` — close the connection with a TCP RST, nothing sent;
* ``truncated`` — a Content-Length larger than the bytes sent, then close;
* ``bad-integrity`` — tarball bytes other than those the packument's integrity names.

It counts requests per path (what single flight and the private-name tests look
at), and ``gate`` holds every answer until the test opens it (to make misses
concurrent for sure).
"""

from __future__ import annotations

import base64
import collections
import gzip
import hashlib
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from r13core.signatures import PublicKey, public_key_der, sign
from tests.npm_builders import package_tgz


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class FaultyUpstream:
    """The upstream at :attr:`url` (start with :meth:`start`, stop with :meth:`stop`)."""

    def __init__(self) -> None:
        self.tarballs: dict[str, dict[str, bytes]] = {}
        self.advisories: dict[str, list[dict[str, Any]]] = {}
        self.signing_key: Any = None  # an EC private key: versions signed, keys served
        self.bad_signatures: set[tuple[str, str]] = set()
        self.attestations: dict[str, dict[str, Any]] = {}
        self.modes: dict[str, str] = {}
        self.default_mode = "ok"
        self.counts: collections.Counter[str] = collections.Counter()
        self.seen_headers: list[dict[str, str]] = []
        self.seen_by_path: dict[str, dict[str, str]] = {}  # the last request's headers
        self.gate = threading.Event()
        self.gate.set()
        self.release = threading.Event()
        self.waiting = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- content ------------------------------------------------------------------------

    def add(self, name: str, *versions: str, tgz: bytes | None = None) -> None:
        for version in versions:
            self.tarballs.setdefault(name, {})[version] = tgz or package_tgz(name, version)

    def tarball_path(self, name: str, version: str) -> str:
        return f"/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"

    def packument(self, name: str, *, abbreviated: bool = False) -> dict[str, Any]:
        versions = {}
        for version, data in self.tarballs[name].items():
            doc: dict[str, Any] = {
                "name": name,
                "version": version,
                "dist": {
                    "tarball": self.url + self.tarball_path(name, version),
                    "integrity": integrity(data),
                    "shasum": hashlib.sha1(data).hexdigest(),
                },
            }
            if not abbreviated:
                doc["description"] = f"{name} from upstream"
            if self.signing_key is not None:
                signed_version = "0.0.0" if (name, version) in self.bad_signatures else version
                sig = sign(self.signing_key, name, signed_version, integrity(data))
                doc["dist"]["signatures"] = [{"keyid": self.keyid(), "sig": sig}]
            versions[version] = doc
        latest = sorted(self.tarballs[name])[-1]
        out: dict[str, Any] = {"name": name, "dist-tags": {"latest": latest}, "versions": versions}
        if not abbreviated:
            out["_id"] = name
            out["readme"] = "upstream readme"
            out["time"] = {"created": "2020-01-01T00:00:00.000Z"}
        else:
            out["modified"] = "2020-01-01T00:00:00.000Z"
        return out

    def keyid(self) -> str:
        return PublicKey.from_der(public_key_der(self.signing_key)).keyid

    def keys_document(self) -> dict[str, Any]:
        if self.signing_key is None:
            return {"keys": []}
        return {"keys": [PublicKey.from_der(public_key_der(self.signing_key)).as_json()]}

    # -- life ---------------------------------------------------------------------------

    def start(self) -> FaultyUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def mode_for(self, path: str) -> str:
        return self.modes.get(path, self.default_mode)

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    # -- serving ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # head and body are two writes

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.end_headers()
                self.wfile.write(body)

            def _reset(self) -> None:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True

            def _serve(self, method: str) -> None:
                path = urlsplit(self.path).path
                with upstream._lock:
                    upstream.counts[path] += 1
                    upstream.seen_headers.append(dict(self.headers.items()))
                    upstream.seen_by_path[path] = dict(self.headers.items())
                body = b""
                if method == "POST":
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.waiting.release()
                upstream.gate.wait(30)
                mode = upstream.mode_for(path)
                if mode == "slow":
                    upstream.release.wait(30)
                    mode = "ok"
                if mode == "5xx":
                    self._send(503, b'{"error":"down for maintenance"}', "application/json")
                    return
                if mode == "reset":
                    self._reset()
                    return
                status, data, ctype, headers = self._answer(method, path, body)
                if status < 0:  # answered already (a 304)
                    return
                if mode == "bad-integrity" and path.endswith(".tgz") and status == 200:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                if mode == "truncated":
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data) + 1000))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, data, ctype, **headers)

            def _answer(
                self, method: str, path: str, body: bytes
            ) -> tuple[int, bytes, str, dict[str, str]]:
                if method == "POST" and path == "/-/npm/v1/security/advisories/bulk":
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    asked = json.loads(body or b"{}")
                    found = {n: upstream.advisories[n] for n in asked if n in upstream.advisories}
                    return 200, json.dumps(found).encode(), "application/json", {}
                if path == "/-/npm/v1/keys":
                    doc = upstream.keys_document()
                    return 200, json.dumps(doc).encode(), "application/json", {}
                if path.startswith("/-/npm/v1/attestations/"):
                    spec = unquote(path[len("/-/npm/v1/attestations/") :])
                    bundle = upstream.attestations.get(spec)
                    if bundle is None:
                        return 404, b'{"error":"not found"}', "application/json", {}
                    return 200, json.dumps(bundle).encode(), "application/json", {}
                if path == "/-/v1/search":
                    text = parse_qs(urlsplit(self.path).query).get("text", [""])[0]
                    objects = [
                        {
                            "package": {"name": n, "version": sorted(v)[-1]},
                            "score": {"final": 0.5},
                            "searchScore": 1.0,
                        }
                        for n, v in sorted(upstream.tarballs.items())
                        if text in n
                    ]
                    doc = {"objects": objects, "total": len(objects), "time": "now"}
                    return 200, json.dumps(doc).encode(), "application/json", {}
                if "/-/" in path and path.endswith(".tgz"):
                    name, _, file = unquote(path[1:]).partition("/-/")
                    bare = name.rsplit("/", 1)[-1]
                    version = file[len(bare) + 1 : -len(".tgz")]
                    data = upstream.tarballs.get(name, {}).get(version)
                    if data is None:
                        return 404, b'{"error":"not found"}', "application/json", {}
                    return 200, data, "application/octet-stream", {}
                name = unquote(path[1:])
                if name not in upstream.tarballs:
                    return 404, b'{"error":"not found"}', "application/json", {}
                abbreviated = "vnd.npm.install-v1" in (self.headers.get("Accept") or "")
                raw = json.dumps(upstream.packument(name, abbreviated=abbreviated)).encode()
                etag = '"' + hashlib.sha1(raw).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return -1, b"", "", {}
                return 200, raw, "application/json", {"ETag": etag}

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler
