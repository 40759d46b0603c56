# Two commands on a fresh machine: `make run` (the gateway) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# requirements.lock: the runtime dependencies (Dockerfile, deployers); requirements-dev.lock:
# runtime + the dev extra (this venv, CI), constrained by requirements.lock so both pin the same versions.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock"

.PHONY: install run test lint lock lock-upgrade clean

$(BIN)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@$(BIN)/pip check || { echo "pyproject.toml needs what the lock lacks: run 'make lock'" >&2; exit 1; }
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/sms-gateway run

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy sms_gateway app.py worker.py

# The lock tool alone, at the version the dev lock pins, so a lock can be refreshed
# even when the venv cannot be installed from the current one.
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps "$$(grep -m1 '^uv==' requirements-dev.lock | cut -d' ' -f1)"

# After a change to the dependencies in pyproject.toml: keep every pin that still fits, add what is new.
lock: $(BIN)/uv
	$(BIN)/uv pip compile --quiet pyproject.toml $(LOCK_FLAGS) $(UPGRADE) -o requirements.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev $(LOCK_FLAGS) $(UPGRADE) -c requirements.lock \
		-o requirements-dev.lock

# Every dependency to its newest release within the ranges of pyproject.toml.
lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

clean:
	rm -rf $(VENV) var/*.sqlite3* var/redis.*
