"""Two revisions of r13 side by side through gunicorn: did a change cost throughput?

``python -m bench.revisions --before REV [--paths /small,/-/ping] [--rounds 3] [--duration 6]``

Exports ``REV`` (any git revision of this repository) with ``git archive`` into a
temporary directory, builds its C core there with this interpreter (``setup.py
build_ext --inplace``: the same dependencies, its own sources), and alternates
(bench/ab.py) the server of that tree ("before") with the server of the working tree
("after") on one data dir, round by round, for each path. ``python -P`` keeps each
gunicorn on its own tree's ``app`` and ``r13core`` (``PYTHONPATH`` names the tree; the
interpreter does not put the working directory first), and each server runs in its own
tree's directory, which gunicorn puts first on ``sys.path`` when it imports its config
and the app: until 2026-11-28 both ran in this repository, so both sides ran the working
tree and this harness compared a tree with itself (bench/RESULTS.md marks the figures it
gave then). A small package is published first, and every GET carries the admin key
(PRIVATE_REGISTRY on, the default). Prints req/s per run, the medians and after/before
per path; writes a JSON report. The figure to read is the ratio within one run: this
machine's absolute req/s move from run to run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import ab
from bench.load import HarnessError
from bench.security_overhead import WORKERS, publish_small
from bench.servers import REPO, exit_on_sigterm

# -P: the working directory does not come first on sys.path, PYTHONPATH (the tree) does.
GUNICORN = [sys.executable, "-P", "-m", "gunicorn", "--config", "python:app.gunicorn_conf",
            "app.wsgi:application"]  # fmt: skip


def export(rev: str, into: Path) -> Path:
    """``rev`` of this repository, unpacked under ``into`` with its C core built."""
    try:
        blob = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev],
            check=True,
            capture_output=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise HarnessError(f"git archive {rev}: {exc.stderr.decode(errors='replace')}") from None
    tree = into / "tree"
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tree, filter="data")
    build = subprocess.run(
        [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
        cwd=tree,
        capture_output=True,
    )
    if build.returncode != 0:
        raise HarnessError(f"building {rev}'s C core failed:\n{build.stderr.decode()[-2000:]}")
    return tree


def run_child(tree: Path, script: str, argv: Sequence[str], what: str) -> dict[str, Any]:
    """Run the bench file ``script`` with ``--child`` and ``argv`` over ``tree`` (``python
    -P`` with ``PYTHONPATH`` naming the tree: its own ``app`` and ``r13core``, in its
    directory); the JSON object its last line prints. SystemExit naming ``what`` if it
    fails."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-P", str(Path(script).resolve()), "--child", *argv]
    proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed in {tree}:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.revisions", description=__doc__)
    p.add_argument("--before", required=True, help="the git revision to compare against")
    p.add_argument("--paths", default="/small,/-/ping", help="comma-separated GET paths")
    ab.add_arguments(p, rounds=3, duration=6.0)
    args = p.parse_args(argv)
    exit_on_sigterm()
    root = Path(tempfile.mkdtemp(prefix="r13-revisions-"))
    try:
        before = export(args.before, root)
        report: dict[str, Any] = {}
        driver = None
        for path in [x for x in args.paths.split(",") if x]:
            data = root / f"data{len(report)}"
            admin = publish_small(data)
            # gunicorn imports its config module and the app with the working directory
            # first on sys.path: each side runs in its own tree, or both run this one.
            variants = [
                ab.Variant("before", {**WORKERS, "PYTHONPATH": str(before)}, GUNICORN,
                           token=admin, cwd=before),
                ab.Variant("after", {**WORKERS, "PYTHONPATH": str(REPO)}, GUNICORN,
                           token=admin, cwd=REPO),
            ]  # fmt: skip
            driver, results = ab.alternate(data, variants, path, args, ab.log)
            med = ab.medians(results)
            ratio = med["after"] / med["before"]
            print(f"{path}: median before {med['before']:.1f}, after {med['after']:.1f} req/s; "
                  f"after/before {ratio:.3f}")  # fmt: skip
            report[path] = {"median_rps": med, "after_over_before": round(ratio, 4),
                            "runs": results}  # fmt: skip
    except HarnessError as exc:
        print(f"bench.revisions: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert driver is not None
    summary = {path: {k: v for k, v in r.items() if k != "runs"} for path, r in report.items()}
    summary["before"] = args.before
    results = {
        f"{path} {side}": r["runs"][side] for path, r in report.items() for side in r["runs"]
    }
    print(f"report: {ab.write_report('revisions', args, driver, results, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
