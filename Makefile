# The two set-up commands of the README. Each creates .venv when missing and installs the
# package (editable) with its test extra first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-tensorflow test-jax

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

# The whole suite on TensorFlow, then on JAX; fails if either fails. Two processes, one test
# file each at a time (module fixtures such as the export round trips run once).
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile
test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST)
	KERAS_BACKEND=jax $(PYTEST)
