# Two entry points: `make demo` (set up, run scanrag on the bundled scans) and `make test`.
# Both create .venv on first use. torch is installed first, pinned, so that pip takes the
# CPU build instead of pulling gigabytes of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: demo test venv lint

$(BIN)/scanrag: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/scanrag

demo: venv
	$(BIN)/scanrag parse examples/scans --out out/parsed
	@echo; echo "Markdown and JSON for each scan are in out/parsed/"; head -n 20 out/parsed/*.md

test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest
