"""Utilities around the zoo's models."""

from keras_modern_cnn.utils.flops import flops
from keras_modern_cnn.utils.fold import fold_batch_norm
from keras_modern_cnn.utils.weights import transfer_weights
