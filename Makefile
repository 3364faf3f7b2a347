# Two commands set up a fresh clone: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-faults test-all benchmarks clean

install: $(STAMP)

# torch first, pinned: a bare `torch` would make pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The default experiment (shared mode, 64 evaluations): under a minute on 2 cores after the install.
demo: install
	$(PY) -m morphelites train --output demo_results/train-$$(date +%Y%m%d-%H%M%S)

test: install
	$(PY) -m pytest -q -m "not slow"

# Every fault-injection test, the slow repetitions included (`make test` runs one of each).
test-faults: install
	$(PY) -m pytest -q tests/test_faults.py tests/test_faults_bad_input.py tests/test_faults_checkpoints.py

test-all: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo_results .pytest_cache
