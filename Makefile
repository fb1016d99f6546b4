# r13 — the two set-up commands are `make serve` and `make test`.
# Everything installs into ./.venv; the C core is rebuilt when csrc/ changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.r13-installed
NATIVE := r13core/.native-built
CSRC   := $(wildcard csrc/*.c csrc/*.h csrc/build_native.py) r13core/_version.py

.PHONY: serve test build lint check-c clean

serve: build
	$(VENV)/bin/r13 serve

test: build
	bash tests/run.sh

VENDOR := app/static/dashboard/vendor/.built

# Bytecode of r13's own modules: an editable install leaves none, and where
# PYTHONDONTWRITEBYTECODE is set no process ever writes it, so every start (the CLI,
# each worker) compiled ~170 modules from source: ~0.6 s of CPU (bench/RESULTS.md,
# "Cold start and idle memory"). compileall skips what is current; a stale file is
# ignored by Python (it checks the source's mtime), so this only ever saves time.
build: $(NATIVE) $(VENDOR)
	$(PY) -m compileall -q r13core app


# The dashboard's libraries from npm (dashboard/package-lock.json), copied into app/static/.
$(VENDOR): dashboard/package.json dashboard/package-lock.json dashboard/vendor.py | $(PY)
	$(PY) dashboard/vendor.py
	touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# An editable install does not rebuild C on its own: do it when a source is newer.
$(NATIVE): $(STAMP) $(CSRC)
	$(PY) setup.py --quiet build_ext --inplace
	touch $@

lint: build
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf build r13core/_native* $(NATIVE) *.egg-info app/static/dashboard/vendor
