"""Layers of keras_modern_cnn, registered for safe-mode serialization."""

from keras_modern_cnn.layers.batch_norm import BatchNorm

__all__ = ["BatchNorm"]
