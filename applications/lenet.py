"""BN-LeNet: LeNet-5 with batch normalization after every convolution and dense layer.

Reference: Dive into Deep Learning, section 8.5.4 "LeNet with Batch Normalization";
LeCun et al., "Gradient-based learning applied to document recognition", 1998;
Ioffe & Szegedy, ICML 2015 (arXiv:1502.03167).

Note: as in the seeds, pooling is 2x2 max pooling (the book's PyTorch/MXNet BN-LeNet) and
every convolution and dense layer keeps its bias.
"""

import warnings
from collections.abc import Sequence
from typing import Optional

import keras

from keras_modern_cnn import layers
from keras_modern_cnn.assembly import (
    Family,
    Variant,
    accepts_dtype,
    finished_model,
    global_pool,
    image_input,
)
from keras_modern_cnn.blocks import apply_batch_norm, smallest_input_size
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_int_sequence,
    check_width_ratio,
    scaled_channels,
)

_FEATURE_STEPS = [(5, 1, "valid"), (2, 2, "valid"), (5, 1, "valid"), (2, 2, "valid")]
MIN_INPUT_SIZE = smallest_input_size(_FEATURE_STEPS)


@accepts_dtype
def LeNet(
    conv_filters: Sequence[int] = (6, 16),
    dense_units: Sequence[int] = (120, 84),
    *,
    batch_norm: bool = True,
    width_ratio: float = 1.0,
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 10,
    classifier_activation: Activation = "softmax",
    name: str = "lenet",
    include_preprocessing: bool = False,
    default_input_shape: Shape = (28, 28, 1),
    batch_norm_layers: Optional[bool] = None,
) -> keras.Model:
    """LeNet: two 5x5 conv (+BN) + sigmoid + 2x2 max-pool stages, then dense layers.

    Args:
        conv_filters: channels of the two 5x5 convolutions (6, 16 in LeNet-5).
        dense_units: sizes of the hidden dense layers (120, 84 in LeNet-5).
        batch_norm: insert BatchNorm before every sigmoid (BN-LeNet).
        width_ratio: multiplies every convolution's channel count.
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing`.
            The default input is 28x28x1 and `classes` defaults to 10 (Fashion-MNIST), as in the seeds.
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`).
        batch_norm_layers: the old spelling of `batch_norm` (deprecated; removed in the next
            release).
    """
    if batch_norm_layers is not None:
        warnings.warn(
            "`batch_norm_layers` is deprecated and will be removed in the next release; use "
            "`batch_norm` (the name every family uses).", DeprecationWarning, stacklevel=2,
        )
        batch_norm = batch_norm_layers
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    conv_filters = check_int_sequence("conv_filters", conv_filters, length=2)
    dense_units = check_int_sequence("dense_units", dense_units)
    check_bool("batch_norm", batch_norm)
    width_ratio = check_width_ratio(width_ratio)
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=MIN_INPUT_SIZE,
        require_static=include_top, name=name,
    )

    def normalise_and_squash(x, prefix):
        if batch_norm:
            x = apply_batch_norm(x, name=f"{prefix}_bn")
        return layers.Activation("sigmoid", name=f"{prefix}_sigmoid")(x)

    for index, filters in enumerate(conv_filters, start=1):
        x = layers.Conv2D(
            scaled_channels(filters, width_ratio), 5, name=f"conv{index}_conv"
        )(x)
        x = normalise_and_squash(x, f"conv{index}")
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{index}")(x)

    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        for index, units in enumerate(dense_units, start=1):
            x = keras.layers.Dense(units, name=f"fc{index}")(x)
            x = normalise_and_squash(x, f"fc{index}")
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="lenet")


LENET_CONFIGS = {
    "bn_lenet": Variant(
        "BNLeNet", "d2l 8.5.4 BN-LeNet (seeds: Conv 6@5x5, BN, sigmoid, max-pool, ...)",
        dict(conv_filters=(6, 16), dense_units=(120, 84), batch_norm=True),
        default_input_shape=(28, 28, 1), classes=10,
    ),
}

LENET = Family(
    name="lenet", builder=LeNet, configs=LENET_CONFIGS,
    summary="The seeds' BN-LeNet for 28x28 grayscale images (44,878 trainable parameters): two\n"
    "5x5 convolution + BatchNorm + sigmoid + 2x2 max-pool stages, then dense 120-84 layers.",
    paper="Dive into Deep Learning 8.5.4; LeCun et al. 1998; Ioffe & Szegedy, ICML 2015 "
    "(arXiv:1502.03167).",
    options=("width_ratio",),
    min_input_size=lambda config: MIN_INPUT_SIZE,
    # Stage outputs: each 2x2 pool (after unpadded 5x5 convolutions, so sides are smaller).
    stages=lambda config: tuple(
        (f"pool{index}", 2**index) for index in range(1, len(config["conv_filters"]) + 1)
    ),
)


@LENET.variant("bn_lenet")
def BNLeNet(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
            input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 10,
            classifier_activation: Activation = "softmax", name: str = "bn_lenet", *,
            include_preprocessing: bool = False,
            width_ratio: float = 1.0) -> keras.Model:
    return LeNet(**LENET_CONFIGS["bn_lenet"].arguments(locals()))


__all__ = ["LeNet", "BNLeNet"]
