"""nginx in the side-by-side harness: the static limit, and r13 behind its nginx front.

``nginx-static`` is the physical limit of the machine for the harness's reads: Debian's
nginx serving the same pre-rendered files — each packument (full and abbreviated, chosen
by ``Accept`` as a registry does) and each tarball — written out from packages seeded
through a real r13 (:func:`prepare_static`). ``r13-front`` is r13 behind the config
`r13 nginx-config` prints (app/cli/nginx_cmd.py), R13_ACCEL_REDIRECT on: r13 decides,
nginx sends the tarball bytes. Both run ``--nginx-workers`` worker processes (2).

nginx and wrk are Debian packages: :func:`ensure_debian` installs one when it is missing
(as root, with apt-get; no service starts while apt runs), like tests/pgserver.py.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import urllib.parse
from pathlib import Path

from app.cli.nginx_cmd import Front, render
from bench.load import HarnessError, Target, parse_target
from bench.seeding import Client, Names, packument_path, seed, tarball_path
from bench.servers import Running, free_port, start, start_r13
from tests.pgserver import apt_install

NGINX = Path("/usr/sbin/nginx")
ABBREVIATED = "application/vnd.npm.install-v1+json"


def ensure_debian(binary: Path, package: str) -> Path:
    """``binary``, installing Debian's ``package`` first when it is missing."""
    if binary.exists():
        return binary
    try:
        apt_install(package)
    except RuntimeError as exc:
        raise HarnessError(str(exc)) from None
    if not binary.exists():
        raise HarnessError(f"apt installed {package} but {binary} is still missing")
    return binary


# --------------------------------------------------------------------------- the files


def render_docroot(target: Target, token: str | None, names: Names, docroot: Path) -> int:
    """Write what ``target`` serves for ``names`` as files under ``docroot``: packuments at
    ``full/<name>.json`` and ``abbrev/<name>.json``, tarballs at their URL path. Files
    written."""
    written = 0
    c = Client(target, token)
    try:
        for name in [*names.small, names.big, names.scoped]:
            for variant, accept in (("full", "application/json"), ("abbrev", ABBREVIATED)):
                status, data = c.request("GET", packument_path(name), headers={"Accept": accept})
                if status != 200:
                    raise HarnessError(f"rendering {name}: HTTP {status}")
                out = docroot / variant / f"{name}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
                written += 1
            if name in (names.big, names.scoped):
                continue
            doc = json.loads((docroot / "full" / f"{name}.json").read_bytes())
            path = tarball_path(target, str(doc["versions"]["1.0.0"]["dist"]["tarball"]))
            status, data = c.request("GET", path, headers={"Accept": "*/*"})
            if status != 200:
                raise HarnessError(f"rendering {path}: HTTP {status}")
            out = docroot / urllib.parse.unquote(path).lstrip("/")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            written += 1
    finally:
        c.close()
    return written


def prepare_static(workdir: Path, names: Names, big_versions: int) -> Path:
    """Seed ``names`` into a fresh r13, write its answers out as files, stop it; the
    docroot."""
    docroot = workdir / "docroot"
    r13 = start_r13(workdir / "seed-data", {"R13_FEATURE_PRIVATE_REGISTRY": "0"})
    try:
        target = parse_target(r13.url)
        seed(target, r13.token, names, big_versions)
        render_docroot(target, r13.token, names, docroot)
    finally:
        r13.stop()
    shutil.rmtree(workdir / "seed-data", ignore_errors=True)
    return docroot


# --------------------------------------------------------------------------- nginx


def _main(prefix: Path, workers: int, body: str) -> str:
    temp = "".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Run as root (a bench machine), nginx's workers would be nobody, who cannot read the
    # temp dirs (0700) the files live in: they run as whoever runs the bench.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes {workers};\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "    access_log off;\n"
        "    sendfile on;\n"
        "    tcp_nopush on;\n"
        "    tcp_nodelay on;\n"
        "    keepalive_requests 1000000;\n"
        f"{temp}{body}}}\n"
    )


def static_config(docroot: Path, port: int, prefix: Path, workers: int = 2) -> str:
    """nginx serving the docroot as a registry would: packuments by Accept, tarballs."""
    body = f"""    map $http_accept $variant {{
        default full;
        "~application/vnd\\.npm\\.install-v1\\+json" abbrev;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        types {{ }}
        location = /-/ping {{ default_type application/json; return 200 "{{}}"; }}
        location ~ "/-/[^/]+\\.tgz$" {{ default_type application/octet-stream; }}
        location / {{
            default_type application/json;
            try_files /$variant$uri.json =404;
        }}
    }}
"""
    return _main(prefix, workers, body)


def start_nginx(conf: str, prefix: Path, port: int) -> Running:
    """nginx from ``conf`` (in ``prefix``), in the foreground, once ``/-/ping`` answers."""
    nginx = ensure_debian(NGINX, "nginx")
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(conf)
    argv = [str(nginx), "-p", str(prefix), "-c", str(path), "-g", "daemon off;"]
    return start("nginx", argv, dict(os.environ), f"http://127.0.0.1:{port}", prefix / "log")


def start_static(docroot: Path, prefix: Path, workers: int = 2) -> Running:
    port = free_port()
    return start_nginx(static_config(docroot, port, prefix, workers), prefix, port)


def start_front(workdir: Path, workers: int = 2) -> tuple[Running, Running]:
    """r13 (R13_ACCEL_REDIRECT) behind the nginx of `r13 nginx-config`: (nginx, r13)."""
    port = free_port()
    env = {
        "R13_FEATURE_PRIVATE_REGISTRY": os.environ.get("R13_FEATURE_PRIVATE_REGISTRY", "0"),
        "R13_ACCEL_REDIRECT": "/_blobs/",
        "R13_TRUSTED_PROXIES": "127.0.0.1/32",
        "R13_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    r13 = start_r13(workdir / "data", env)
    assert r13.data is not None
    upstream = r13.url.removeprefix("http://")
    front = Front(
        upstream=upstream,
        blobs=(r13.data / "blobs").resolve(),
        listen=f"127.0.0.1:{port}",
        server_name="127.0.0.1",
    )
    server = render(front, standalone=False)
    # The front's server block, under the same main config as nginx-static (workers, logs).
    indented = "".join(f"    {line}\n" if line else "\n" for line in server.splitlines())
    try:
        nginx = start_nginx(_main(workdir / "nginx", workers, indented), workdir / "nginx", port)
    except BaseException:
        r13.stop()
        raise
    nginx.token = r13.token
    return nginx, r13
