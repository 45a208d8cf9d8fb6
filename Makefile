# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv if missing and installs the package (editable) into it.
# `make docs` builds the documentation into docs/_build/html; `make test`
# builds it too, with warnings as errors, so a broken docstring fails it.
# `make typecheck` runs mypy over the package and tests/typing_check.py
# (settings in setup.cfg); `make test` runs it too.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPHINX := $(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
MYPY := $(BIN)/python -m mypy gruvi_gevent tests/typing_check.py

.PHONY: demo test typecheck docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.cfg setup.py pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# pytest runs last, so that its summary is the closing line of the output.
test: $(STAMP)
	$(MYPY)
	$(SPHINX)
	$(BIN)/python -m pytest -p no:cacheprovider -q

typecheck: $(STAMP)
	$(MYPY)

docs: $(STAMP)
	$(SPHINX)

bench: $(STAMP)
	$(BIN)/python -m gruvi_gevent.bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache docs/_build
