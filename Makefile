# One-command entry points. Everything a fresh clone needs is installed by these targets.
# Python 3.13 is found by devtools/find_python.sh (PATH, then pyenv); `make PYTHON=/path/to/python3.13` overrides.
PYTHON ?=
TOOLS_PYTHON ?= python3   ## checkov and schemathesis live in venvs of their own and need no 3.13
VENV   := .venv
BIN    := $(VENV)/bin
PY_OK  := $(VENV)/.installed
NODE_OK := devtools/node_modules/.installed
CHECKOV_OK := .venv-checkov/.installed
FUZZ_OK := .venv-fuzz/.installed
LINT_PATHS := function_app.py functions shared devtools bench tests

.PHONY: install test lint run bench fuzz clean

install: $(PY_OK) $(NODE_OK) $(CHECKOV_OK)

$(PY_OK): requirements.txt requirements-dev.txt
	@py="$$(PYTHON='$(PYTHON)' bash devtools/find_python.sh)" || exit 1; \
	if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
	  echo "replacing $(VENV): it was made with another Python"; rm -rf $(VENV); fi; \
	echo "$$py -m venv $(VENV)"; "$$py" -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_OK): devtools/package.json devtools/package-lock.json
	cd devtools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHECKOV_OK):  ## checkov in its own venv: it pins pycep-parser 0.5.1 (the main venv has 0.7.1)
	$(TOOLS_PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check checkov==3.3.30
	touch $@

test: install $(FUZZ_OK)  ## the whole suite (Azurite, SFTP and the NIF sandbox are started by the tests; a bounded fuzz run too)
	$(BIN)/python -m pytest

lint: $(PY_OK)  ## ruff (lint + format check) and mypy; .ci/run runs it before the suite
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

run: install   ## everything locally on embedded defaults; Ctrl-C stops it. Options: make run ARGS="--ephemeral"
	$(BIN)/python -m devtools.run $(ARGS)

bench: install ## benchmarks; prints ratios against bare baselines measured in the same run
	$(BIN)/python -m bench

# on the project's Python 3.13: under 3.11.7 hypothesis's lambda descriptions in schemathesis's
# coverage phase crashed CPython's parser now and then ("AST constructor recursion depth mismatch")
$(FUZZ_OK): $(PY_OK)  ## schemathesis in its own venv (it pins its own hypothesis); tests/test_fuzz_bounded.py needs it too
	$(BIN)/python -m venv .venv-fuzz
	.venv-fuzz/bin/pip install -q --disable-pip-version-check schemathesis==4.32.5
	touch $@

fuzz: install $(FUZZ_OK) ## the long run: schemathesis against the OpenAPI document of the local run; fails on any 5xx
	bash devtools/fuzz.sh

clean:
	rm -rf $(VENV) .venv-checkov .venv-fuzz devtools/node_modules .local
