#!/usr/bin/env bash
# r13 vs Verdaccio in one run; see bench/compare.py for options and environment.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench.compare "$@"
