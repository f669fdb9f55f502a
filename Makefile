# ferrotok's tasks. `make help` lists them; CI runs `make test` (see .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
# Extended differential run on ../shared/corpus when it is there (CI has it; users may not).
FULL_CORPUS := $(if $(wildcard $(SHARED)/corpus/english.jsonl),--full-corpus,)

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

.PHONY: develop
develop: $(PY) ## Build and install ferrotok (release) with its test dependencies into .venv
	$(PY) -m pip install --quiet -e '.[test]'

# The test suite's build: the same, in Cargo's `test-ext` profile (release code, thin LTO; see
# Cargo.toml), which builds a minute or more faster than fat LTO.
.PHONY: develop-test
develop-test: $(PY) ## The same for the test suite, in the faster-building test-ext profile (thin LTO)
	MATURIN_PEP517_ARGS="--profile test-ext" $(PY) -m pip install --quiet -e '.[test]'

.PHONY: fmt
fmt: ## Format the Rust code
	cargo fmt --all

.PHONY: lint
lint: ## cargo fmt --check and clippy -D warnings on every crate
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

.PHONY: test-rust
test-rust: ## Rust unit, property and CLI snapshot tests
	CI=true INSTA_UPDATE=no cargo test --workspace --exclude ferrotok-py --locked
	@# Every snapshot must belong to a test that still exists.
	@for f in crates/ferrotok-cli/tests/snapshots/*.snap; do \
	  t=$$(basename "$$f" .snap | sed -E 's/^cli__//; s/-[0-9]+$$//'); \
	  grep -q "fn $$t()" crates/ferrotok-cli/tests/cli.rs || { echo "unreferenced snapshot: $$f"; exit 1; }; \
	done

.PHONY: test-python
test-python: develop-test ## pytest (differential vs tiktoken, properties, errors, CLI), stubtest, mypy
	@# One worker per core (pytest-xdist); work stealing evens out the long corpus tests.
	$(PY) -m pytest -q -n auto --dist worksteal $(FULL_CORPUS)
	$(PY) -m mypy.stubtest ferrotok._core
	$(PY) -m mypy

.PHONY: test
test: lint test-rust test-python ## Everything CI runs

.PHONY: bench
bench: develop ## Cross-library benchmark on ../shared/corpus (writes bench/results/)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/run.py

.PHONY: clean
clean: ## Remove build outputs and the virtual environment
	cargo clean
	rm -rf $(VENV) python/ferrotok/*.so
