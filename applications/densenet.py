"""DenseNet: densely connected convolutional networks.

References: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
(arXiv:1608.06993); Dive into Deep Learning 8.7 (the seeds).

Dense blocks concatenate each (BN, ReLU, conv) output to their input along channels;
transition layers (BN, ReLU, 1x1 conv, 2x2 average pool) compress channels (default: halve).
DenseNet-BC adds a 1x1 bottleneck of 4 * growth_rate channels before every 3x3 convolution.

`memory_efficient=True` follows Pleiss et al., "Memory-Efficient Implementation of DenseNets"
(arXiv:1707.06990) as torchvision's `memory_efficient` does: the concatenation, BN and ReLU
in front of each layer's first convolution are recomputed in the backward pass instead of kept
(`keras_modern_cnn.layers.RecomputedConcatNormConv`).


`drop_path_rate` applies stochastic depth (Huang et al. 2016, arXiv:1603.09382) to each dense
layer's new features; off by default.
"""

from collections.abc import Sequence
from typing import Optional

import keras

from keras_modern_cnn import layers
from keras_modern_cnn.assembly import (
    Family,
    Variant,
    accepts_dtype,
    finished_model,
    image_input,
    pooled_classifier,
)
from keras_modern_cnn.blocks import (
    apply_batch_norm,
    channel_axis,
    current_batch_norm_implementation,
    drop_path,
    drop_path_rates,
    make_batch_norm,
)
from keras_modern_cnn.layers import RecomputedConcatNormConv
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_int_sequence,
    check_number,
    check_positive_int,
    check_width_ratio,
    scaled_channels,
)

MIN_INPUT_SIZE = 29  # torchvision documents 29 for its DenseNets; the seeds use 96.
D2L_INPUT_SHAPE = (96, 96, 1)  # the seeds' Fashion-MNIST input


def bottleneck_conv(growth_rate, *, conv_bias, name):
    """The DenseNet-B 1x1 convolution to 4 * growth_rate channels of layer `name`."""
    return layers.Conv2D(4 * growth_rate, 1, use_bias=conv_bias, name=f"{name}_1_conv")


def growth_conv(growth_rate, *, conv_bias, name):
    """The 3x3 convolution adding growth_rate channels: the output of dense layer `name`."""
    return layers.Conv2D(
        growth_rate, 3, padding="same", use_bias=conv_bias, name=f"{name}_2_conv"
    )


def conv_block(x, growth_rate, *, bottleneck, conv_bias, bn, drop_rate, name):
    """BN, ReLU, (1x1 bottleneck, BN, ReLU,) 3x3 conv; output concatenated to the input."""
    y = apply_batch_norm(x, name=f"{name}_0_bn", **bn)
    y = layers.Activation("relu", name=f"{name}_0_relu")(y)
    if bottleneck:
        y = bottleneck_conv(growth_rate, conv_bias=conv_bias, name=name)(y)
        y = apply_batch_norm(y, name=f"{name}_1_bn", **bn)
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = growth_conv(growth_rate, conv_bias=conv_bias, name=name)(y)
    y = drop_path(y, drop_rate, name=f"{name}_drop_path")
    return layers.Concatenate(axis=channel_axis(), name=f"{name}_concat")([x, y])


def memory_efficient_dense_block(
    x, depth, growth_rate, *, bottleneck, conv_bias, bn, drop_rates, name
):
    """`depth` dense layers whose concatenation/BN/ReLU is recomputed; one concatenation at the end.

    Same weights (names and order) and function as `depth` calls of `conv_block`.
    """
    features = [x]
    for index in range(depth):
        layer_name = f"{name}_block{index + 1}"
        first_conv = (bottleneck_conv if bottleneck else growth_conv)(
            growth_rate, conv_bias=conv_bias, name=layer_name
        )
        y = RecomputedConcatNormConv(
            make_batch_norm(name=f"{layer_name}_0_bn", **bn),
            first_conv,
            axis=channel_axis(),
            name=f"{layer_name}_recomputed",
        )(features)
        if bottleneck:
            y = apply_batch_norm(y, name=f"{layer_name}_1_bn", **bn)
            y = layers.Activation("relu", name=f"{layer_name}_1_relu")(y)
            y = growth_conv(growth_rate, conv_bias=conv_bias, name=layer_name)(y)
        features.append(drop_path(y, drop_rates[index], name=f"{layer_name}_drop_path"))
    return layers.Concatenate(axis=channel_axis(), name=f"{name}_block{depth}_concat")(
        features
    )


