#!/usr/bin/env bash
# Every test: lint, types, then pytest (unit, property, multi-process,
# sanitizer build of the C core, end-to-end), then every benchmark in a short
# mode (bench/ci.py: fails when a benchmark errors, never on a speed).
# Called by `make test`. With arguments, they go to pytest and the benchmarks
# are skipped (a targeted run).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
$V/ruff check .
$V/ruff format --check .
$V/mypy
# pnpm, yarn classic and bun at pinned versions for the end-to-end tests (cached in .tools/).
$V/python -m tests.e2e.clients
# Debian's Chromium for the dashboard's browser tests (tests/browser/), installed when missing.
$V/python -m tests.browser.chromium
# Debian's PostgreSQL server and nginx for the multi-node tests (tests/pgserver.py), when missing.
$V/python -m tests.pgserver
if [ "$#" -eq 0 ]; then
    # Every test, on R13_TEST_JOBS workers (default 2), whole files per worker so each
    # module's shared servers (a cluster, a front) start once.
    $V/python -m pytest -n "${R13_TEST_JOBS:-2}" --dist loadfile
else
    $V/python -m pytest "$@"
fi
if [ "$#" -eq 0 ]; then
    # JSON reports land in bench/results/ci/ (git-ignored).
    $V/python -m bench.ci
fi
