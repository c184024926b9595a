# The README's commands. `make run` and `make test` set everything up on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The stage commands in dvc.yaml call `mlstrategy`, so the venv comes first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test bench ui lint clean help

help:
	@echo "make run    set up, then run the pipeline on the bundled data (dvc repro through Prefect, tracked in MLflow)"
	@echo "make test   set up, then run the tests"
	@echo "make ui     the MLflow UI on http://127.0.0.1:5000"
	@echo "make bench  the benchmarks (pipeline overhead; split and validation at scale; diagnosis on planted problems; sweeps; error analysis and synthesis; a scheduled run with no new data; training throughput and memory; tables against gradient-boosted trees, at 1M rows)"
	@echo "make lint   ruff"

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(BIN)/mlstrategy run

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_split.py
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_diagnosis.py
	$(BIN)/mlstrategy run  # the sweep benchmark reads the default data's splits
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_error_analysis.py
	$(BIN)/python benchmarks/bench_scheduled.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_tables.py

ui: setup
	$(BIN)/mlstrategy ui

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf data/ingested data/raw data/splits data/synthesized data/quarantine sweeps models reports/strategy.html reports/data_docs reports/failed metrics/*.json metrics/*.csv
