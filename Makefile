# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ROUTER_DATA ?= demo/data/mmlu-pro-demo
PORT ?= 8000
TORCH ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install test test-fast lint run clean image image-test

install: $(STAMP)

# torch first, and its CPU build: letting pip pick on Linux would pull the multi-GB CUDA build.
# The +cpu pin finds a wheel that pip's configuration already offers (a local wheel folder or index,
# as on the project's machines, offline), else one on PyTorch's CPU index; PyPI has no +cpu wheel,
# so the CUDA build is never a candidate. macOS wheels are CPU-only and carry no +cpu tag.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if [ "$$(uname -s)" = Darwin ]; then $(PY) -m pip install -q torch==$(TORCH); \
	elif ! $(PY) -m pip install -q torch==$(TORCH)+cpu 2>/dev/null; then \
	  echo "torch $(TORCH)+cpu not found through pip's configured indexes: trying $(TORCH_CPU_INDEX)"; \
	  $(PY) -m pip install -q --extra-index-url $(TORCH_CPU_INDEX) torch==$(TORCH)+cpu; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: lint
	scripts/test-tools.sh
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
	@test -e "$(ROUTER_DATA)" || { echo "ROUTER_DATA=$(ROUTER_DATA): no such folder or table" \
	  "(unset it to use the shipped demo data, demo/data/mmlu-pro-demo)" >&2; exit 2; }
	$(VENV)/bin/llm-router demo --data $(ROUTER_DATA) --port $(PORT)

# The container image, built with podman as `docker build` builds it (deploy/image/build.sh), its
# router baked from IMAGE_DATA (the build context docker-compose.yaml names).
IMAGE ?= llm-router:local
IMAGE_DATA ?= ../shared/data/routerbench-subset
image:
	IMAGE_DATA=$(IMAGE_DATA) deploy/image/build.sh $(IMAGE)

# Built where no container registry is reached (a debootstrap base, this machine's pip indexes),
# then run from its mounted file system, read-only as its user, against the fake upstream.
# Its own podman store, kept between runs (the base image is cached there): overlay where the
# kernel has it, else vfs (which copies the whole file system at every layer: slow, GBs).
CI_STORE ?= /var/lib/containers/llm-router-ci
CI_PODMAN = podman --root $(CI_STORE) --runroot /run/llm-router-ci \
  --storage-driver $(if $(shell grep -w overlay /proc/filesystems 2>/dev/null),overlay,vfs)
image-test: install
	export PODMAN="$(CI_PODMAN)" IMAGE_DATA=$(IMAGE_DATA) && base=$$(deploy/image/base.sh build) \
	  && runtime=$$(deploy/image/base.sh runtime) \
	  && IMAGE_BASE=$$base IMAGE_RUNTIME_BASE=$$runtime IMAGE_PIP=machine PYTHON=$(PY) deploy/image/build.sh $(IMAGE) \
	  && $(PY) deploy/image/smoke.py $(IMAGE)

clean:
	rm -rf $(VENV) .state
