"""ResNet: residual networks, v1 (post-activation) and v2 (pre-activation).

References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385); He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016
(arXiv:1603.05027); Dive into Deep Learning 8.6 (the seeds).

Where stride and bias sit (the `stride_in` and `conv_bias` arguments):
- keras.applications twins (resnet50/101/152, *v2): every convolution has a bias; v1 bottlenecks
  put the stride in the first 1x1 convolution (`stride_in="1x1"`); v2 in the 3x3.
- torchvision twins (resnet18/34; resnet50_tv/101_tv/152_tv, "v1.5", also timm's resnet50/101/152):
  no convolution bias before BN, stride in the 3x3.
- the seeds' d2l ResNet-18: convolutions with bias, no BN on the 1x1 shortcut
  (`conv_bias=True, shortcut_batch_norm=False`).

Stochastic depth (`drop_path_rate`, Huang et al. 2016, arXiv:1603.09382) and zero-initialised
last BatchNorm of each residual branch (`zero_init_last_bn`, Goyal et al., "Accurate, Large
Minibatch SGD", arXiv:1706.02677) are off by default, so the twins stay exact.
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
from keras_modern_cnn.blocks import apply_batch_norm, drop_path, drop_path_rates
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_choice,
    check_int_sequence,
    check_number,
    check_width_ratio,
    scaled_channels,
)

BLOCK_TYPES = ("basic", "bottleneck", "bottleneck_v2")
STACK_FILTERS = (64, 128, 256, 512)
MIN_INPUT_SIZE = 32  # five stride-2 stages


def _conv(x, filters, kernel, *, strides=1, use_bias, name):
    """Convolution with symmetric zero padding, as torchvision and keras.applications pad."""
    if kernel > 1 and strides > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=use_bias, name=name
    )(x)


def basic_block(
    x, filters, *, strides, conv_shortcut, conv_bias, shortcut_batch_norm, bn, drop_rate,
    zero_init_last_bn, name,
):
    """Two 3x3 convolutions with BN; identity or 1x1 shortcut; ReLU after the add (d2l 8.6)."""
    if conv_shortcut:
        shortcut = layers.Conv2D(
            filters, 1, strides=strides, use_bias=conv_bias, name=f"{name}_0_conv"
        )(x)
        if shortcut_batch_norm:
            shortcut = apply_batch_norm(shortcut, name=f"{name}_0_bn", **bn)
    else:
        shortcut = x
    y = _conv(x, filters, 3, strides=strides, use_bias=conv_bias, name=f"{name}_1_conv")
    y = apply_batch_norm(y, name=f"{name}_1_bn", **bn)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv(y, filters, 3, use_bias=conv_bias, name=f"{name}_2_conv")
    y = _last_batch_norm(y, bn, zero_init_last_bn, name=f"{name}_2_bn")
    y = drop_path(y, drop_rate, name=f"{name}_drop_path")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(
    x, filters, *, strides, conv_shortcut, conv_bias, stride_in, bn, drop_rate,
    zero_init_last_bn, name,
):
    """1x1 reduce, 3x3, 1x1 expand (x4) with BN; ReLU after the add (keras.applications v1)."""
    if conv_shortcut:
        shortcut = layers.Conv2D(
            4 * filters, 1, strides=strides, use_bias=conv_bias, name=f"{name}_0_conv"
        )(x)
        shortcut = apply_batch_norm(shortcut, name=f"{name}_0_bn", **bn)
    else:
        shortcut = x
    first_stride, middle_stride = (strides, 1) if stride_in == "1x1" else (1, strides)
    y = layers.Conv2D(
        filters, 1, strides=first_stride, use_bias=conv_bias, name=f"{name}_1_conv"
    )(x)
    y = apply_batch_norm(y, name=f"{name}_1_bn", **bn)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv(y, filters, 3, strides=middle_stride, use_bias=conv_bias, name=f"{name}_2_conv")
    y = apply_batch_norm(y, name=f"{name}_2_bn", **bn)
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = layers.Conv2D(4 * filters, 1, use_bias=conv_bias, name=f"{name}_3_conv")(y)
    y = _last_batch_norm(y, bn, zero_init_last_bn, name=f"{name}_3_bn")
    y = drop_path(y, drop_rate, name=f"{name}_drop_path")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def preactivation_block(
    x, filters, *, strides, conv_shortcut, conv_bias, bn, drop_rate, zero_init_last_bn, name
):
    """Pre-activation bottleneck (BN, ReLU, conv), identity add with no ReLU after (v2).

    The branch ends in a convolution, so `zero_init_last_bn` zero-initialises that convolution
    (as timm's pre-activation blocks do).
    """
    preact = apply_batch_norm(x, name=f"{name}_preact_bn", **bn)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(
            4 * filters, 1, strides=strides, use_bias=conv_bias, name=f"{name}_0_conv"
        )(preact)
    elif strides > 1:
        shortcut = layers.MaxPooling2D(1, strides=strides, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(preact)
    y = apply_batch_norm(y, name=f"{name}_1_bn", **bn)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = keras.layers.ZeroPadding2D(1, name=f"{name}_2_pad")(y)
    y = layers.Conv2D(
        filters, 3, strides=strides, use_bias=False, name=f"{name}_2_conv"
    )(y)
    y = apply_batch_norm(y, name=f"{name}_2_bn", **bn)
    y = layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = layers.Conv2D(
        4 * filters, 1, use_bias=conv_bias, name=f"{name}_3_conv",
        kernel_initializer="zeros" if zero_init_last_bn else "glorot_uniform",
    )(y)
    y = drop_path(y, drop_rate, name=f"{name}_drop_path")
    return layers.Add(name=f"{name}_out")([shortcut, y])


def _last_batch_norm(y, bn, zero_init, *, name):
    """The BN closing a residual branch; gamma starts at zero with `zero_init` (Goyal et al.)."""
    return apply_batch_norm(y, name=name, gamma_initializer="zeros" if zero_init else "ones", **bn)


def block_strides(block_type, stack, index, depth):
    """Stride of block `index` of stack `stack` (of four): v1 downsamples in the first block of
    stacks 2-4; v2 (keras.applications ResNetV2) in the last block of stacks 1-3."""
    if block_type == "bottleneck_v2":
        return 2 if index == depth - 1 and stack < len(STACK_FILTERS) - 1 else 1
    return 2 if index == 0 and stack > 0 else 1


def resnet_stages(stack_depths, block_type):
    """Stage outputs ((layer, reduction), ...): the stem, then the last output of each stack at
    its resolution (v2: the normalised input of each downsampling block, then `post_relu`)."""
    if block_type == "bottleneck_v2":
        return (("conv1_conv", 2),) + tuple(
            (f"conv{stack + 2}_block{depth}_preact_relu", 4 * 2**stack)
            for stack, depth in enumerate(stack_depths[:-1])
        ) + (("post_relu", 32),)
    return (("conv1_relu", 2),) + tuple(
        (f"conv{stack + 2}_block{depth}_out", 4 * 2**stack)
        for stack, depth in enumerate(stack_depths)
    )


@accepts_dtype
def ResNet(
    stack_depths: Sequence[int],
    block_type: str = "bottleneck",
    *,
    conv_bias: bool = True,
    stride_in: str = "1x1",
    shortcut_batch_norm: bool = True,
    bn_epsilon: float = 1.001e-5,
    bn_momentum: float = 0.99,
    width_ratio: float = 1.0,
    drop_path_rate: float = 0.0,
    zero_init_last_bn: bool = False,
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 1000,
    classifier_activation: Activation = "softmax",
    name: str = "resnet",
    include_preprocessing: bool = False,
    default_input_shape: Shape = (224, 224, 3),
) -> keras.Model:
    """ResNet with four stacks of residual blocks after a 7x7/2 stem and a 3x3/2 max pool.

    Reference: He et al. 2016 (arXiv:1512.03385, v1; arXiv:1603.05027, v2).

    Args:
        stack_depths: blocks per stack, e.g. (3, 4, 6, 3) for ResNet-50.
        block_type: "basic" (two 3x3, ResNet-18/34), "bottleneck" (1x1-3x3-1x1, v1) or
            "bottleneck_v2" (pre-activation, He et al. 2016b).
        conv_bias: convolutions carry a bias (keras.applications, d2l) or not (torchvision).
        stride_in: "1x1" (keras.applications v1) or "3x3" (torchvision v1.5) for bottlenecks.
        shortcut_batch_norm: BN after the 1x1 shortcut convolution of basic blocks (torchvision
            yes, d2l no).
        bn_epsilon: epsilon of every BatchNorm (keras.applications: 1.001e-5).
        bn_momentum: momentum of every BatchNorm (keras.applications: 0.99).
        width_ratio: multiplies every convolution's channel count.
        drop_path_rate: stochastic depth (Huang et al. 2016): the residual branch of block i of
            n is dropped per example with probability drop_path_rate * i / (n - 1) while
            training (a `DropPath` layer `{block}_drop_path`); 0 (default) adds no layer.
        zero_init_last_bn: start the last BatchNorm's gamma of every residual branch at zero
            (v2: the last convolution's kernel), so every block starts as the identity
            (Goyal et al. 2017).
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing` (224x224x3, 1000 classes).
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`).
    """
    stack_depths = check_int_sequence("stack_depths", stack_depths, length=len(STACK_FILTERS))
    check_choice("block_type", block_type, BLOCK_TYPES)
    check_bool("conv_bias", conv_bias)
    check_choice("stride_in", stride_in, ("1x1", "3x3"))
    check_bool("shortcut_batch_norm", shortcut_batch_norm)
    bn = dict(
        epsilon=float(check_number("bn_epsilon", bn_epsilon, low=0.0, low_open=True)),
        momentum=float(check_number("bn_momentum", bn_momentum, low=0.0, high=1.0, high_open=True)),
    )
    width_ratio = check_width_ratio(width_ratio)
    drop_path_rate = float(
        check_number("drop_path_rate", drop_path_rate, low=0.0, high=1.0, high_open=True)
    )
    check_bool("zero_init_last_bn", zero_init_last_bn)
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=False, name=name,
    )
    preact = block_type == "bottleneck_v2"
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(
        scaled_channels(64, width_ratio), 7, strides=2, use_bias=conv_bias, name="conv1_conv"
    )(x)
    if not preact:
        x = apply_batch_norm(x, name="conv1_bn", **bn)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    drop_rates = iter(drop_path_rates(drop_path_rate, sum(stack_depths)))
    for stack, (depth, base_filters) in enumerate(zip(stack_depths, STACK_FILTERS)):
        filters = scaled_channels(base_filters, width_ratio)
        for index in range(depth):
            common = dict(
                strides=block_strides(block_type, stack, index, depth), conv_bias=conv_bias,
                bn=bn, drop_rate=next(drop_rates), zero_init_last_bn=zero_init_last_bn,
                name=f"conv{stack + 2}_block{index + 1}",
            )
            if preact:
                x = preactivation_block(x, filters, conv_shortcut=index == 0, **common)
            elif block_type == "bottleneck":
                x = bottleneck_block(
                    x, filters, conv_shortcut=index == 0, stride_in=stride_in, **common
                )
            else:
                x = basic_block(
                    x, filters, conv_shortcut=common["strides"] > 1,
                    shortcut_batch_norm=shortcut_batch_norm, **common,
                )
    if preact:
        x = apply_batch_norm(x, name="post_bn", **bn)
        x = layers.Activation("relu", name="post_relu")(x)
    x = pooled_classifier(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="resnet")


_TORCHVISION = dict(conv_bias=False, stride_in="3x3", bn_epsilon=1e-5, bn_momentum=0.9)
_KERAS = dict(conv_bias=True, stride_in="1x1", bn_epsilon=1.001e-5, bn_momentum=0.99)
_V1_5 = "torchvision and timm {} (v1.5: stride in the 3x3, no conv bias)"


def _row(function_name, stack_depths, block_type, reference, twin):
    return Variant(
        function_name, reference,
        dict(stack_depths=stack_depths, block_type=block_type, **twin),
    )


RESNET_CONFIGS = {
    "resnet18": _row("ResNet18", (2, 2, 2, 2), "basic", "torchvision resnet18 (He et al. 2016)", _TORCHVISION),
    "resnet34": _row("ResNet34", (3, 4, 6, 3), "basic", "torchvision resnet34 (He et al. 2016)", _TORCHVISION),
    "resnet50": _row("ResNet50", (3, 4, 6, 3), "bottleneck", "keras.applications.ResNet50", _KERAS),
    "resnet101": _row("ResNet101", (3, 4, 23, 3), "bottleneck", "keras.applications.ResNet101", _KERAS),
    "resnet152": _row("ResNet152", (3, 8, 36, 3), "bottleneck", "keras.applications.ResNet152", _KERAS),
    "resnet50v2": _row("ResNet50V2", (3, 4, 6, 3), "bottleneck_v2", "keras.applications.ResNet50V2", _KERAS),
    "resnet101v2": _row("ResNet101V2", (3, 4, 23, 3), "bottleneck_v2", "keras.applications.ResNet101V2", _KERAS),
    "resnet152v2": _row("ResNet152V2", (3, 8, 36, 3), "bottleneck_v2", "keras.applications.ResNet152V2", _KERAS),
    "resnet50_tv": _row("ResNet50TV", (3, 4, 6, 3), "bottleneck", _V1_5.format("resnet50"), _TORCHVISION),
    "resnet101_tv": _row("ResNet101TV", (3, 4, 23, 3), "bottleneck", _V1_5.format("resnet101"), _TORCHVISION),
    "resnet152_tv": _row("ResNet152TV", (3, 8, 36, 3), "bottleneck", _V1_5.format("resnet152"), _TORCHVISION),
}

RESNET = Family(
    name="resnet", builder=ResNet, configs=RESNET_CONFIGS,
    summary="A residual network: a 7x7/2 stem, a 3x3/2 max pool, four stacks of residual\n"
    "blocks, global average pooling and `predictions`.",
    paper='He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 '
    "(arXiv:1512.03385);\n    He et al., \"Identity Mappings in Deep Residual Networks\", "
    "ECCV 2016 (arXiv:1603.05027).",
    options=("width_ratio", "drop_path_rate", "zero_init_last_bn"),
    option_docs={
        "drop_path_rate": "drop_path_rate: stochastic depth (Huang et al. 2016), linear in depth up "
        "to this\n    probability; 0 (default) adds no layer.",
        "zero_init_last_bn": "zero_init_last_bn: start every residual branch's last BN gamma at "
        "zero (Goyal et al.\n    2017); default False.",
    },
    min_input_size=lambda config: MIN_INPUT_SIZE,
    stages=lambda config: resnet_stages(config["stack_depths"], config["block_type"]),
    exact_stages=True,
)


@RESNET.variant("resnet18")
def ResNet18(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
             input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
             classifier_activation: Activation = "softmax", name: str = "resnet18", *,
             include_preprocessing: bool = False,
             width_ratio: float = 1.0, drop_path_rate: float = 0.0,
             zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet18"].arguments(locals()))


@RESNET.variant("resnet34")
def ResNet34(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
             input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
             classifier_activation: Activation = "softmax", name: str = "resnet34", *,
             include_preprocessing: bool = False,
             width_ratio: float = 1.0, drop_path_rate: float = 0.0,
             zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet34"].arguments(locals()))


@RESNET.variant("resnet50")
def ResNet50(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
             input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
             classifier_activation: Activation = "softmax", name: str = "resnet50", *,
             include_preprocessing: bool = False,
             width_ratio: float = 1.0, drop_path_rate: float = 0.0,
             zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet50"].arguments(locals()))


@RESNET.variant("resnet101")
def ResNet101(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
              input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
              classifier_activation: Activation = "softmax", name: str = "resnet101", *,
              include_preprocessing: bool = False,
              width_ratio: float = 1.0, drop_path_rate: float = 0.0,
              zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet101"].arguments(locals()))


@RESNET.variant("resnet152")
def ResNet152(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
              input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
              classifier_activation: Activation = "softmax", name: str = "resnet152", *,
              include_preprocessing: bool = False,
              width_ratio: float = 1.0, drop_path_rate: float = 0.0,
              zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet152"].arguments(locals()))


@RESNET.variant("resnet50v2")
def ResNet50V2(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
               input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
               classifier_activation: Activation = "softmax", name: str = "resnet50v2", *,
               include_preprocessing: bool = False,
               width_ratio: float = 1.0, drop_path_rate: float = 0.0,
               zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet50v2"].arguments(locals()))


@RESNET.variant("resnet101v2")
def ResNet101V2(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "resnet101v2", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, drop_path_rate: float = 0.0,
                zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet101v2"].arguments(locals()))


@RESNET.variant("resnet152v2")
def ResNet152V2(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "resnet152v2", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, drop_path_rate: float = 0.0,
                zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet152v2"].arguments(locals()))


@RESNET.variant("resnet50_tv")
def ResNet50TV(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
               input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
               classifier_activation: Activation = "softmax", name: str = "resnet50_tv", *,
               include_preprocessing: bool = False,
               width_ratio: float = 1.0, drop_path_rate: float = 0.0,
               zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet50_tv"].arguments(locals()))


@RESNET.variant("resnet101_tv")
def ResNet101TV(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "resnet101_tv", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, drop_path_rate: float = 0.0,
                zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet101_tv"].arguments(locals()))


@RESNET.variant("resnet152_tv")
def ResNet152TV(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "resnet152_tv", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0, drop_path_rate: float = 0.0,
                zero_init_last_bn: bool = False) -> keras.Model:
    return ResNet(**RESNET_CONFIGS["resnet152_tv"].arguments(locals()))


__all__ = [
    "ResNet", "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152", "ResNet50V2",
    "ResNet101V2", "ResNet152V2", "ResNet50TV", "ResNet101TV", "ResNet152TV",
]
