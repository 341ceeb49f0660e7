# Two entry points: `make demo` and `make test`. Each creates .venv on first use.
# Dependency ranges live in pyproject.toml; constraints.txt pins the exact
# versions that were tested, so an install on a fresh machine is reproducible.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-deps lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/capplan demo

# System servers the tests drive for real; installed only when missing.
test-deps:
	@bash .ci/install-test-deps

test: install test-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
