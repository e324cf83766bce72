"""Layers of keras_modern_cnn, registered for safe-mode serialization."""

from keras_modern_cnn.layers.batch_norm import BatchNorm

__all__ = ["BatchNorm"]
from keras_modern_cnn.layers.drop_path import DropPath  # noqa: E402
from keras_modern_cnn.layers.recomputed import RecomputedConcatNormConv  # noqa: E402
