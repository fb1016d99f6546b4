"""`r13 nginx-config`: print the nginx front for large deployments (README "The nginx front").

r13 stays the one decision point: every request goes to r13, which decides access, counts
the download and sets the headers; for a tarball it answers ``X-Accel-Redirect`` to an
internal location over the blob dir (R13_ACCEL_REDIRECT) and nginx sends the bytes with
sendfile, answering HEAD and Range itself. nginx also terminates TLS and buffers slow
clients both ways (a slow upload reaches r13 whole; a slow download is nginx's to feed),
so r13's workers are never held by a slow network.

Without ``--standalone`` the output is an ``upstream`` and a ``server`` block for nginx's
``http`` context (``/etc/nginx/conf.d/r13.conf``); with it, a whole ``nginx.conf`` that
keeps its pid, logs and temp files under ``--prefix`` and runs its workers as the data
dir's owner (``user``: the blobs are 0600 files in a 0700 dir) (tests/test_nginx_front.py runs it
in front of a real gunicorn r13).
"""

from __future__ import annotations

import argparse
import pwd
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_LOCATION = "/_blobs/"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "nginx-config",
        help="print an nginx front for r13 (TLS, slow clients, nginx sends tarballs)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--listen", default=None, help="address:port nginx listens on (443 with TLS)")
    p.add_argument("--server-name", default=None, help="default: the host of R13_PUBLIC_URL")
    p.add_argument("--ssl-certificate", default=None, help="PEM certificate chain: enables TLS")
    p.add_argument("--ssl-certificate-key", default=None, help="its private key")
    p.add_argument("--upstream", default=None, help="r13's address (REGISTRY_HOST:REGISTRY_PORT)")
    p.add_argument("--standalone", action="store_true", help="a whole nginx.conf, not a server")
    p.add_argument("--prefix", default=None, help="with --standalone: pid, logs, temp files")
    p.set_defaults(handler=show)


@dataclass(frozen=True)
class Front:
    """What the nginx front needs to know; :func:`render` makes its config."""

    upstream: str  # host:port of r13
    blobs: Path  # the data dir's blobs/ (absolute)
    location: str = DEFAULT_LOCATION  # R13_ACCEL_REDIRECT
    listen: str = "80"
    server_name: str = "_"
    max_body: int = 100 * 1024 * 1024  # R13_MAX_BODY
    certificate: Path | None = None
    certificate_key: Path | None = None
    user: str | None = None  # the data dir's owner: nginx's workers must read its blobs


def _server(front: Front) -> str:
    tls = front.certificate is not None
    listen = f"{front.listen} ssl" if tls else front.listen
    lines = [
        "upstream r13 {",
        f"    server {front.upstream};",
        "    keepalive 64;  # kept-alive connections to r13, per nginx worker",
        "}",
        "",
        "server {",
        f"    listen {listen};",
        f"    server_name {front.server_name};",
    ]
    if tls:
        lines += [
            f"    ssl_certificate {front.certificate};",
            f"    ssl_certificate_key {front.certificate_key};",
            "    ssl_protocols TLSv1.2 TLSv1.3;",
            "    ssl_session_cache shared:r13_tls:10m;",
            "    ssl_session_timeout 1h;",
        ]
    lines += [
        "",
        "    # Slow clients are nginx's, never r13's: an upload is read whole before r13",
        "    # sees it; an answer is taken from r13 at once and fed to the client from here.",
        f"    client_max_body_size {front.max_body};",
        "    client_body_buffer_size 1m;",
        "    client_header_timeout 30s;",
        "    client_body_timeout 120s;",
        "    send_timeout 120s;",
        "    proxy_request_buffering on;",
        "    proxy_buffering on;",
        "    proxy_buffer_size 16k;",
        "    proxy_buffers 64 16k;",
        "    proxy_busy_buffers_size 64k;",
        "",
        "    location / {",
        "        proxy_pass http://r13;",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $http_host;",
        "        # r13 believes this only from R13_TRUSTED_PROXIES (list nginx's address there)",
        "        # and takes the right-most address that is not a trusted proxy.",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_read_timeout 300s;",
        "    }",
        "",
        "    # The live channel and the dashboard's terminal are WebSockets: no buffering.",
        "    location ~ ^/(_api/live|_dashboard/terminal)$ {",
        "        proxy_pass http://r13;",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Upgrade $http_upgrade;",
        '        proxy_set_header Connection "upgrade";',
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        proxy_buffering off;",
        "        proxy_read_timeout 3600s;",
        "    }",
        "",
        "    # Tarball bytes, only after r13 said yes (X-Accel-Redirect); never reachable",
        "    # from outside. nginx's workers must be able to read r13's data dir (0700): run",
        "    # them as r13's user. r13's ETag and headers are kept; nginx answers HEAD and Range.",
        f"    location {front.location} {{",
        "        internal;",
        f"        alias {front.blobs}/;",
        "        types { }",
        "        default_type application/octet-stream;",
        "        etag off;",
        "        add_header ETag $upstream_http_etag always;",
        "        sendfile on;",
        "        tcp_nopush on;",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render(front: Front, *, standalone: bool = False, prefix: Path | None = None) -> str:
    """The config text: a ``server`` for ``http {}``, or a whole nginx.conf under ``prefix``."""
    server = _server(front)
    if not standalone:
        return server
    root = prefix or Path(".")
    indented = "".join(f"    {line}\n" if line else "\n" for line in server.splitlines())
    temp = "".join(
        f"    {kind}_temp_path {root}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = f"user {front.user};\n" if front.user else ""
    return (
        f"{user}"
        "worker_processes auto;\n"
        f"pid {root}/nginx.pid;\n"
        f"error_log {root}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        f"    access_log off;\n"
        "    sendfile on;\n"
        "    tcp_nodelay on;\n"
        "    keepalive_timeout 65s;\n"
        "    keepalive_requests 100000;\n"
        "    server_tokens off;\n"
        f"{temp}\n"
        f"{indented}"
        "}\n"
    )


def front_from(args: argparse.Namespace) -> Front:
    """The front for this data dir and these settings (and the command's options)."""
    settings = args.settings
    server = settings.server
    tls = args.ssl_certificate is not None
    if tls != (args.ssl_certificate_key is not None):
        from app.cli import UsageError

        raise UsageError("--ssl-certificate and --ssl-certificate-key go together")
    host = server.host if server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    public = urlsplit(server.public_url)
    data = Path(args.data)
    try:
        owner: str | None = pwd.getpwuid(data.stat().st_uid).pw_name
    except (OSError, KeyError):
        owner = None
    return Front(
        upstream=args.upstream or f"{host}:{server.port}",
        blobs=(data / "blobs").resolve(),
        location=server.accel_redirect or DEFAULT_LOCATION,
        listen=args.listen or ("443" if tls else "80"),
        server_name=args.server_name or public.hostname or "_",
        max_body=server.max_body,
        certificate=Path(args.ssl_certificate).resolve() if tls else None,
        certificate_key=Path(args.ssl_certificate_key).resolve() if tls else None,
        user=owner,
    )


def show(args: argparse.Namespace) -> int:
    front = front_from(args)
    prefix = Path(args.prefix).resolve() if args.prefix else None
    print(f"# r13's nginx front; start r13 with R13_ACCEL_REDIRECT={front.location} and")
    print("# R13_TRUSTED_PROXIES=<nginx's address>/32 (README: The nginx front).")
    print(render(front, standalone=args.standalone, prefix=prefix), end="")
    return 0
