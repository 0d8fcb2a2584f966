# Two commands for a newcomer: `make repro` and `make test`.
# ACCEL=cuda does the same on an NVIDIA GPU: its own venv from requirements-cuda.lock
# (Keras on JAX with JAX's CUDA 12 plugin, no TensorFlow), stages run with KERAS_BACKEND=jax.
PYTHON ?= python3
ACCEL ?= cpu
ifeq ($(ACCEL),cpu)
VENV := .venv
LOCK := requirements.lock
TEST_ARGS :=
else ifeq ($(ACCEL),cuda)
VENV := .venv-cuda
LOCK := requirements-cuda.lock
TEST_ARGS := -m "not tensorflow"
export KERAS_BACKEND := jax
else
$(error ACCEL must be cpu or cuda, not '$(ACCEL)')
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0

.PHONY: repro test test-fast bench exp lock clean-venv

# Re-install only when the lock or the project metadata changed.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/ruff check src stages tests benchmarks
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 $(TEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 -m "not slow$(if $(TEST_ARGS), and not tensorflow)"

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b; done

# Apply a partial params file as an experiment: make exp CONFIG=configs/u373.yaml
# EXP_ARGS go last, so that an override there wins over the config's value for the same key.
exp: $(STAMP)
	$(BIN)/python -m unetseg.config --overrides $(CONFIG) > .exp-args
	$(if $(strip $(EXP_ARGS)),printf '%s\0' $(EXP_ARGS) >> .exp-args)
	xargs -0 -a .exp-args $(BIN)/dvc exp run; rc=$$?; rm -f .exp-args; exit $$rc

# Both locks from the CPU venv: the CPU one is what it holds; the CUDA one is pip's resolution
# of requirements-cuda.in for this platform (Linux x86_64), pinned to the CPU lock's versions
# where both have a package, without installing anything.
lock:
	{ echo '# Fully pinned environment for unetseg (Python 3.11, CPU). Regenerate with: make lock'; \
	  .venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements.lock
	.venv/bin/python -m pip install --quiet --disable-pip-version-check --dry-run \
	    --ignore-installed --report .cuda-report.json -r requirements-cuda.in -c requirements.lock
	.venv/bin/python -c 'import json, sys; \
	    got = json.load(open(".cuda-report.json"))["install"]; \
	    print("# Fully pinned CUDA environment (Linux x86_64, Python 3.11). Regenerate with: make lock"); \
	    print("\n".join(sorted("%s==%s" % (i["metadata"]["name"], i["metadata"]["version"]) \
	                           for i in got)))' > requirements-cuda.lock
	rm -f .cuda-report.json

clean-venv:
	rm -rf $(VENV)
