# Two commands for a newcomer: `make repro` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0

.PHONY: repro test test-fast bench exp lock clean-venv

# Re-install only when the lock or the project metadata changed.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b; done

# Apply a partial params file as an experiment: make exp CONFIG=configs/u373.yaml
# EXP_ARGS go last, so that an override there wins over the config's value for the same key.
exp: $(STAMP)
	$(BIN)/python -m unetseg.config --overrides $(CONFIG) > .exp-args
	$(if $(strip $(EXP_ARGS)),printf '%s\0' $(EXP_ARGS) >> .exp-args)
	xargs -0 -a .exp-args $(BIN)/dvc exp run; rc=$$?; rm -f .exp-args; exit $$rc

lock:
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean-venv:
	rm -rf $(VENV)
