"""Layers of keras_modern_cnn, registered for safe-mode serialization, and BatchNorm tools."""

from keras_modern_cnn.layers.batch_norm import BatchNorm
from keras_modern_cnn.layers.drop_path import DropPath
from keras_modern_cnn.layers.fine_tuning import (
    batch_norm_layers,
    freeze_batch_norm,
    recalibrate_batch_norm,
)
from keras_modern_cnn.layers.preprocessing import ImagePreprocessing
from keras_modern_cnn.layers.recomputed import RecomputedConcatNormConv

__all__ = [
    "BatchNorm",
    "DropPath",
    "ImagePreprocessing",
    "RecomputedConcatNormConv",
    "batch_norm_layers",
    "freeze_batch_norm",
    "recalibrate_batch_norm",
]