def transition_block(x, compression, *, conv_bias, bn, name):
    """BN, ReLU, 1x1 conv to `compression` x channels, 2x2 average pool (halves the size)."""
    x = apply_batch_norm(x, name=f"{name}_bn", **bn)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    channels = int(x.shape[channel_axis()] * compression)
    x = layers.Conv2D(channels, 1, use_bias=conv_bias, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


@accepts_dtype
def DenseNet(
    blocks: Sequence[int] = (4, 4, 4, 4),
    growth_rate: int = 32,
    *,
    bottleneck: bool = False,
    compression: float = 0.5,
    stem_filters: int = 64,
    conv_bias: bool = True,
    bn_epsilon: float = 1e-5,
    bn_momentum: float = 0.9,
    width_ratio: float = 1.0,
    memory_efficient: bool = False,
    drop_path_rate: float = 0.0,
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 10,
    classifier_activation: Activation = "softmax",
    name: str = "densenet",
    include_preprocessing: bool = False,
    default_input_shape: Shape = D2L_INPUT_SHAPE,
) -> keras.Model:
    """DenseNet; the defaults are the seeds' d2l model (d2l 8.7).

    `DenseNet(growth_rate=32)` is the seeds' DenseNet for Fashion-MNIST: 64-channel 7x7/2
    stem and 3x3/2 max pool, four dense blocks of four (BN, ReLU, 3x3 conv) with growth 32,
    halving transitions between them, BN, ReLU, global average pooling, 10 classes, on
    96x96x1 inputs; convolutions carry a bias as in the seeds.

    Args:
        blocks: convolutions per dense block (d2l: 4-4-4-4; DenseNet-121: 6-12-24-16).
        growth_rate: channels each convolution adds (k).
        bottleneck: 1x1 convolution to 4k channels before each 3x3 (DenseNet-B).
        compression: channel factor of transition layers, in (0, 1] (DenseNet-C: 0.5).
        stem_filters: channels of the 7x7 stem convolution.
        conv_bias: convolutions carry a bias (d2l) or not (the paper, keras.applications).
        bn_epsilon: epsilon of every BatchNorm (keras.applications: 1.001e-5).
        bn_momentum: momentum of every BatchNorm (keras.applications: 0.99).
        width_ratio: multiplies the stem channels and the growth rate.
        memory_efficient: recompute each layer's concatenation, BN and ReLU in the backward
            pass (`RecomputedConcatNormConv`), so training memory grows linearly with depth
            instead of quadratically, for some extra compute. Same weights (names and order)
            and same function as the plain model; the layer graph differs (one
            `{layer}_recomputed` layer holds each `{layer}_0_bn` and the conv after it).
        drop_path_rate: stochastic depth (Huang et al. 2016) on each dense layer's new
            features: layer i of n is dropped per example with probability
            drop_path_rate * i / (n - 1) while training; 0 (default) adds no layer.
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing`.
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`; d2l: 96x96x1).
    """
    blocks = check_int_sequence("blocks", blocks)
    growth_rate = check_positive_int("growth_rate", growth_rate)
    check_bool("bottleneck", bottleneck)
    compression = float(check_number("compression", compression, low=0.0, low_open=True, high=1.0))
    stem_filters = check_positive_int("stem_filters", stem_filters)
    check_bool("conv_bias", conv_bias)
    bn = dict(
        epsilon=float(check_number("bn_epsilon", bn_epsilon, low=0.0, low_open=True)),
        momentum=float(check_number("bn_momentum", bn_momentum, low=0.0, high=1.0, high_open=True)),
    )
    width_ratio = check_width_ratio(width_ratio)
    check_bool("memory_efficient", memory_efficient)
    drop_path_rate = float(
        check_number("drop_path_rate", drop_path_rate, low=0.0, high=1.0, high_open=True)
    )
    if memory_efficient and current_batch_norm_implementation() != "keras_modern_cnn":
        raise ValueError(
            "`memory_efficient=True` recomputes keras_modern_cnn's BatchNorm in the backward pass "
            "and cannot be built inside batch_norm_implementation("
            f"{current_batch_norm_implementation()!r}). Received: memory_efficient=True"
        )
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=False, name=name,
    )
    growth = scaled_channels(growth_rate, width_ratio)
    x = keras.layers.ZeroPadding2D(3, name="zero_padding2d")(x)
    x = layers.Conv2D(
        scaled_channels(stem_filters, width_ratio), 7, strides=2, use_bias=conv_bias,
        name="conv1_conv",
    )(x)
    x = apply_batch_norm(x, name="conv1_bn", **bn)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="zero_padding2d_1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    rates = drop_path_rates(drop_path_rate, sum(blocks))
    for index, depth in enumerate(blocks):
        block_rates, rates = rates[:depth], rates[depth:]
        if memory_efficient:
            x = memory_efficient_dense_block(
                x, depth, growth, bottleneck=bottleneck, conv_bias=conv_bias, bn=bn,
                drop_rates=block_rates, name=f"conv{index + 2}",
            )
        else:
            for conv in range(depth):
                x = conv_block(
                    x, growth, bottleneck=bottleneck, conv_bias=conv_bias, bn=bn,
                    drop_rate=block_rates[conv], name=f"conv{index + 2}_block{conv + 1}",
                )
        if index < len(blocks) - 1:
            x = transition_block(x, compression, conv_bias=conv_bias, bn=bn, name=f"pool{index + 2}")
    x = apply_batch_norm(x, name="bn", **bn)
    x = layers.Activation("relu", name="relu")(x)
    x = pooled_classifier(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="densenet")


