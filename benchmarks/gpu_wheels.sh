#!/usr/bin/env bash
# Wheels the lent GPU machine lacks to run benchmarks/gpu_check.py on JAX, downloaded here into
# .whl/ (ignored by git; carried to the machine, 64 MiB at most). That machine has Python 3.12,
# jax with CUDA, numpy, h5py, ml-dtypes, rich, absl-py, packaging and setuptools, but no keras,
# no TensorFlow and no network: this fetches keras (the version this checkout's venv runs) and
# the two of its needs missing there, namex and optree, as CPython 3.12 manylinux x86-64 wheels.
# The device command that installs them is in BENCHMARKS.md, "How to run the GPU check".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
version() { "$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .whl
mkdir .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest .whl \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    "keras==$(version keras)" "namex==$(version namex)" "optree==$(version optree)"
ls -l .whl
du -sh .whl
