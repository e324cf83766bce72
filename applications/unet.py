"""U-Net: the encoder-decoder with skip concatenations for per-pixel classification.

Reference: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015 (arXiv:1505.04597).

Deliberate deviation from the paper: convolutions are "same"-padded (the paper's are unpadded
and crop the skips), so the output has the input's spatial size; this is how U-Net is used
today and what the seeds' segmentation chapter expects.

`UNet(encoder="resnet34")` replaces the classic encoder by a registered classifier's stages
(`keras_modern_cnn.features`), as the U-Nets of Yakubovskiy's segmentation_models and
Iglovikov & Shvets' TernausNet (arXiv:1801.05746) do: the deepest stage feeds a decoder of
2x2 transposed convolutions, each followed by the concatenated encoder stage of the same
resolution (where one exists) and two 3x3 convolutions. Encoder layers keep the
classifier's names, so a trained classifier's weights copy in with
`keras_modern_cnn.features.copy_weights_by_name(classifier, unet)`.
"""

import math
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
from keras_modern_cnn.blocks import apply_batch_norm, channel_axis
from keras_modern_cnn.registry import encoder_names, get_spec
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_int_sequence,
    check_positive_int,
    check_width_ratio,
    scaled_channels,
)

CLASSIC_DEPTH = 4
CLASSIC_BASE_FILTERS = 64


def double_conv(x, filters, *, batch_norm, name):
    """Two 3x3 convolutions, each followed by (BN and) ReLU."""
    for index in (1, 2):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{index}"
        )(x)
        if batch_norm:
            x = apply_batch_norm(x, name=f"{name}_bn{index}")
        x = layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


def _check_encoder(encoder, depth, base_filters, decoder_filters):
    """The encoder's stages, ((layer, reduction), ...), after checking the arguments that go with it."""
    if not isinstance(encoder, str) or encoder.lower() not in encoder_names():
        raise ValueError(
            "`encoder` must be None (the classic U-Net encoder) or the name of a registered "
            f"classifier with exact stage features: {', '.join(encoder_names())}. "
            f"Received: encoder={encoder!r}"
        )
    for argument, value in (("depth", depth), ("base_filters", base_filters)):
        if value is not None:
            raise ValueError(
                f"`{argument}` shapes the classic encoder; with `encoder` the stages come from "
                f"the encoder. Received: {argument}={value!r}, encoder={encoder!r}"
            )
    stages = get_spec(encoder).stages
    steps = int(math.log2(stages[-1][1]))
    if decoder_filters is None:
        decoder_filters = tuple(16 * 2**step for step in reversed(range(steps)))
    decoder_filters = check_int_sequence("decoder_filters", decoder_filters, length=steps)
    return stages, decoder_filters


