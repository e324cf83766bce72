"""Shared fixtures: every test starts from a clean Keras session and global configuration."""

import os

# Tests run tiny models, so on JAX (and TF jit_compile) XLA's compile time dominates: cheaper
# LLVM passes compile a GoogLeNet gradient ~4x faster. Set before any backend initialises;
# subprocesses started by tests inherit it. Users' runs keep XLA's defaults.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def clean_keras_state():
    """Undo global Keras state a test may change (data format, dtype policy, layer names)."""
    data_format = keras.config.image_data_format()
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_image_data_format(data_format)
    keras.config.set_dtype_policy(policy)
    keras.backend.clear_session()


def backend():
    return keras.backend.backend()
