# Two commands for a newcomer: `make run` (one node on embedded defaults, all 44 tools so the
# task-master CLI can use every command) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_ARGS ?= --tools all

.PHONY: run test lint bench clean

$(VENV)/.runtime: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.runtime
	$(BIN)/taskmasterd --print-client-config $(RUN_ARGS)

test: $(VENV)/.test
	$(BIN)/ruff check src tests scripts chaos
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test
	$(BIN)/ruff check src tests scripts chaos

bench: $(VENV)/.test
	$(BIN)/python scripts/bench_tools.py

clean:
	rm -rf $(VENV) taskmaster-data .pytest_cache
