# Two entry points: `make demo` and `make test`. Each creates .venv on first use.
# Dependency ranges live in pyproject.toml; constraints.txt pins the exact
# versions that were tested, so an install on a fresh machine is reproducible.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test demo test test-deps lint clean

# The demo needs only capplan itself; the test extra adds Locust, Dask, Spark
# (about 500 MB) and the browser driver, so only `make test` installs it.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

demo: install
	$(BIN)/capplan demo

# System servers the tests drive for real; installed only when missing.
test-deps:
	@bash .ci/install-test-deps

test: install-test test-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
