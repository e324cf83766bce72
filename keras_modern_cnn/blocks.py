"""Building blocks shared by more than one family of the zoo.

A block lives here only once a second family needs it; family-specific blocks stay in their
family module under `applications/`.
"""

import contextlib

import keras

from keras_modern_cnn.layers import BatchNorm
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
    """Build every BatchNorm with `synchronized=True`: statistics over all tf.distribute replicas.

    `keras_modern_cnn.distribute.distribution_scope` enters it for the TensorFlow strategies.
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


def batch_norm(x, *, name, **kwargs):
    """Apply `make_batch_norm(name=name, **kwargs)` to `x`."""
    return make_batch_norm(name=name, **kwargs)(x)


def conv_bn_act(
    x,
    filters,
    kernel_size,
    *,
    name,
    strides=1,
    padding="same",
    activation="relu",
    use_bias=False,
    bn_kwargs=None,
):
    """Convolution, batch normalization, activation, named `{name}_conv/_bn/_relu`."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        name=f"{name}_conv",
    )(x)
    x = batch_norm(x, name=f"{name}_bn", **(bn_kwargs or {}))
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def global_pool(x, pooling, *, name="avg_pool"):
    """keras.applications' `pooling` for `include_top=False`: None, "avg" or "max"."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=name.replace("avg", "max"))(x)
    return x


def pooled_classifier(x, *, include_top, pooling, classes, classifier_activation):
    """Global average pooling + dense `predictions` (top), or the requested pooling only."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return global_pool(x, pooling)


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
