"""How many requests the load generator itself can push, so its figures can be trusted.

``python -m bench.harness_ceiling [--server trivial|r13] [--duration 5] [--clients 1,2,4]``

Starts ``bench.trivial_server`` (one asyncio process answering 11 bytes of JSON: the
cheapest server there is) or ``r13 serve`` (its ``GET /-/ping``, no storage, no key),
loads one path over ``--concurrency`` connections from 1, 2 and 4 load processes with
the Python engine, and with wrk too when it is installed, and prints req/s per run.
If the Python engine pushes far more than a registry serves, it is not what limits the
registry's figures. Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.drivers import Driver, choose_driver, load
from bench.load import FULL_ACCEPT, HarnessError, encode_get, parse_target
from bench.servers import REPO, Running, exit_on_sigterm, free_port, start, start_r13


def start_server(kind: str, tmp: Path) -> Running:
    if kind == "r13":
        return start_r13(tmp / "data", {"R13_FEATURE_PRIVATE_REGISTRY": "0"})
    port = free_port()
    argv = [sys.executable, "-m", "bench.trivial_server", "--port", str(port)]
    return start("trivial", argv, {}, f"http://127.0.0.1:{port}", tmp / "trivial.log")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.harness_ceiling", description=__doc__)
    p.add_argument("--server", choices=("trivial", "r13"), default="trivial")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--clients", default="1,2,4", help="load processes per run, comma list")
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    exit_on_sigterm()
    drivers: list[Driver] = [choose_driver("python")]
    wrk = choose_driver("wrk")
    if wrk.name == "wrk":
        drivers.append(wrk)
    else:
        print(f"only the Python engine: {wrk.note}", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="r13-ceiling-"))
    runs: list[dict[str, Any]] = []
    try:
        server = start_server(args.server, tmp)
        try:
            target = parse_target(server.url)
            path = "/-/ping" if args.server == "r13" else "/x"
            reqs = [encode_get(target, path, FULL_ACCEPT, None)]
            for clients in (int(c) for c in args.clients.split(",")):
                for driver in drivers:
                    result = load(driver, target, reqs, duration=args.duration,
                                  warmup=args.warmup, concurrency=args.concurrency,
                                  clients=clients)  # fmt: skip
                    if result["errors"]:
                        raise HarnessError(f"{result['errors']} errors against {server.url}")
                    runs.append({"clients": clients, **result})
                    print(f"{args.server} {path}: {driver.name:6} {clients} load process(es) "
                          f"{result['rps']:10.1f} req/s", flush=True)  # fmt: skip
        finally:
            server.stop()
    except HarnessError as exc:
        print(f"bench.harness_ceiling: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.json_out or REPO / "bench" / "results" / f"harness_ceiling-{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"bench": "harness_ceiling", "server": args.server, "runs": runs,
              "params": {"duration": args.duration, "concurrency": args.concurrency}}  # fmt: skip
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
