# The two commands: `make run` (the whole service on 127.0.0.1:$(PORT)) and `make test`.
# Each installs what it needs first and skips what is already there.
PORT ?= 5001
WORKER_PROCESSES ?= 1
RUN_DIR ?= $(CURDIR)/data
VENV := .venv
BIN := $(VENV)/bin
RESONATE := .resonate/bin/resonate
# The interpreter of both virtualenvs (ours and the benchmark's peer): the OS's Python 3.11 when
# there is one. Debian builds it with PGO and LTO; pyenv's build of 3.11, first on this machine's
# PATH, costs 10-15 % more CPU per request (README "Benchmark").
PYTHON ?= $(or $(wildcard /usr/bin/python3.11),python3)

.PHONY: run status test lint install bench bench-serving bench-hops bench-scale bench-overload bench-ceiling postgres chromium FORCE

# supervisord restarts whatever dies; see supervisord.conf.
# The store and the ledger live in RUN_DIR too, unless RESONATE_DATA_DIR or LEDGER_PATH say.
run: install
	@n='$(WORKER_PROCESSES)'; case "$$n" in ''|*[!0-9]*) ;; *) [ "$$n" -ge 1 ] && exit 0;; esac; \
		echo "make run: WORKER_PROCESSES must be a whole number, 1 or more, not '$$n'" >&2; exit 2
	mkdir -p $(RUN_DIR)
	PORT=$(PORT) WORKER_PROCESSES=$(WORKER_PROCESSES) RUN_DIR=$(RUN_DIR) \
		RESONATE_DATA_DIR="$${RESONATE_DATA_DIR:-$(RUN_DIR)}" \
		LEDGER_PATH="$${LEDGER_PATH:-$(RUN_DIR)/ledger.sqlite}" \
		$(BIN)/supervisord -c supervisord.conf

# From another terminal: the processes `make run` supervises, and their states.
status:
	RUN_DIR=$(RUN_DIR) $(BIN)/supervisorctl -c supervisord.conf status

# The end-to-end tests also run on a private PostgreSQL cluster: its binaries are installed once;
# the dashboard's test drives Debian's chromium, installed once too.
test: install postgres chromium
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

install: $(VENV)/.installed $(RESONATE)

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Always asked: build-resonate compares the binary's stamp with the patches in
# scripts/resonate-patches/ and rebuilds only when they differ (an instant no-op otherwise).
$(RESONATE): FORCE
	scripts/build-resonate $(RESONATE)

FORCE:

# The side-by-side benchmark (bench/__main__.py): wrk and redis-server from Debian when missing,
# the Celery peer's packages in a virtualenv of their own.
PEER_VENV := bench/.venv-peer

bench: install $(PEER_VENV)/.installed
	bench/ensure-tools
	$(BIN)/python -m bench $(if $(ROUNDS),--rounds $(ROUNDS))

$(PEER_VENV)/.installed: bench/celery_peer/requirements.txt
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/pip install --quiet -r bench/celery_peer/requirements.txt
	touch $@

# Needs wrk (Debian package): the gateway's serving models compared (README "Serving model").
bench-serving: install
	$(BIN)/python -m bench.serving

# Hop latency and idle CPU of the patched server against upstream at several ticks.
bench-hops: install
	$(BIN)/python -m bench.hops

# What begin, wait and a listing cost with 0, 100k and 1M jobs stored (sqlite; see --store).
bench-scale: install
	$(BIN)/python -m bench.scale

# Needs wrk: /begin offered far past what it sustains; refusals, probes, nothing accepted lost.
bench-overload: install
	command -v wrk >/dev/null || bench/ensure-tools
	$(BIN)/python -m bench.overload $(if $(RUNS),--runs $(RUNS))

# Needs wrk: how near /begin can come to the raw server's creates, against the least any
# gunicorn app costs a request, and the server as published (PERFORMANCE.md).
bench-ceiling: install
	command -v wrk >/dev/null || bench/ensure-tools
	$(BIN)/python -m bench.ceiling

postgres:
	scripts/ensure-postgres

chromium:
	scripts/ensure-chromium
