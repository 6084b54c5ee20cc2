# Two commands on a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scanner.replay.demo

test: $(STAMP)
	$(BIN)/python -m pytest

fuzz: $(STAMP)
	FLOWLEAKS_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest tests -k fuzz

bench: $(STAMP)
	$(BIN)/python benchmarks/crawl.py
	$(BIN)/python benchmarks/pacer.py
	$(BIN)/python benchmarks/nightly.py
	$(BIN)/python benchmarks/detectors.py

clean:
	rm -rf $(VENV) demo-output *.duckdb *.duckdb.key
