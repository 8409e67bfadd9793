# The two commands on a fresh machine (Debian: python3, python3-venv, make):
#   make demo    the whole product on embedded defaults: no accounts, no network
#   make test    the test suite (SQLite; TEST_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
# Both create .venv on first use and install the locked versions in requirements.txt.
# ARGS passes options on: make demo ARGS="--fresh --as admin", make test ARGS="-k payment".

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lock ci

demo: $(STAMP)
	$(BIN)/vasooli demo $(ARGS)

test: $(STAMP)
	$(BIN)/pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Reinstalls whenever the lock or the project's metadata changes.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# After changing dependencies in pyproject.toml: make lock, then commit requirements.txt.
# make lock ARGS=--upgrade moves every pin to the newest release the ranges allow.
lock: $(STAMP)
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --extra dev --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-find-links --no-emit-index-url $(ARGS) -o requirements.txt pyproject.toml

ci:
	bash .ci/run
