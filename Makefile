# fedpipe — every target builds on `make install` (a .venv from the exact pins in pipelines/locks/).
PYTHON ?= python3.11
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
ROUNDS ?= 5
IMAGE ?= fedpipe:$(VERSION)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: install run test test-fast lint format compile compile-check bench image clean

install: $(STAMP) $(TOOLS_STAMP)

$(STAMP): pipelines/locks/runtime.txt pipelines/locks/no-deps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r pipelines/locks/runtime.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r pipelines/locks/no-deps.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Test servers (SeaweedFS's `weed` as each site's S3 server, fake-gcs-server) and test tools live
# in their own environment, apart from the pins TensorFlow Federated needs.
$(TOOLS_STAMP): pipelines/locks/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r pipelines/locks/tools.txt
	touch $@

run: install
	$(VENV)/bin/fedpipe run --local --rounds $(ROUNDS)

test: install
	$(PY) -m ruff check pipelines components tests
	$(PY) -m pytest

# The edit loop: everything but kfp.local pipeline runs (e2e) and tests over ~30 s (slow).
test-fast: install
	$(PY) -m pytest -m "not e2e and not slow"

lint: install
	$(PY) -m ruff check pipelines components tests
	$(PY) -m ruff format --check pipelines components tests

format: install
	$(PY) -m ruff format pipelines components tests
	$(PY) -m ruff check --fix pipelines components tests

compile: install
	$(VENV)/bin/fedpipe compile --sites sites --policies policies --out dist

compile-check: install
	$(VENV)/bin/fedpipe compile-check --sites sites --policies policies \
		--golden pipelines/compiled/federated-training.yaml

bench: install
	$(PY) -m pipelines.bench

# The task image (Dockerfile) with docker or podman, whichever is installed; IMAGE=REPO:TAG to name it.
image:
	@engine=$$(command -v docker || command -v podman) || { \
		echo "make image: neither docker nor podman is installed; install one of them (or build the Dockerfile on a machine that has one)" >&2; exit 1; }; \
	$$engine info >/dev/null 2>&1 || { \
		echo "make image: $$engine is installed but cannot reach its daemon/service ($$engine info fails); start it and retry" >&2; exit 1; }; \
	$$engine build --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) -t $(IMAGE) .

clean:
	rm -rf dist runs