def densenet_stages(blocks):
    """Stage outputs ((layer, reduction), ...): the stem, each dense block's last concatenation
    (before its transition halves the size), then the final BN-ReLU `relu`."""
    return (
        (("conv1_relu", 2),)
        + tuple((f"conv{index + 2}_block{depth}_concat", 4 * 2**index) for index, depth in enumerate(blocks[:-1]))
        + (("relu", 4 * 2 ** (len(blocks) - 1)),)
    )


# DenseNet-BC (k=32) with keras.applications' numerics.
_BC = dict(growth_rate=32, bottleneck=True, compression=0.5, stem_filters=64, conv_bias=False,
           bn_epsilon=1.001e-5, bn_momentum=0.99)

DENSENET_CONFIGS = {
    "densenet121": Variant("DenseNet121", "twin of keras.applications.DenseNet121", dict(blocks=(6, 12, 24, 16), **_BC)),
    "densenet169": Variant("DenseNet169", "twin of keras.applications.DenseNet169", dict(blocks=(6, 12, 32, 32), **_BC)),
    "densenet201": Variant("DenseNet201", "twin of keras.applications.DenseNet201", dict(blocks=(6, 12, 48, 32), **_BC)),
    "densenet264": Variant("DenseNet264", "Huang et al. 2017 Table 1 DenseNet-264 (k=32), shipped by no library", dict(blocks=(6, 12, 64, 48), **_BC)),
    "densenet_d2l": Variant(
        "DenseNetD2L", "d2l 8.7 DenseNet (seeds: 64 stem, k=32, 4-4-4-4, Fashion-MNIST 96x96)",
        dict(blocks=(4, 4, 4, 4), growth_rate=32), default_input_shape=D2L_INPUT_SHAPE, classes=10,
    ),
}

DENSENET = Family(
    name="densenet", builder=DenseNet, configs=DENSENET_CONFIGS,
    summary="A densely connected network: a 7x7/2 stem and 3x3/2 max pool, dense blocks whose\n"
    "layers concatenate their output to their input, transitions halving size and channels.",
    paper='Huang et al., "Densely Connected Convolutional Networks", CVPR 2017 '
    "(arXiv:1608.06993);\n    Dive into Deep Learning 8.7.",
    options=("width_ratio", "memory_efficient", "drop_path_rate"),
    option_docs={
        "width_ratio": "width_ratio: multiplies the stem channels and the growth rate (default 1).",
        "memory_efficient": "memory_efficient: recompute each layer's concatenation, BN and ReLU in "
        "the backward\n    pass (Pleiss et al. 2017): same weights and function, linear training "
        "memory.",
        "drop_path_rate": "drop_path_rate: stochastic depth (Huang et al. 2016) on each layer's new "
        "features,\n    linear in depth up to this probability; 0 (default) adds no layer.",
    },
    min_input_size=lambda config: MIN_INPUT_SIZE,
    stages=lambda config: densenet_stages(config["blocks"]),
    exact_stages=True,
)


@DENSENET.variant("densenet121")
def DenseNet121(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "densenet121", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, memory_efficient: bool = False,
                drop_path_rate: float = 0.0) -> keras.Model:
    return DenseNet(**DENSENET_CONFIGS["densenet121"].arguments(locals()))


@DENSENET.variant("densenet169")
def DenseNet169(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "densenet169", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, memory_efficient: bool = False,
                drop_path_rate: float = 0.0) -> keras.Model:
    return DenseNet(**DENSENET_CONFIGS["densenet169"].arguments(locals()))


@DENSENET.variant("densenet201")
def DenseNet201(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "densenet201", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, memory_efficient: bool = False,
                drop_path_rate: float = 0.0) -> keras.Model:
    return DenseNet(**DENSENET_CONFIGS["densenet201"].arguments(locals()))


@DENSENET.variant("densenet264")
def DenseNet264(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "densenet264", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, memory_efficient: bool = False,
                drop_path_rate: float = 0.0) -> keras.Model:
    return DenseNet(**DENSENET_CONFIGS["densenet264"].arguments(locals()))


@DENSENET.variant("densenet_d2l")
def DenseNetD2L(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 10,
                classifier_activation: Activation = "softmax", name: str = "densenet_d2l", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, memory_efficient: bool = False,
                drop_path_rate: float = 0.0) -> keras.Model:
    return DenseNet(**DENSENET_CONFIGS["densenet_d2l"].arguments(locals()))


__all__ = ["DenseNet", "DenseNet121", "DenseNet169", "DenseNet201", "DenseNet264", "DenseNetD2L"]
