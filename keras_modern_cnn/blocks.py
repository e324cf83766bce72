"""Building blocks shared by more than one family of the zoo, and the one place every
BatchNorm of the zoo is created (`make_batch_norm`, switchable to Keras's layer).

A block lives here only once a second family needs it; family-specific blocks stay in their
family module under `applications/`. BatchNorm vocabulary: a builder's boolean `batch_norm`
asks for BatchNorm layers; `make_batch_norm` creates one, `apply_batch_norm` applies one.
"""

import contextlib

import keras

from keras_modern_cnn import layers
from keras_modern_cnn.layers import BatchNorm, DropPath
from keras_modern_cnn.validation import check_choice

BATCH_NORM_IMPLEMENTATIONS = ("keras_modern_cnn", "keras")
_batch_norm_implementation = "keras_modern_cnn"
_synchronized_batch_norm = False


@contextlib.contextmanager
def batch_norm_implementation(implementation):
    """Build models with `keras.layers.BatchNormalization` ("keras") instead of our `BatchNorm`.

    The switch every comparison and benchmark uses:

        with batch_norm_implementation("keras"):
            reference = keras_modern_cnn.ResNet50(weights=None)
    """
    global _batch_norm_implementation
    check_choice("implementation", implementation, BATCH_NORM_IMPLEMENTATIONS)
    previous, _batch_norm_implementation = _batch_norm_implementation, implementation
    try:
        yield
    finally:
        _batch_norm_implementation = previous


def current_batch_norm_implementation():
    """The implementation `batch_norm_implementation` selected: "keras_modern_cnn" or "keras"."""
    return _batch_norm_implementation


@contextlib.contextmanager
def synchronized_batch_norm():
    """Build every BatchNorm with `synchronized=True`: statistics over the global batch.

    `keras_modern_cnn.distribute.distribution_scope` enters it for every strategy.
    """
    global _synchronized_batch_norm
    previous, _synchronized_batch_norm = _synchronized_batch_norm, True
    try:
        yield
    finally:
        _synchronized_batch_norm = previous


def channel_axis():
    """The channel axis of image tensors under the current `image_data_format`."""
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def make_batch_norm(*, name, axis=None, momentum=0.9, epsilon=1e-5, **kwargs):
    """The zoo's batch normalization layer (the one place every BN of the zoo is created)."""
    axis = channel_axis() if axis is None else axis
    if _synchronized_batch_norm:
        kwargs.setdefault("synchronized", True)
    if _batch_norm_implementation == "keras":
        return keras.layers.BatchNormalization(
            axis=axis, momentum=momentum, epsilon=epsilon, name=name, **kwargs
        )
    return BatchNorm(axis=axis, momentum=momentum, epsilon=epsilon, name=name, **kwargs)


def apply_batch_norm(x, *, name, **kwargs):
    """Apply `make_batch_norm(name=name, **kwargs)` to `x`."""
    return make_batch_norm(name=name, **kwargs)(x)


def conv_relu(
    x, filters, kernel_size, *, name, batch_norm=False, strides=1, padding="same",
    bias_with_batch_norm=False, bn_epsilon=1e-5,
):
    """Convolution + ReLU (the unit of AlexNet, VGG, NiN and GoogLeNet), BN between them if asked.

    The convolution is always named `name`, so plain and BN variants share weight names;
    BN and ReLU are `{name}_bn` and `{name}_relu`. Before BN the convolution has no bias
    unless `bias_with_batch_norm` (torchvision's VGG-BN keeps it); `bn_epsilon` is BN's epsilon.
    """
    if not batch_norm:
        return layers.Conv2D(
            filters, kernel_size, strides=strides, padding=padding, activation="relu", name=name
        )(x)
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=bias_with_batch_norm,
        name=name,
    )(x)
    x = make_batch_norm(name=f"{name}_bn", epsilon=bn_epsilon)(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def conv_relu_output(name, batch_norm):
    """The layer name of `conv_relu(..., name=name, batch_norm=batch_norm)`'s output."""
    return f"{name}_relu" if batch_norm else name


def drop_path_rates(drop_path_rate, num_blocks):
    """Stochastic depth's linear decay rule (Huang et al. 2016): block i of n drops with
    probability drop_path_rate * i / (n - 1), from 0 at the first block to the rate at the last."""
    if num_blocks == 1:
        return [float(drop_path_rate)]
    return [drop_path_rate * index / (num_blocks - 1) for index in range(num_blocks)]


def drop_path(x, rate, *, name):
    """`DropPath(rate)` on `x`, named `name`; no layer at all when `rate` is 0 (so models built
    without stochastic depth keep their layers and parameter counts)."""
    if rate == 0:
        return x
    return DropPath(rate, name=name)(x)


def smallest_input_size(steps):
    """Smallest square input side for which every spatial step yields at least one pixel.

    `steps` lists the spatial operations from input to output as (kernel, stride, padding)
    with padding "valid", "same" or an explicit integer (symmetric zero padding). Steps that
    run in parallel (Inception paths) need only the most demanding one listed.
    """
    size = 1
    for kernel, stride, padding in reversed(steps):
        if padding == "same":
            size = (size - 1) * stride + 1
        elif padding == "valid":
            size = (size - 1) * stride + kernel
        else:
            size = max(1, (size - 1) * stride + kernel - 2 * padding)
    return size
