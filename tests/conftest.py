"""Shared fixtures: every test starts from a clean Keras session and global configuration."""

import keras
import pytest


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
