"""The harness's scenarios: what each one loads, the publish loop, and a whole run.

``run`` seeds the registry (bench/seeding.py), runs each scenario through a
driver (bench/drivers.py over bench/load.py) and returns a report
(bench/report.py); ``run_probe`` loads one fixed path without seeding.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.drivers import Driver, load
from bench.load import (
    FULL_ACCEPT,
    NPM_ENCODING,
    HarnessError,
    LoadResult,
    Target,
    encode_get,
    summarize,
)
from bench.report import envelope
from bench.seeding import Client, Names, Seeded, attach, packument_path, publish_body, seed

ABBREVIATED = "application/vnd.npm.install-v1+json"
# Read scenarios in report order, then publish.
READ_SCENARIOS = (
    "small-full",
    "small-abbrev",
    "big-full",
    "scoped-full",
    "tarball",
    "auth-full",
    "small-gzip",
    "big-gzip",
)
# Asked with npm's Accept-Encoding: a server may answer them compressed, so their bytes
# differ between servers (the static ones answer them uncompressed and skip them).
COMPRESSED_SCENARIOS = ("small-gzip", "big-gzip")
ALL_SCENARIOS = (*READ_SCENARIOS, "publish")
DESCRIPTIONS = {
    "small-full": "small packument, full",
    "small-abbrev": "small packument, abbreviated (install-v1)",
    "big-full": "packument with many versions, full",
    "scoped-full": "scoped packument (@bench%2fname)",
    "tarball": "tarball GET (dist.tarball)",
    "auth-full": "small packument, full, with Bearer token",
    "small-gzip": "small packument, full, Accept-Encoding as npm sends it (gzip,deflate)",
    "big-gzip": "packument with many versions, full, Accept-Encoding as npm sends it",
    "publish": "publish a new version (sequential)",
}


@dataclass
class Options:
    target: Target
    token: str | None
    duration: float = 10.0
    concurrency: int = 32
    clients: int = 2
    warmup: float = 1.0
    driver: Driver = field(default_factory=lambda: Driver("python", "python"))
    requests: int = 0  # a scenario ends after this many responses (0: after duration)
    server_pid: int | None = None  # the server's root process: CPU per request is measured

    def params(self) -> dict[str, Any]:
        """The load parameters, as a report lists them."""
        return {
            "duration": self.duration,
            "concurrency": self.concurrency,
            "clients": self.clients,
            "warmup": self.warmup,
            "requests": self.requests,
            **self.driver.as_dict(),
        }

    def load(self, requests: list[bytes]) -> dict[str, Any]:
        """Load the target with ``requests`` (round robin) under these options; the summary.

        With ``server_pid``, the warm-up runs apart and the summary adds the server's CPU
        time (its process and every descendant, user + system) per measured request
        (``cpu_us_per_request``) and the cores it used (``server_cores``): what a request
        costs the server, which holds when other jobs share the machine and req/s does not.
        """
        common: dict[str, Any] = {
            "concurrency": self.concurrency,
            "clients": self.clients,
            "max_responses": self.requests,
        }
        if self.server_pid is None:
            return load(
                self.driver, self.target, requests, duration=self.duration,
                warmup=self.warmup, **common,
            )  # fmt: skip
        if self.warmup > 0:
            load(self.driver, self.target, requests, duration=self.warmup, warmup=0, **common)
        before = tree_cpu_seconds(self.server_pid)
        out = load(self.driver, self.target, requests, duration=self.duration, warmup=0, **common)
        cpu = tree_cpu_seconds(self.server_pid) - before
        if out.get("requests"):
            out["cpu_us_per_request"] = round(cpu * 1e6 / out["requests"], 1)
        out["server_cores"] = round(cpu / self.duration, 3)
        return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants so far."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue  # gone since the listing
        total += times.user + times.system
    return total


def scenario_requests(opts: Options, seeded: Seeded, name: str) -> list[bytes]:
    t, n = opts.target, seeded.names
    if name == "small-full":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, None) for p in n.small]
    if name == "small-abbrev":
        return [encode_get(t, packument_path(p), ABBREVIATED, None) for p in n.small]
    if name == "big-full":
        return [encode_get(t, packument_path(n.big), FULL_ACCEPT, None)]
    if name == "scoped-full":
        return [encode_get(t, packument_path(n.scoped), FULL_ACCEPT, None)]
    if name == "tarball":
        return [encode_get(t, p, "*/*", None) for p in seeded.tarball_paths]
    if name == "auth-full":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, opts.token) for p in n.small]
    if name == "small-gzip":
        return [encode_get(t, packument_path(p), FULL_ACCEPT, None, NPM_ENCODING) for p in n.small]
    if name == "big-gzip":
        return [encode_get(t, packument_path(n.big), FULL_ACCEPT, None, NPM_ENCODING)]
    raise HarnessError(f"unknown scenario {name!r}")


def run_read(opts: Options, seeded: Seeded, name: str) -> dict[str, Any]:
    """One read scenario through the chosen driver."""
    return opts.load(scenario_requests(opts, seeded, name))


def run_publish(opts: Options, seeded: Seeded) -> dict[str, Any]:
    """Sequential publishes of new versions of one package, on one keep-alive connection."""
    c = Client(opts.target, opts.token)
    lat: list[int] = []
    errors = 0
    statuses: dict[int, int] = {}
    name = seeded.names.pub
    # Build bodies ahead of time so only the request is timed.
    t0 = time.perf_counter()
    end = t0 + opts.duration
    try:
        while time.perf_counter() < end and not (opts.requests and len(lat) >= opts.requests):
            v = f"1.{seeded.pub_next}.0"
            seeded.pub_next += 1
            body, _ = publish_body(opts.target, name, v)
            s = time.perf_counter_ns()
            try:
                status, _data = c.request("PUT", packument_path(name), body=body, auth=True)
            except OSError:
                status = 0
                c.close()
            lat.append((time.perf_counter_ns() - s) // 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if not 200 <= status < 300:
                errors += 1
    finally:
        c.close()
    res = LoadResult(count=len(lat), errors=errors, latencies_us=array("q", lat))
    res.statuses = statuses
    wall = max(1e-9, time.perf_counter() - t0)
    out = summarize(res, wall)
    out["driver"] = "python"  # one connection, sequential: never wrk
    return out


def run(
    opts: Options,
    names: Names,
    big_versions: int,
    scenarios: Iterable[str] = ALL_SCENARIOS,
    label: str = "",
    log: Callable[[str], None] = lambda s: None,
    *,
    preseeded: bool = False,
) -> dict[str, Any]:
    """Seed (or, ``preseeded``, read back what is already there), then each scenario."""
    if preseeded:
        seeded = attach(opts.target, opts.token, names, big_versions)
        log(f"read back the pre-seeded packages in {seeded.seconds:.1f} s")
    else:
        seeded = seed(opts.target, opts.token, names, big_versions, log=log)
        log(f"seeded {seeded.publishes} publishes in {seeded.seconds:.1f} s")
    results: dict[str, Any] = {}
    for name in scenarios:
        log(f"running {name} for {opts.duration} s")
        if name == "publish":
            results[name] = run_publish(opts, seeded)
        else:
            if name == "auth-full" and not opts.token:
                continue
            results[name] = run_read(opts, seeded, name)
        s = results[name]
        log(
            f"  {name}: {s['rps']} req/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms "
            f"errors {s['errors']}"
        )
    report = envelope(
        label,
        opts.target.url,
        {**opts.params(), "small_packages": names.small_count, "big_versions": big_versions},
        results,
    )
    report["prefix"] = names.prefix
    report["seed"] = {"publishes": seeded.publishes, "seconds": round(seeded.seconds, 2)}
    return report


def run_probe(opts: Options, path: str, label: str = "") -> dict[str, Any]:
    """One read scenario on a fixed path, no seeding: the load engine's own ceiling."""
    if not path.startswith("/"):
        raise HarnessError("--probe PATH must start with /")
    result = opts.load([encode_get(opts.target, path, FULL_ACCEPT, opts.token)])
    return envelope(
        label, opts.target.url, {**opts.params(), "probe": path}, {f"probe {path}": result}
    )
