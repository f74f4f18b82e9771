# Two commands for a newcomer: `make run` (one node on embedded defaults, all 44 tools so the
# task-master CLI can use every command) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_ARGS ?= --tools all

.PHONY: run test lint bench chaos clean

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

# The tests, then one short seeded chaos run on a real 3-node cluster (partitions and SIGKILLs):
# it fails on any acknowledged write lost, replicas that differ, or broken invariants.
test: $(VENV)/.test
	$(BIN)/ruff check src tests scripts chaos
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(BIN)/python -m chaos run --nodes 3 --seconds 60 --nemesis partition,kill --seed 1 --out chaos-runs/make-test

# Every nemesis alone and combined, 4 seeds each, on 5 nodes: a summary table of all runs.
chaos: $(VENV)/.test
	$(BIN)/python -m chaos battery --nodes 5 --seconds 60 --seeds 4

lint: $(VENV)/.test
	$(BIN)/ruff check src tests scripts chaos

bench: $(VENV)/.test
	$(BIN)/python scripts/bench_tools.py

clean:
	rm -rf $(VENV) taskmaster-data .pytest_cache chaos-runs
