# One-command entry points. Everything a fresh clone needs is installed by these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_OK  := $(VENV)/.installed
NODE_OK := devtools/node_modules/.installed
CHECKOV_OK := .venv-checkov/.installed

.PHONY: install test run bench fuzz clean

install: $(PY_OK) $(NODE_OK) $(CHECKOV_OK)

$(PY_OK): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_OK): devtools/package.json devtools/package-lock.json
	cd devtools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHECKOV_OK):  ## checkov in its own venv: it pins pycep-parser 0.5.1 (the main venv has 0.7.1)
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check checkov==3.3.30
	touch $@

test: install  ## the whole suite (Azurite, SFTP and the NIF sandbox are started by the tests)
	$(BIN)/python -m pytest

run: install   ## everything locally on embedded defaults; Ctrl-C stops it
	$(BIN)/python -m devtools.run

bench: install ## benchmarks; prints ratios against bare baselines measured in the same run
	$(BIN)/python -m bench

.venv-fuzz/.installed:  ## schemathesis in its own venv (it pins its own hypothesis)
	$(PYTHON) -m venv .venv-fuzz
	.venv-fuzz/bin/pip install -q --disable-pip-version-check schemathesis==4.32.5
	touch $@

fuzz: install .venv-fuzz/.installed ## schemathesis against the OpenAPI document of the local run; fails on any 5xx
	bash devtools/fuzz.sh

clean:
	rm -rf $(VENV) .venv-checkov .venv-fuzz devtools/node_modules .local
