# The two commands a new machine needs: `make run` (the live demo) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PY_DIRS := $(wildcard service migrations tests bench grafana deploy/kubernetes) setup.py
# setup.py compiles these with mypyc: the install is redone when one changes, so tests run what ships.
COMPILED := $(wildcard service/detection/*.py service/detection/detectors/*.py)

.PHONY: run test lint typecheck pytest install clean bench bench-seeds bench-quick bench-metrics bench-scale generate

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "needs python3.11 on PATH (or make PYTHON=/path/to/python3.11)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py $(COMPILED)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/flockwatch demo

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy service

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-seeds: $(STAMP)
	$(BIN)/python -m bench.seeds

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

bench-metrics: $(STAMP)
	$(BIN)/python bench/metrics_page.py
	$(BIN)/python -m bench.score_page

# The daemon at 10,000 and 100,000 accounts on SQLite and PostgreSQL (about two hours): docs/benchmarks-scale.md
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale

generate: $(STAMP)
	$(BIN)/python grafana/generate.py
	$(BIN)/python deploy/kubernetes/generate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build flockwatch-demo.db* flockwatch_native__mypyc*.so
	find service -name '*.so' -delete
	rm -f service/detection/_compiled_sources.py
