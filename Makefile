# Two commands for a fresh machine with Python 3.11 or newer and make: `make run`, `make test`.

# The first of these that is Python 3.11 or newer; `make PYTHON=/path/to/python` overrides it.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.11 python3.12 python3.13 python3; do \
	command -v $$p >/dev/null 2>&1 \
	&& $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
# What running needs, and on top of it the test tools: `make run` never installs those.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run run-http test test-scale test-browser screenshots bench-dispatch lint typecheck chat bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: TechAssist needs Python 3.11 or newer;" \
		"none of python3.11, python3.12, python3.13, python3 is; run make PYTHON=/path/to/python" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(RUN_STAMP)
	$(BIN)/techassist orders seed
	$(BIN)/techassist serve

# The same server with the network tools over HTTP: `techassist simulate` in the background
# (stopped when the server stops), and the server with the demo tools file pointing at it.
# It refuses to start when something already answers there, then waits until
# `techassist tools check` reaches the simulator it started.
HTTP_TOOLS := plans/demo-http-tools.yaml
run-http: $(RUN_STAMP)
	$(BIN)/techassist orders seed
	@if TECHASSIST_TOOLS_FILE=$(HTTP_TOOLS) $(BIN)/techassist tools check >/dev/null 2>&1; then \
		echo "error: something already answers at the address $(HTTP_TOOLS) calls" \
			"(127.0.0.1:8001, another techassist simulate?); stop it first" >&2; exit 1; fi
	@$(BIN)/techassist simulate & sim=$$!; \
	trap 'kill $$sim 2>/dev/null; wait $$sim' EXIT; trap 'exit 130' INT TERM; \
	tries=0; until TECHASSIST_TOOLS_FILE=$(HTTP_TOOLS) $(BIN)/techassist tools check >/dev/null 2>&1; do \
		kill -0 $$sim 2>/dev/null || { echo "error: techassist simulate did not start" >&2; exit 1; }; \
		tries=$$((tries + 1)); [ $$tries -lt 60 ] || { echo "error: the simulator did not answer" >&2; exit 1; }; \
		sleep 0.5; \
	done; \
	TECHASSIST_TOOLS_FILE=$(HTTP_TOOLS) $(BIN)/techassist serve

chat: $(RUN_STAMP)
	$(BIN)/techassist chat

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# One worker per core; a worker that runs out of tests takes some of another's.
test: lint typecheck
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# The long multi-instance scenarios (several real servers on one Redis and PostgreSQL).
test-scale: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m scale

# The real-browser tests (headless Debian Chromium, `apt-get install chromium`): they skip
# without one, and fail under CI=true.
test-browser: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m browser tests/browser

# The screenshots in docs/img/, taken from a real server in headless Chromium.
screenshots: $(TEST_STAMP)
	$(BIN)/python -m tests.browser.screens

bench: $(RUN_STAMP)
	$(BIN)/python -m bench.core
	$(BIN)/python -m bench.ws
	$(BIN)/python -m bench.slack
	$(BIN)/python -m bench.experience
	$(BIN)/python -m bench.security
	$(BIN)/python -m bench.http_tools
	$(BIN)/python -m bench.webchat

# A dispatcher's answer to the technician's page, in headless Chromium (the test tools).
bench-dispatch: $(TEST_STAMP)
	$(BIN)/python -m bench.dispatch_latency

clean:
	rm -rf $(VENV) build dist *.egg-info
