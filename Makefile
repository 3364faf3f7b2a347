# Two commands set up a fresh clone: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-faults test-all clean

install: $(STAMP)

# Where pip takes torch from: empty for pip's own configuration (on the project's machines, a local
# CPU build). On Linux, PyPI's torch is the multi-GB CUDA build: give
# TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one.
TORCH_INDEX ?=

# torch first, pinned: a bare `torch` (or a range) would let pip pick a newer release, and with it
# the CUDA build, before the project's own requirements are looked at.
# A .venv of another Python (a first `make demo` with the wrong python3) is made again: the
# project needs 3.11, and reusing it would fail the same way after `PYTHON=python3.11`. So is one
# without pip (`python3 -m venv` cut short, or refused for want of Debian's python3.11-venv: its
# remains are removed). A python3 of another version is refused before pip runs, not after a
# multi-GB torch download.
$(STAMP): pyproject.toml
	$(PY) -c 'import sys, pip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "morphelites needs Python 3.11, and $(PYTHON) is $$($(PY) -V 2>&1). Give the right one, e.g. make demo PYTHON=python3.11" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The default experiment (shared mode, 64 evaluations): under a minute on 2 cores after the install.
demo: install
	$(PY) -m morphelites train --output demo_results/train-$$(date +%Y%m%d-%H%M%S)

# Tests run in two processes at once (pytest-xdist): the whole-run tests leave a core idle much of
# the time (a process importing its libraries, a test waiting for a signal or a stall), so two
# halve the suite's wall time on 2 cores. TEST_WORKERS=0 runs every test in this one process.
TEST_WORKERS ?= 2
PYTEST = $(PY) -m pytest -q -n $(TEST_WORKERS)

test: install
	$(PYTEST) -m "not slow"

# Every test of a Reliability promise (marked `faults`: tests/test_faults*.py and some whole-run
# tests elsewhere), the slow repetitions included (`make test` runs one of each).
test-faults: install
	$(PYTEST) -m faults

test-all: install
	$(PYTEST)

clean:
	rm -rf $(VENV) demo_results .pytest_cache