@accepts_dtype
def UNet(
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 2,
    classifier_activation: Activation = "softmax",
    name: str = "unet",
    *,
    include_preprocessing: bool = False,
    encoder: Optional[str] = None,
    depth: Optional[int] = None,
    base_filters: Optional[int] = None,
    decoder_filters: Optional[Sequence[int]] = None,
    batch_norm: bool = False,
    width_ratio: float = 1.0,
    default_input_shape: Shape = (256, 256, 1),
) -> keras.Model:
    """U-Net: the classic encoder (`depth` 2x2 max-pool downsamplings) or a registered
    classifier's stages (`encoder`), and a decoder of 2x2 transposed-conv upsamplings.

    Args:
        include_top: end with the 1x1 convolution to `classes` channels; `False` returns the
            last decoder features (with `pooling`, a pooled vector).
        weights: `None` (random initialization) or the path of a weights file to load.
        input_tensor: as in `keras.applications`.
        input_shape: as in `keras.applications`; sides must be multiples of
            2**depth (classic) or of the encoder's largest reduction (32); `(None, None, C)`
            builds for any such size.
        pooling: with `include_top=False`: None, "avg" or "max".
        classes: output channels (classes per pixel).
        classifier_activation: their activation (per pixel).
        name: the model's name.
        include_preprocessing: start with an `ImagePreprocessing` layer for raw images (as
            every builder of the zoo; ImageNet mean and std).
        encoder: None (classic) or a name of `encoder_names()` (e.g. "resnet34", "vgg16",
            "densenet121", "googlenet"), built without its head, `width_ratio` forwarded.
        depth: classic encoder only: number of downsamplings (default 4, the paper's).
        base_filters: classic encoder only: channels of the first level (default 64), doubled
            per level.
        decoder_filters: with `encoder`: channels of each upsampling step, deepest first
            (default (256, 128, 64, 32, 16) for a stride-32 encoder).
        batch_norm: BatchNorm after every 3x3 convolution of the U-Net's own blocks (then
            without conv bias).
        width_ratio: multiplies every convolution's channel count (the encoder's too).
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given.
    """
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    check_bool("batch_norm", batch_norm)
    width_ratio = check_width_ratio(width_ratio)
    if encoder is None:
        if decoder_filters is not None:
            raise ValueError(
                "`decoder_filters` shapes the decoder on an `encoder`; the classic U-Net mirrors "
                f"its encoder (`base_filters`). Received: decoder_filters={decoder_filters!r}"
            )
        depth = check_positive_int("depth", CLASSIC_DEPTH if depth is None else depth)
        base_filters = check_positive_int(
            "base_filters", CLASSIC_BASE_FILTERS if base_filters is None else base_filters
        )
        multiple = 2**depth
    else:
        stages, decoder_filters = _check_encoder(encoder, depth, base_filters, decoder_filters)
        multiple = stages[-1][1]
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=multiple, require_static=False, name=name,
    )
    spatial = x.shape[2:] if channel_axis() == 1 else x.shape[1:-1]
    if any(side is not None and side % multiple for side in spatial):
        what = f"depth={depth}" if encoder is None else f"encoder={encoder!r}"
        raise ValueError(
            f"U-Net with {what} needs input height and width divisible by "
            f"{'2**depth' if encoder is None else 'its largest reduction'} = {multiple}. "
            f"Received: input_shape={tuple(x.shape[1:])}"
        )
    if encoder is None:
        x = _classic(x, depth, base_filters, batch_norm, width_ratio)
    else:
        x = _on_encoder(x, encoder, stages, decoder_filters, batch_norm, width_ratio)
    if include_top:
        x = layers.Conv2D(
            classes, 1, activation=classifier_activation, name="predictions"
        )(x)
    else:
        x = global_pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="unet")


def _classic(x, depth, base_filters, batch_norm, width_ratio):
    """Ronneberger et al.'s encoder and its mirrored decoder."""
    skips = []
    for level in range(depth):
        filters = scaled_channels(base_filters * 2**level, width_ratio)
        x = double_conv(x, filters, batch_norm=batch_norm, name=f"down{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)
    x = double_conv(
        x, scaled_channels(base_filters * 2**depth, width_ratio),
        batch_norm=batch_norm, name="bottom",
    )
    for level in reversed(range(depth)):
        filters = scaled_channels(base_filters * 2**level, width_ratio)
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level + 1}_upconv")(x)
        x = layers.Concatenate(axis=channel_axis(), name=f"up{level + 1}_concat")(
            [skips[level], x]
        )
        x = double_conv(x, filters, batch_norm=batch_norm, name=f"up{level + 1}")
    return x


def _on_encoder(x, encoder, stages, decoder_filters, batch_norm, width_ratio):
    """The encoder's stages in this graph (its layers keep their names), then the decoder."""
    backbone = get_spec(encoder).builder(
        include_top=False, input_tensor=x, width_ratio=width_ratio
    )
    skips = {reduction: backbone.get_layer(layer).output for layer, reduction in stages[:-1]}
    x = backbone.get_layer(stages[-1][0]).output
    for step, filters in enumerate(decoder_filters):
        reduction = stages[-1][1] // 2 ** (step + 1)
        filters = scaled_channels(filters, width_ratio)
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"decoder{reduction}_upconv")(x)
        if reduction in skips:
            x = layers.Concatenate(axis=channel_axis(), name=f"decoder{reduction}_concat")(
                [skips[reduction], x]
            )
        x = double_conv(
            x, filters, batch_norm=batch_norm, name=f"decoder{reduction}"
        )
    return x


UNET_CONFIGS = {
    "unet": Variant(
        "UNet", "Ronneberger et al. 2015 U-Net (same padding, 64 base filters, depth 4)", {},
        default_input_shape=(256, 256, 1), classes=2,
    ),
}

UNET = Family(
    name="unet", builder=UNet, configs=UNET_CONFIGS,
    task="segmentation", summary="", paper="",
    options=(), min_input_size=lambda config: 2**CLASSIC_DEPTH,
    stages=lambda config: (),
)
UNET.register_builder("unet")


__all__ = ["encoder_names", "UNet"]
