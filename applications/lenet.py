"""BN-LeNet: LeNet-5 with batch normalization after every convolution and dense layer.

Reference: Dive into Deep Learning, section 8.5.4 "LeNet with Batch Normalization";
LeCun et al., "Gradient-based learning applied to document recognition", 1998;
Ioffe & Szegedy, ICML 2015 (arXiv:1502.03167).

Note: as in the seeds, pooling is 2x2 max pooling (the book's PyTorch/MXNet BN-LeNet) and
every convolution and dense layer keeps its bias.
"""

import keras

from keras_modern_cnn.blocks import batch_norm, global_pool, smallest_input_size
from keras_modern_cnn.registry import register_model
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_int_sequence,
    check_width_ratio,
    image_input,
    load_weights_if_given,
    scaled_channels,
)

__all__ = ["LeNet", "BNLeNet"]

LENET_CONFIGS = {
    "bn_lenet": {"conv_filters": (6, 16), "dense_units": (120, 84), "batch_norm": True},
}

_FEATURE_STEPS = [(5, 1, "valid"), (2, 2, "valid"), (5, 1, "valid"), (2, 2, "valid")]


def LeNet(
    conv_filters=(6, 16),
    dense_units=(120, 84),
    *,
    batch_norm_layers=True,
    width_ratio=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="lenet",
):
    """LeNet: two 5x5 conv (+BN) + sigmoid + 2x2 max-pool stages, then dense layers.

    Args:
        conv_filters: channels of the two 5x5 convolutions (6, 16 in LeNet-5).
        dense_units: sizes of the hidden dense layers (120, 84 in LeNet-5).
        batch_norm_layers: insert BatchNorm before every sigmoid (BN-LeNet).
        width_ratio: multiplies every convolution's channel count.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras.applications`. The default input is
            28x28x1 and `classes` defaults to 10 (Fashion-MNIST), as in the seeds.
    """
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    conv_filters = check_int_sequence("conv_filters", conv_filters, length=2)
    dense_units = check_int_sequence("dense_units", dense_units)
    check_bool("batch_norm_layers", batch_norm_layers)
    width_ratio = check_width_ratio(width_ratio)
    inputs, x = image_input(
        input_tensor=input_tensor, input_shape=input_shape, default_shape=(28, 28, 1),
        include_top=include_top, min_size=smallest_input_size(_FEATURE_STEPS),
        require_static=include_top, name=name,
    )

    def normalise_and_squash(x, prefix):
        if batch_norm_layers:
            x = batch_norm(x, name=f"{prefix}_bn")
        return keras.layers.Activation("sigmoid", name=f"{prefix}_sigmoid")(x)

    for index, filters in enumerate(conv_filters, start=1):
        x = keras.layers.Conv2D(
            scaled_channels(filters, width_ratio), 5, name=f"conv{index}_conv"
        )(x)
        x = normalise_and_squash(x, f"conv{index}")
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{index}")(x)

    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        for index, units in enumerate(dense_units, start=1):
            x = keras.layers.Dense(units, name=f"fc{index}")(x)
            x = normalise_and_squash(x, f"fc{index}")
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return load_weights_if_given(model, weights)


@register_model(
    name="bn_lenet",
    family="lenet",
    default_input_shape=(28, 28, 1),
    reference="d2l 8.5.4 BN-LeNet (seeds: Conv 6@5x5, BN, sigmoid, max-pool, ...)",
)
def BNLeNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="bn_lenet",
    *,
    width_ratio=1.0,
):
    """The seeds' BN-LeNet for 28x28 grayscale images (44,878 trainable parameters)."""
    config = LENET_CONFIGS["bn_lenet"]
    return LeNet(
        conv_filters=config["conv_filters"],
        dense_units=config["dense_units"],
        batch_norm_layers=config["batch_norm"],
        width_ratio=width_ratio,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )
