"""Several real r13 nodes over one PostgreSQL behind a real nginx: the multi-node fixture.

:func:`start_cluster` starts ``n`` nodes — each `r13 serve` (gunicorn, gevent, 2
workers) with its own data dir and port, all on one PostgreSQL database
(R13_DATABASE_URL) — and an nginx (/usr/sbin/nginx, from a config in a temp dir,
``daemon off``, a child process stopped by its PID) that balances over them.

The first node starts alone: it migrates the database, seeds the 13-byte record,
makes the signing key ring and the first admin key. Its key ring (docs/signatures.md:
every node must sign with the same keys) and admin key are copied into the other
nodes' data dirs before they start together. Tarballs live where the storage
puts them; ``shared_blobs`` points every node's ``blobs/`` at one directory (the
shared-directory layout) for a storage that keeps them in files.
Every node names every other one and the balancer in R13_ALLOWED_HOSTS, so a
packument fetched through any of them links tarballs on the host asked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.conftest import Server
from tests.pgserver import NGINX
from tests.ports import free_port

_NGINX_CONF = """
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 200m;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream r13 {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://r13;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


@dataclass
class Balancer:
    """One nginx in front of the nodes."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, upstreams: list[int]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams
        )
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = self.root / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(user=user, root=self.root, servers=servers, port=self.port)
        )
        log = (self.root / "nginx.out").open("ab")
        self.proc = subprocess.Popen(
            [str(NGINX), "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/-/ping", timeout=10) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(self.root / 'error.log').read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: nginx's own stop signal
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Cluster:
    """The nodes and the balancer; ``admin_key`` works on every node."""

    nodes: list[Server]
    balancer: Balancer
    admin_key: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.balancer.url


def _node(root: Path, index: int, port: int, env: dict[str, str]) -> Server:
    node = Server(data=root / f"node{index}", port=port, log=root / f"node{index}.log")
    node.extra_env = {**env, "R13_NODE_ID": f"node{index}", "R13_NODE_URL": node.url}
    return node


@contextmanager
def start_cluster(
    root: Path,
    database_url: str,
    n: int = 3,
    *,
    shared_blobs: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """``n`` nodes over ``database_url`` behind nginx, stopped (by PID) when the block ends."""
    ports = [free_port() for _ in range(n)]
    balancer = Balancer(root / "nginx", free_port())
    hosts = ",".join(f"127.0.0.1:{p}" for p in [*ports, balancer.port])
    common = {
        "R13_DATABASE_URL": database_url,
        "R13_ALLOWED_HOSTS": hosts,
        "METRICS_COLLECTION_INTERVAL": "200",
        **(env or {}),
    }
    nodes = [_node(root, i, p, common) for i, p in enumerate(ports)]
    cluster = Cluster(nodes, balancer)
    blobs = root / "blobs"
    try:
        if shared_blobs:
            blobs.mkdir(mode=0o700)
            for node in nodes:
                node.data.mkdir(mode=0o700)
                (node.data / "blobs").symlink_to(blobs)
        first, rest = nodes[0], nodes[1:]
        first.start()
        cluster.admin_key = first.admin_key
        for node in rest:
            node.data.mkdir(mode=0o700, exist_ok=True)
            shutil.copytree(first.data / "signing", node.data / "signing")
            admin = node.data / "admin.key"
            admin.write_text(first.admin_key + "\n")
            admin.chmod(0o600)
        _start_all(rest)
        balancer.start([node.port for node in nodes])
        yield cluster
    finally:
        balancer.stop()
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()


def _start_all(nodes: list[Server]) -> None:
    """Start several nodes at once (each waits for its own ping)."""
    errors: list[BaseException] = []

    def start(node: Server) -> None:
        try:
            node.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
