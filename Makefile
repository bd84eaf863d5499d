# Two entry points: `make demo` (set up, index the bundled scans, ask) and `make test`.
# Both create .venv on first use. torch is installed first, pinned, so that pip takes the
# CPU build instead of pulling gigabytes of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

# Debian packages the tests use: Tesseract (the tesseract backend) and Chromium (the web page
# test). Installed when missing and we are root; otherwise we say what to install.
DEBS := tesseract-ocr tesseract-ocr-chi-sim chromium

.PHONY: demo test venv system-deps typecheck

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

system-deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
		else echo "please install: sudo apt-get install $$missing"; exit 1; fi; \
	fi

# mypy checks the package under its name, `scanrag`: the repository root is the package, so it
# is linked under that name inside the venv.
typecheck: venv
	mkdir -p $(VENV)/mypy-root && ln -sfn $(CURDIR) $(VENV)/mypy-root/scanrag
	MYPYPATH=$(VENV)/mypy-root $(BIN)/mypy --config-file pyproject.toml -p scanrag

test: venv system-deps
	$(BIN)/ruff check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest --rootdir=tests  # the root is the package: keep pytest from importing it
