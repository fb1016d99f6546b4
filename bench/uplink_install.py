"""`npm install` of a project through r13 (PROXY_MODE) vs directly from its upstream, cold and warm.

Run: .venv/bin/python -m bench.uplink_install [--packages 50] [--rounds 3] [--json FILE]

Two r13 servers on loopback (`r13 serve`, gunicorn, 2 gevent workers each): the
*upstream* holds ``--packages`` small packages; the *proxy* has PROXY_MODE on with
R13_UPLINK_URL naming the upstream. A project depends on all of them. Each round, with
a fresh npm cache every time (so npm fetches every packument and tarball) and no
lockfile (so it resolves every name):

* ``direct`` — npm against the upstream;
* ``proxy-cold`` — npm against the proxy right after `r13 cache prune` (every packument
  and tarball is a miss: fetched upstream, checked, cached);
* ``proxy-warm`` — npm against the proxy again (everything from its cache).

Prints the median wall time of each and the ratios to ``direct``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.servers import R13, exit_on_sigterm, start_r13
from r13core.npm_pack import package_tarball, publish_document


def _publish(url: str, token: str, name: str) -> None:
    tgz = package_tarball(
        {"name": name, "version": "1.0.0", "main": "index.js"},
        {"index.js": f"module.exports = {json.dumps(name)};\n" + "// padding\n" * 200},
    )
    body = publish_document(
        {"name": name, "version": "1.0.0", "description": name}, tgz, registry=url
    )
    req = urllib.request.Request(
        f"{url}/{name}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        if r.status not in (200, 201):
            raise RuntimeError(f"publishing {name}: {r.status}")


def _install(project: Path, registry: str, work: Path) -> float:
    cache = Path(tempfile.mkdtemp(dir=work, prefix="npm-cache-"))
    shutil.rmtree(project / "node_modules", ignore_errors=True)
    (project / ".npmrc").write_text(f"registry={registry}/\n")
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    env.update({"HOME": str(work), "npm_config_cache": str(cache), "npm_config_update_notifier":
                "false", "npm_config_fund": "false", "npm_config_audit": "false"})  # fmt: skip
    started = time.perf_counter()
    out = subprocess.run(
        ["npm", "install", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=project, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    took = time.perf_counter() - started
    shutil.rmtree(cache, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"npm install from {registry} failed:\n{out.stderr[-3000:]}")
    return took


def _prune(data: Path, env: dict[str, str]) -> None:
    out = subprocess.run(
        [str(R13), "--data", str(data), "cache", "prune"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"r13 cache prune failed ({out.returncode}):\n{out.stderr[-3000:]}")


def run(packages: int, rounds: int, work: Path) -> dict[str, Any]:
    """Start both servers, publish, measure; stop everything."""
    common = {"R13_FEATURE_PRIVATE_REGISTRY": "0", "R13_WORKERS": "2"}
    upstream = start_r13(work / "upstream" / "data", common)
    proxy = None
    try:
        assert upstream.token is not None
        names = [f"bench-dep-{i:03d}" for i in range(packages)]
        for name in names:
            _publish(upstream.url, upstream.token, name)
        proxy_env = {**common, "R13_FEATURE_PROXY_MODE": "1", "R13_UPLINK_URL": upstream.url}
        proxy = start_r13(work / "proxy" / "data", proxy_env)
        project = work / "project"
        project.mkdir()
        (project / "package.json").write_text(
            json.dumps(
                {"name": "consumer", "version": "0.0.0",
                 "dependencies": {n: "1.0.0" for n in names}}
            )
        )  # fmt: skip
        times: dict[str, list[float]] = {"direct": [], "proxy-cold": [], "proxy-warm": []}
        assert proxy.data is not None
        for _ in range(rounds):
            times["direct"].append(_install(project, upstream.url, work))
            _prune(proxy.data, proxy_env)
            times["proxy-cold"].append(_install(project, proxy.url, work))
            times["proxy-warm"].append(_install(project, proxy.url, work))
        medians = {k: statistics.median(v) for k, v in times.items()}
        return {
            "packages": packages,
            "rounds": rounds,
            "seconds": times,
            "median_s": medians,
            "ratio_to_direct": {k: v / medians["direct"] for k, v in medians.items()},
        }
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.uplink_install", description=__doc__)
    p.add_argument("--packages", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    exit_on_sigterm()
    if shutil.which("npm") is None:
        print("npm is not on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="r13-uplink-install-") as tmp:
        report = run(args.packages, args.rounds, Path(tmp))
    print(f"npm install, {report['packages']} dependencies, median of {report['rounds']}:")
    for name, value in report["median_s"].items():
        ratio = report["ratio_to_direct"][name]
        print(f"  {name:<11} {value * 1000:8.0f} ms   {ratio:5.2f}x direct")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
