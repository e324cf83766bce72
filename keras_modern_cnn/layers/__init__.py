"""Layers of keras_modern_cnn, registered for safe-mode serialization, and BatchNorm tools.

`Conv2D`, `MaxPooling2D` and `AveragePooling2D` are Keras's layers with PyTorch's kernels on
the torch backend (`keras_modern_cnn.layers.convolution`); they, `BatchNorm`, `Activation`,
`Add` and `Concatenate` are called directly there (`keras_modern_cnn.layers.fast_call`).
"""

from keras_modern_cnn.layers.batch_norm import BatchNorm
from keras_modern_cnn.layers.convolution import AveragePooling2D, Conv2D, MaxPooling2D
from keras_modern_cnn.layers.core import Activation, Add, Concatenate
from keras_modern_cnn.layers.drop_path import DropPath
from keras_modern_cnn.layers.fine_tuning import (
    batch_norm_layers,
    freeze_batch_norm,
    recalibrate_batch_norm,
)
from keras_modern_cnn.layers.preprocessing import ImagePreprocessing
from keras_modern_cnn.layers.recomputed import RecomputedConcatNormConv

__all__ = [
    "Activation",
    "Add",
    "AveragePooling2D",
    "BatchNorm",
    "Concatenate",
    "Conv2D",
    "DropPath",
    "ImagePreprocessing",
    "MaxPooling2D",
    "RecomputedConcatNormConv",
    "batch_norm_layers",
    "freeze_batch_norm",
    "recalibrate_batch_norm",
]
