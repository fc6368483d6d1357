# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROUTER_DATA ?= ../shared/data/routerbench-subset
PORT ?= 8000

.PHONY: install test lint run clean

install: $(STAMP)

# torch first, pinned: the CPU build lies on disk; letting pip pick would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -p no:cacheprovider

# ruff (pycodestyle, pyflakes) and mypy (strict for router_core), both configured in pyproject.toml
LINT_PATHS := router_core
lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)

run: install
	$(VENV)/bin/llm-router demo --data $(ROUTER_DATA) --port $(PORT)

clean:
	rm -rf $(VENV) .state
