"""An HTTPS upstream (r13core/uplink/client.py): its TLS context is made on the first
connection, not when the services open (every worker and `r13 serve` open them; most
never reach the upstream), and it still verifies the upstream's certificate."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from r13core.errors import UpstreamError
from r13core.uplink.client import Upstream


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[int]:
    """A TLS listener on loopback with a self-signed certificate; its port."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass  # the client refused the certificate: what the test expects
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        socket.create_connection(listener.getsockname(), timeout=10).close()  # wake accept()
        thread.join(timeout=30)
        listener.close()


def test_no_tls_context_until_the_first_connection_and_the_certificate_is_checked(
    self_signed: int,
) -> None:
    upstream = Upstream(f"https://127.0.0.1:{self_signed}", connect_timeout=10, timeout=10)
    assert upstream._ssl is None  # opening the services loaded no CA bundle
    with pytest.raises(UpstreamError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        upstream.get_document("/left-pad")
    context = upstream._tls()
    assert context is upstream._ssl and context is upstream._tls()  # made once, kept
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    plain = Upstream("http://127.0.0.1:9")
    assert plain._ssl is None
