"""Which load generator drives a run: the Python engine of bench/load.py, or wrk.

wrk is not on a fresh machine (it is the Debian package ``wrk``): asking for it there
falls back to the Python engine, and every result records the driver that really ran
(``driver``, ``driver_requested``, ``driver_note``), so a figure always says what made it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

from bench.load import (
    FULL_ACCEPT,
    HarnessError,
    LoadSpec,
    Target,
    run_parallel,
    split,
    summarize,
)

DRIVERS = ("python", "wrk", "auto")


# --------------------------------------------------------------------------- wrk driver

WRK_LUA = """
local paths = {%(paths)s}
local i = %(start)d
wrk.method = "GET"
wrk.headers["Accept"] = %(accept)s
wrk.headers["Accept-Encoding"] = %(encoding)s
wrk.headers["User-Agent"] = "r13-bench/1 (wrk)"
%(auth)s
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format(nil, paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "R13BENCH {\\"requests\\": %%d, \\"status_errors\\": %%d, \\"socket_errors\\": %%d, " ..
    "\\"p50_us\\": %%d, \\"p99_us\\": %%d, \\"mean_us\\": %%.1f, \\"max_us\\": %%d, " ..
    "\\"bytes\\": %%d, \\"duration_us\\": %%d}\\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    summary.bytes, summary.duration))
end
"""


def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal here


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


@dataclass(frozen=True)
class Driver:
    """The load generator that runs, and why, when it is not the one asked for."""

    name: str  # "python" or "wrk"
    requested: str
    note: str = ""

    def describe(self) -> str:
        return self.name + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, str]:
        return {"driver": self.name, "driver_requested": self.requested, "driver_note": self.note}


def choose_driver(requested: str, *, counted: bool = False) -> Driver:
    """``python``, ``wrk`` or ``auto`` (wrk when installed); wrk falls back to Python when it
    is not installed or when the run is bounded by a response count (wrk has no such bound).
    """
    if requested not in DRIVERS:
        raise HarnessError(f"unknown driver {requested!r} (choose {', '.join(DRIVERS)})")
    if requested == "python":
        return Driver("python", requested)
    if not wrk_available():
        return Driver("python", requested, "wrk is not installed (Debian package: wrk)")
    if counted:
        return Driver("python", requested, "wrk cannot stop after a number of requests")
    return Driver("wrk", requested)


def wrk_script(reqs: list[bytes]) -> str:
    """wrk's Lua script for these requests: their paths in turn, with the Accept,
    Accept-Encoding and Authorization they carry (the same for all of them)."""
    paths: list[str] = []
    accept = FULL_ACCEPT
    encoding = "identity"
    auth = ""
    for r in reqs:
        lines = r.decode("latin-1").split("\r\n")
        paths.append(lines[0].split(" ")[1])
        for line in lines[1:]:
            if line.startswith("Accept: "):
                accept = line[8:]
            if line.startswith("Accept-Encoding: "):
                encoding = line[17:]
            if line.startswith("Authorization: "):
                auth = f'wrk.headers["Authorization"] = {_lua_str(line[15:])}'
    return WRK_LUA % {
        "paths": ", ".join(_lua_str(p) for p in paths),
        "start": 0,
        "accept": _lua_str(accept),
        "encoding": _lua_str(encoding),
        "auth": auth,
    }


def run_wrk(
    target: Target, reqs: list[bytes], duration: float, connections: int, threads: int
) -> dict[str, Any]:
    """Drive GETs with wrk for ``duration`` s; same paths and headers as the Python engine."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(wrk_script(reqs))
        lua = f.name
    try:
        cmd = [
            "wrk",
            f"-t{max(1, min(threads, connections))}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            lua,
            f"http://{target.hostport}/",
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    finally:
        os.unlink(lua)
    for line in proc.stdout.splitlines():
        if line.startswith("R13BENCH "):
            d = json.loads(line[9:])
            dur = d["duration_us"] / 1e6 or duration
            return {
                "requests": d["requests"],
                "errors": d["status_errors"] + d["socket_errors"],
                "rps": round(d["requests"] / dur, 1),
                "p50_ms": round(d["p50_us"] / 1000, 3),
                "p99_ms": round(d["p99_us"] / 1000, 3),
                "mean_ms": round(d["mean_us"] / 1000, 3),
                "max_ms": round(d["max_us"] / 1000, 3),
                "mb_per_s": round(d["bytes"] / dur / 1e6, 2),
                "statuses": {},
            }
    raise HarnessError(f"wrk gave no result: {proc.stderr.strip()[:300]}")


def load(
    driver: Driver,
    target: Target,
    reqs: list[bytes],
    *,
    duration: float,
    warmup: float,
    concurrency: int,
    clients: int,
    max_responses: int = 0,
) -> dict[str, Any]:
    """Run ``reqs`` in rotation with ``driver``; the summary, with the driver recorded."""
    if driver.name == "wrk":
        if warmup > 0:
            run_wrk(target, reqs, warmup, concurrency, clients)
        out = run_wrk(target, reqs, duration, concurrency, clients)
    else:
        if max_responses:
            # Every process needs a share of at least one, or it would run to the deadline.
            clients = min(clients, max_responses)
        conns = split(concurrency, clients)
        caps = split(max_responses, len(conns)) if max_responses else [0] * len(conns)
        specs = [
            LoadSpec(
                target.host,
                target.port,
                reqs,
                c,
                duration,
                warmup,
                offset=sum(conns[:i]) * 7,
                max_responses=caps[i],
            )
            for i, c in enumerate(conns)
        ]
        res = run_parallel(specs)
        out = summarize(res, res.elapsed)
    out["driver"] = driver.name
    return out
