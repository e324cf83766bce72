# The two set-up commands of the README. Each creates .venv when missing and installs the
# package (editable) with its test extra first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-tensorflow test-jax test-torch gpu-check gpu-wheels

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" -c .ci/constraints.txt
	touch $(STAMP)

# The main job: train BN-LeNet on the embedded shapes dataset (no network) for three epochs,
# print test accuracy and where the model and curves were written (runs/demo/), then evaluate
# the saved model. --overwrite: every `make demo` starts a fresh run in runs/demo.
demo: $(STAMP)
	$(BIN)/kmc train bn_lenet --epochs 3 --output-dir runs/demo --overwrite
	$(BIN)/kmc evaluate runs/demo/model.keras

# The whole suite on TensorFlow, JAX and PyTorch, one after the other; every backend runs even
# when an earlier one fails, and the target fails if any did. Two processes, one test file each
# at a time (module fixtures such as the export round trips run once), the longest files first
# (tests/conftest.py). `make test-jax` (or test-tensorflow, test-torch) runs one backend.
BACKENDS := tensorflow jax torch
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15
test: $(STAMP)
	@failed=""; for backend in $(BACKENDS); do \
		echo "== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PYTEST) || failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: failed on:$$failed"; exit 1; fi

$(BACKENDS:%=test-%): test-%: $(STAMP)
	KERAS_BACKEND=$* $(PYTEST)

# The edit loop: the TensorFlow pass without the tests marked `slow` (whole training runs,
# exports, searches, subprocesses, the model matrices): every model's contract, the layers,
# configuration, data and CLI rules, in a few minutes. `make test` before pushing.
test-fast: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not slow"

# The prepared GPU check (benchmarks/gpu_check.py; BENCHMARKS.md, "GPU check"): every backend
# that imports with GPU_CHECK_PYTHON, one after the other, writing runs/gpu_check/. No set-up
# step, so it also runs where there is no .venv (GPU_CHECK_PYTHON=python3 on the lent GPU
# machine); GPU_CHECK_ARGS=--smoke is the CPU rehearsal CI runs.
GPU_CHECK_PYTHON ?= $(BIN)/python
gpu-check:
	@for backend in $(BACKENDS); do \
		if KERAS_BACKEND=$$backend $(GPU_CHECK_PYTHON) -c "import keras" >/dev/null 2>&1; then \
			KERAS_BACKEND=$$backend $(GPU_CHECK_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS) || exit 1; \
		else \
			echo "gpu-check: KERAS_BACKEND=$$backend does not import with $(GPU_CHECK_PYTHON); skipped"; \
		fi; \
	done

# The wheels the lent GPU machine lacks (keras, namex, optree for CPython 3.12) into .whl/.
gpu-wheels: $(STAMP)
	bash benchmarks/gpu_wheels.sh
