# The two commands: `make run` (the whole service on 127.0.0.1:$(PORT)) and `make test`.
# Each installs what it needs first and skips what is already there.
PORT ?= 5001
VENV := .venv
BIN := $(VENV)/bin
RESONATE := .resonate/bin/resonate

.PHONY: run test lint install bench bench-serving postgres

run: install
	PORT=$(PORT) $(BIN)/honcho start -f Procfile.dev -p $(PORT)

# The end-to-end tests also run on a private PostgreSQL cluster: its binaries are installed once.
test: install postgres
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

install: $(VENV)/.installed $(RESONATE)

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(RESONATE):
	scripts/build-resonate $(RESONATE)

bench: install
	$(BIN)/python -m bench.throughput

# Needs wrk (Debian package): the gateway's serving models compared (README "Serving model").
bench-serving: install
	$(BIN)/python -m bench.serving

postgres:
	scripts/ensure-postgres
