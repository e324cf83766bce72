"""Keras's own BatchNormalization test suite, run against keras_modern_cnn's BatchNorm.

The suite is loaded from the installed Keras (`keras/src/layers/normalization/
batch_normalization_test.py`), so it follows Keras upgrades; in a private copy of that module,
`layers.BatchNormalization` is replaced by `KerasDefaultsBatchNorm`, our layer with Keras's
defaults (momentum 0.99, epsilon 1e-3). Every other name the suite uses stays Keras's.
All 33 tests run on every backend: masking, batch renormalization (Ioffe 2017,
arXiv:1702.03275), trainable behaviour, serialization, mixed precision.
"""

import importlib.util
import pathlib
import types

import keras
import keras.src.layers
import pytest

from keras_modern_cnn.layers import BatchNorm

# Slow (Keras's own BatchNormalization test suite against our layer): left out of `make test-fast`.
pytestmark = pytest.mark.slow

SUITE = (
    pathlib.Path(keras.src.layers.__file__).parent / "normalization" / "batch_normalization_test.py"
)


@keras.saving.register_keras_serializable(package="keras_modern_cnn_tests")
class KerasDefaultsBatchNorm(BatchNorm):
    """Our BatchNorm with `keras.layers.BatchNormalization`'s defaults."""

    def __init__(self, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)


def load_suite():
    """A private copy of Keras's test module whose `layers.BatchNormalization` is ours."""
    spec = importlib.util.spec_from_file_location("keras_batch_normalization_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    patched_layers = types.SimpleNamespace(**vars(keras.src.layers))
    patched_layers.BatchNormalization = KerasDefaultsBatchNorm
    module.layers = patched_layers
    return module


SUITE_MODULE = load_suite()


class TestKerasBatchNormalizationSuite(SUITE_MODULE.BatchNormalizationTest):
    """Every test of Keras's BatchNormalizationTest, on our layer."""

    def test_the_suite_builds_our_layer(self):
        layer = SUITE_MODULE.layers.BatchNormalization()
        assert isinstance(layer, BatchNorm)
        assert (layer.momentum, layer.epsilon) == (0.99, 1e-3)
