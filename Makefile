# Two commands on a fresh machine: `make run` (the gateway) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# requirements.lock: the runtime dependencies (Dockerfile, deployers); requirements-dev.lock:
# runtime + the dev extra (this venv, CI), constrained by requirements.lock so both pin the same versions;
# requirements-build.lock: the build backend of pyproject.toml's [build-system] and what it needs,
# constrained by the dev lock, so that building the package checks hashes too (--no-build-isolation).
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock"

.PHONY: install run test lint lock lock-upgrade swagger-ui htmx clean translations screenshots

$(BIN)/.installed: pyproject.toml requirements-dev.lock requirements-build.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements-build.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
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
	@# editables: what hatchling asks for to build the editable install of `make install`.
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| (cat; echo editables) | $(BIN)/uv pip compile --quiet - $(LOCK_FLAGS) $(UPGRADE) -c requirements-dev.lock -o requirements-build.lock

# Every dependency to its newest release within the ranges of pyproject.toml.
lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# The API reference page's Swagger UI (sms_gateway/agencies/apidocs.py), vendored from the npm
# registry: `make swagger-ui SWAGGER_UI=x.y.z`. npm checks the tarball against the registry's
# integrity hash; `npm pack` runs no install scripts. Only the browser bundle, its stylesheet,
# package.json (the version) and the licences are kept; SHA256SUMS lets a test see hand edits.
SWAGGER_UI ?= 5.35.0
SWAGGER_UI_DIR := sms_gateway/agencies/static/swagger-ui
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css package.json LICENSE NOTICE

swagger-ui:
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI) >/dev/null \
		&& tar xzf swagger-ui-dist-$(SWAGGER_UI).tgz) \
		&& rm -rf $(SWAGGER_UI_DIR) && mkdir -p $(SWAGGER_UI_DIR) \
		&& for f in $(SWAGGER_UI_FILES); do cp $$tmp/package/$$f $(SWAGGER_UI_DIR)/; done && rm -rf $$tmp
	cd $(SWAGGER_UI_DIR) && sha256sum $(SWAGGER_UI_FILES) > SHA256SUMS
	@echo "Swagger UI $(SWAGGER_UI) in $(SWAGGER_UI_DIR): set SWAGGER_UI ?= $(SWAGGER_UI) here and the version in README"

# htmx for the workspace's pages, vendored from the npm registry like Swagger UI above:
# `make htmx HTMX=x.y.z` (npm checks the tarball's integrity; SHA256SUMS lets a test see hand edits).
HTMX ?= 2.0.11
HTMX_DIR := sms_gateway/workspace/static/htmx

htmx:
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent htmx.org@$(HTMX) >/dev/null && tar xzf htmx.org-$(HTMX).tgz) \
		&& rm -rf $(HTMX_DIR) && mkdir -p $(HTMX_DIR) \
		&& cp $$tmp/package/dist/htmx.min.js $$tmp/package/LICENSE $$tmp/package/package.json $(HTMX_DIR)/ \
		&& rm -rf $$tmp
	cd $(HTMX_DIR) && sha256sum htmx.min.js LICENSE package.json > SHA256SUMS
	@echo "htmx $(HTMX) in $(HTMX_DIR): set HTMX ?= $(HTMX) here and the version in README"

# The workspace's English catalogue: extract, merge new messages into en/messages.po
# (translate the empty ones), compile the .mo that ships in the wheel.
WS := sms_gateway/workspace
translations: install
	$(BIN)/pybabel extract -F $(WS)/babel.cfg -k _ -k gettext -k ngettext:1,2 --no-location --omit-header -o $(WS)/messages.pot .
	$(BIN)/pybabel update -i $(WS)/messages.pot -d $(WS)/translations -D messages --no-fuzzy-matching -w 120
	$(BIN)/pybabel compile -d $(WS)/translations -D messages
	rm $(WS)/messages.pot

# Screenshots of every workspace page (desktop and 360 px) into docs/screenshots/.
screenshots: install
	SAVE_SCREENSHOTS=1 TEST_POSTGRES_URL=skip $(BIN)/python -m pytest tests/workspace/test_browser.py -k "sqlite and pages"
	SAVE_SCREENSHOTS=1 TEST_POSTGRES_URL=skip $(BIN)/python -m pytest tests/workspace/test_rules_browser.py -k sqlite
	SAVE_SCREENSHOTS=1 TEST_POSTGRES_URL=skip $(BIN)/python -m pytest tests/workspace/test_browser_board.py -k "sqlite and pages"
	SAVE_SCREENSHOTS=1 TEST_POSTGRES_URL=skip $(BIN)/python -m pytest tests/workspace/test_browser_central.py -k "sqlite and photographed"

clean:
	rm -rf $(VENV) var/*.sqlite3* var/redis.*
