# Two entry points: `make demo` (set up, index the bundled scans, ask) and `make test`.
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
	$(BIN)/scanrag ingest examples/scans --data-dir out/demo-index
	$(BIN)/scanrag ask "What is the total due on invoice INV-1001?" --data-dir out/demo-index
	$(BIN)/scanrag ask "华联超市小票号044571的合计金额是多少？" --data-dir out/demo-index

test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest
