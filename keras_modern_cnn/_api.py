"""The public names of `keras_modern_cnn`, loaded on first use (see the package docstring)."""

from keras_modern_cnn import callbacks, layers, losses, metrics, saving, utils
from keras_modern_cnn.applications import *  # noqa: F403  (every builder of the zoo)
from keras_modern_cnn.applications import __all__ as _builders
from keras_modern_cnn.blocks import batch_norm_implementation
from keras_modern_cnn.export import export
from keras_modern_cnn.features import FeatureInfo, copy_weights_by_name
from keras_modern_cnn.heads import num_features, pre_logits, replace_head, reset_classifier
from keras_modern_cnn.layers import BatchNorm
from keras_modern_cnn.registry import (
    get_model,
    get_model_meta,
    get_spec,
    list_models,
    register_model,
    unregister_model,
)
from keras_modern_cnn.weights import decode_predictions, preprocess_input

__all__ = [
    "callbacks", "layers", "losses", "metrics", "saving", "utils", *_builders,
    "batch_norm_implementation", "export", "FeatureInfo", "copy_weights_by_name", "num_features",
    "pre_logits", "replace_head", "reset_classifier", "BatchNorm",
    "get_model", "get_model_meta", "get_spec", "list_models", "register_model",
    "unregister_model", "preprocess_input", "decode_predictions",
]
