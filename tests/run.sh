#!/usr/bin/env bash
# Every test: lint, types, then pytest (unit, property, multi-process,
# sanitizer build of the C core, end-to-end). Called by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
$V/ruff check .
$V/ruff format --check .
$V/mypy
# pnpm, yarn classic and bun at pinned versions for the end-to-end tests (cached in .tools/).
$V/python -m tests.e2e.clients
$V/python -m pytest "$@"
