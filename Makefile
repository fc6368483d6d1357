# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROUTER_DATA ?= ../shared/data/routerbench-subset
PORT ?= 8000

.PHONY: install test test-fast lint run clean

install: $(STAMP)

# torch first, pinned: the CPU build lies on disk; letting pip pick would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: lint
	$(PY) -m pytest -q -p no:cacheprovider

# the fast tier: pure unit tests (no subprocess, Redis or encoder model), seconds
FAST_TESTS := tests/unit tests/router_core/test_decision.py tests/router_core/test_scores.py \
	tests/router_core/test_index.py
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider $(FAST_TESTS)

# ruff (pycodestyle, pyflakes; every Python file) and mypy (strict for router_core, untyped bodies
# checked in gateway and devtools), both configured in pyproject.toml
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

run: install
	$(VENV)/bin/llm-router demo --data $(ROUTER_DATA) --port $(PORT)

clean:
	rm -rf $(VENV) .state
