# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv if missing and installs the package (editable) into it.
# `make docs` builds the documentation into docs/_build/html; `make test`
# builds it too, with warnings as errors, so a broken docstring fails it.
# `make typecheck` runs mypy over the package, the benchmark and tests/typing_check.py
# (settings in setup.cfg); `make test` runs it too.
# `make test-all` is `make test` with every Python the project is tested on:
# the machine's python3 in .venv, then each of OTHER_PYTHONS in a venv of its
# own (.venv-3.13); tools/find-python finds a working interpreter, or
# installs one.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPHINX := $(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
MYPY := $(BIN)/python -m mypy gruvi_gevent benchmarks tests/typing_check.py
OTHER_PYTHONS := 3.13

.PHONY: demo test test-all typecheck docs bench clean

# Where the interpreter's own ensurepip is missing or broken, the venv gets
# its pip from the machine's python3.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && \
	    $(PYTHON) -m venv --without-pip $(VENV) && \
	    python3 -m pip --python $(BIN)/python install --quiet pip; }

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

test-all: test $(OTHER_PYTHONS:%=test-python%)

# Not phony: make skips pattern rules for phony targets.
test-python%:
	python=$$(tools/find-python $*) && $(MAKE) --no-print-directory test PYTHON="$$python" VENV=.venv-$*

typecheck: $(STAMP)
	$(MYPY)

docs: $(STAMP)
	$(SPHINX)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

clean:
	rm -rf $(VENV) $(OTHER_PYTHONS:%=.venv-%) build dist *.egg-info .pytest_cache .mypy_cache docs/_build
