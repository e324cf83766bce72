"""Layers of keras_modern_cnn, registered for safe-mode serialization, and BatchNorm tools."""

from keras_modern_cnn.layers.batch_norm import BatchNorm
from keras_modern_cnn.layers.fine_tuning import (
    batch_norm_layers,
    freeze_batch_norm,
    recalibrate_batch_norm,
)

__all__ = ["BatchNorm", "batch_norm_layers", "freeze_batch_norm", "recalibrate_batch_norm"]
