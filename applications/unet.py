"""U-Net: the encoder-decoder with skip concatenations for per-pixel classification.

Reference: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015 (arXiv:1505.04597).

Deliberate deviation from the paper: convolutions are "same"-padded (the paper's are unpadded
and crop the skips), so the output has the input's spatial size; this is how U-Net is used
today and what the seeds' segmentation chapter expects.
"""

import keras

from keras_modern_cnn.blocks import batch_norm, channel_axis, global_pool
from keras_modern_cnn.registry import register_model
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_positive_int,
    check_width_ratio,
    image_input,
    load_weights_if_given,
    scaled_channels,
)

__all__ = ["UNet"]


def double_conv(x, filters, *, batch_norm_layers, name):
    """Two 3x3 convolutions, each followed by (BN and) ReLU."""
    for index in (1, 2):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm_layers, name=f"{name}_conv{index}"
        )(x)
        if batch_norm_layers:
            x = batch_norm(x, name=f"{name}_bn{index}")
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


@register_model(
    name="unet",
    family="unet",
    task="segmentation",
    default_input_shape=(256, 256, 1),
    reference="Ronneberger et al. 2015 U-Net (same padding, 64 base filters, depth 4)",
)
def UNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=2,
    classifier_activation="softmax",
    name="unet",
    *,
    depth=4,
    base_filters=64,
    batch_norm=False,
    width_ratio=1.0,
):
    """U-Net with `depth` 2x2 max-pool downsamplings and 2x2 transposed-conv upsamplings.

    Args:
        include_top: end with the 1x1 convolution to `classes` channels; `False` returns the
            last decoder features (with `pooling`, a pooled vector).
        classes, classifier_activation: output channels and their activation (per pixel).
        depth: number of downsamplings (4 in the paper); input sides must be multiples of
            2**depth.
        base_filters: channels of the first level (64 in the paper), doubled per level.
        batch_norm: BatchNorm after every 3x3 convolution (then without conv bias).
        width_ratio: multiplies every convolution's channel count.
        weights, input_tensor, input_shape, pooling, name: as in `keras.applications`.
    """
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    depth = check_positive_int("depth", depth)
    base_filters = check_positive_int("base_filters", base_filters)
    batch_norm_layers = check_bool("batch_norm", batch_norm)
    width_ratio = check_width_ratio(width_ratio)
    multiple = 2**depth
    inputs, x = image_input(
        input_tensor=input_tensor, input_shape=input_shape, default_shape=(256, 256, 1),
        include_top=include_top, min_size=multiple, require_static=False, name=name,
    )
    spatial = x.shape[2:] if channel_axis() == 1 else x.shape[1:-1]
    if any(side is not None and side % multiple for side in spatial):
        raise ValueError(
            f"U-Net with depth={depth} needs input height and width divisible by "
            f"2**depth = {multiple}. Received: input_shape={tuple(x.shape[1:])}"
        )
    skips = []
    for level in range(depth):
        filters = scaled_channels(base_filters * 2**level, width_ratio)
        x = double_conv(x, filters, batch_norm_layers=batch_norm_layers, name=f"down{level + 1}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = double_conv(
        x, scaled_channels(base_filters * 2**depth, width_ratio),
        batch_norm_layers=batch_norm_layers, name="bottom",
    )
    for level in reversed(range(depth)):
        filters = scaled_channels(base_filters * 2**level, width_ratio)
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level + 1}_upconv")(x)
        x = keras.layers.Concatenate(axis=channel_axis(), name=f"up{level + 1}_concat")(
            [skips[level], x]
        )
        x = double_conv(x, filters, batch_norm_layers=batch_norm_layers, name=f"up{level + 1}")
    if include_top:
        x = keras.layers.Conv2D(
            classes, 1, activation=classifier_activation, name="predictions"
        )(x)
    else:
        x = global_pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return load_weights_if_given(model, weights)
