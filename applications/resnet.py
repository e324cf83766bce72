"""ResNet: residual networks, v1 (post-activation) and v2 (pre-activation).

References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385); He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016
(arXiv:1603.05027); Dive into Deep Learning 8.6 (the seeds).

Where stride and bias sit (the `stride_in` and `conv_bias` arguments):
- keras.applications twins (resnet50/101/152, *v2): every convolution has a bias; v1 bottlenecks
  put the stride in the first 1x1 convolution (`stride_in="1x1"`); v2 in the 3x3.
- torchvision twins (resnet18/34; "v1.5"): no convolution bias before BN, stride in the 3x3.
- the seeds' d2l ResNet-18: convolutions with bias, no BN on the 1x1 shortcut
  (`conv_bias=True, shortcut_batch_norm=False`).
"""

import keras

from keras_modern_cnn.blocks import batch_norm, pooled_classifier
from keras_modern_cnn.registry import register_model
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_choice,
    check_int_sequence,
    check_number,
    check_width_ratio,
    image_input,
    load_weights_if_given,
    scaled_channels,
)

__all__ = [
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "ResNet50V2",
    "ResNet101V2",
    "ResNet152V2",
]

BLOCK_TYPES = ("basic", "bottleneck", "bottleneck_v2")
STACK_FILTERS = (64, 128, 256, 512)
KERAS_BN = dict(epsilon=1.001e-5, momentum=0.99)  # keras.applications' BatchNormalization
TORCH_BN = dict(epsilon=1e-5, momentum=0.9)  # torchvision / d2l
MIN_INPUT_SIZE = 32  # five stride-2 stages


def _conv(x, filters, kernel, *, strides=1, use_bias, name):
    """Convolution with symmetric zero padding, as torchvision and keras.applications pad."""
    if kernel > 1 and strides > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=use_bias, name=name
    )(x)


def basic_block(x, filters, *, strides, conv_shortcut, conv_bias, shortcut_batch_norm, bn, name):
    """Two 3x3 convolutions with BN; identity or 1x1 shortcut; ReLU after the add (d2l 8.6)."""
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=strides, use_bias=conv_bias, name=f"{name}_0_conv"
        )(x)
        if shortcut_batch_norm:
            shortcut = batch_norm(shortcut, name=f"{name}_0_bn", **bn)
    else:
        shortcut = x
    y = _conv(x, filters, 3, strides=strides, use_bias=conv_bias, name=f"{name}_1_conv")
    y = batch_norm(y, name=f"{name}_1_bn", **bn)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv(y, filters, 3, use_bias=conv_bias, name=f"{name}_2_conv")
    y = batch_norm(y, name=f"{name}_2_bn", **bn)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(x, filters, *, strides, conv_shortcut, conv_bias, stride_in, bn, name):
    """1x1 reduce, 3x3, 1x1 expand (x4) with BN; ReLU after the add (keras.applications v1)."""
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(
            4 * filters, 1, strides=strides, use_bias=conv_bias, name=f"{name}_0_conv"
        )(x)
        shortcut = batch_norm(shortcut, name=f"{name}_0_bn", **bn)
    else:
        shortcut = x
    first_stride, middle_stride = (strides, 1) if stride_in == "1x1" else (1, strides)
    y = keras.layers.Conv2D(
        filters, 1, strides=first_stride, use_bias=conv_bias, name=f"{name}_1_conv"
    )(x)
    y = batch_norm(y, name=f"{name}_1_bn", **bn)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = _conv(y, filters, 3, strides=middle_stride, use_bias=conv_bias, name=f"{name}_2_conv")
    y = batch_norm(y, name=f"{name}_2_bn", **bn)
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = keras.layers.Conv2D(4 * filters, 1, use_bias=conv_bias, name=f"{name}_3_conv")(y)
    y = batch_norm(y, name=f"{name}_3_bn", **bn)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def preactivation_block(x, filters, *, strides, conv_shortcut, conv_bias, bn, name):
    """Pre-activation bottleneck (BN, ReLU, conv), identity add with no ReLU after (v2)."""
    preact = batch_norm(x, name=f"{name}_preact_bn", **bn)
    preact = keras.layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(
            4 * filters, 1, strides=strides, use_bias=conv_bias, name=f"{name}_0_conv"
        )(preact)
    elif strides > 1:
        shortcut = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(preact)
    y = batch_norm(y, name=f"{name}_1_bn", **bn)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = keras.layers.ZeroPadding2D(1, name=f"{name}_2_pad")(y)
    y = keras.layers.Conv2D(
        filters, 3, strides=strides, use_bias=False, name=f"{name}_2_conv"
    )(y)
    y = batch_norm(y, name=f"{name}_2_bn", **bn)
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(y)
    y = keras.layers.Conv2D(4 * filters, 1, use_bias=conv_bias, name=f"{name}_3_conv")(y)
    return keras.layers.Add(name=f"{name}_out")([shortcut, y])


def ResNet(
    stack_depths,
    block_type="bottleneck",
    *,
    conv_bias=True,
    stride_in="1x1",
    shortcut_batch_norm=True,
    bn_epsilon=1.001e-5,
    bn_momentum=0.99,
    width_ratio=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnet",
):
    """ResNet with four stacks of residual blocks after a 7x7/2 stem and a 3x3/2 max pool.

    Args:
        stack_depths: blocks per stack, e.g. (3, 4, 6, 3) for ResNet-50.
        block_type: "basic" (two 3x3, ResNet-18/34), "bottleneck" (1x1-3x3-1x1, v1) or
            "bottleneck_v2" (pre-activation, He et al. 2016b).
        conv_bias: convolutions carry a bias (keras.applications, d2l) or not (torchvision).
        stride_in: "1x1" (keras.applications v1) or "3x3" (torchvision v1.5) for bottlenecks.
        shortcut_batch_norm: BN after the 1x1 shortcut convolution of basic blocks (torchvision
            yes, d2l no).
        bn_epsilon, bn_momentum: of every BatchNorm (keras.applications: 1.001e-5, 0.99).
        width_ratio: multiplies every convolution's channel count.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras.applications` (224x224x3, 1000 classes).
    """
    stack_depths = check_int_sequence("stack_depths", stack_depths, length=4)
    check_choice("block_type", block_type, BLOCK_TYPES)
    check_bool("conv_bias", conv_bias)
    check_choice("stride_in", stride_in, ("1x1", "3x3"))
    check_bool("shortcut_batch_norm", shortcut_batch_norm)
    bn = dict(
        epsilon=float(check_number("bn_epsilon", bn_epsilon, low=0.0, low_open=True)),
        momentum=float(check_number("bn_momentum", bn_momentum, low=0.0, high=1.0, high_open=True)),
    )
    width_ratio = check_width_ratio(width_ratio)
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    inputs, x = image_input(
        input_tensor=input_tensor, input_shape=input_shape, default_shape=(224, 224, 3),
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=False, name=name,
    )
    preact = block_type == "bottleneck_v2"
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(
        scaled_channels(64, width_ratio), 7, strides=2, use_bias=conv_bias, name="conv1_conv"
    )(x)
    if not preact:
        x = batch_norm(x, name="conv1_bn", **bn)
        x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stack, (depth, base_filters) in enumerate(zip(stack_depths, STACK_FILTERS)):
        filters = scaled_channels(base_filters, width_ratio)
        stack_name = f"conv{stack + 2}"
        for index in range(depth):
            block_name = f"{stack_name}_block{index + 1}"
            if preact:
                # v2 downsamples in the last block of a stack (keras.applications ResNetV2).
                last_stack = stack == len(stack_depths) - 1
                strides = 2 if index == depth - 1 and not last_stack else 1
                x = preactivation_block(
                    x, filters, strides=strides, conv_shortcut=index == 0,
                    conv_bias=conv_bias, bn=bn, name=block_name,
                )
            elif block_type == "bottleneck":
                strides = 2 if index == 0 and stack > 0 else 1
                x = bottleneck_block(
                    x, filters, strides=strides, conv_shortcut=index == 0, conv_bias=conv_bias,
                    stride_in=stride_in, bn=bn, name=block_name,
                )
            else:
                strides = 2 if index == 0 and stack > 0 else 1
                x = basic_block(
                    x, filters, strides=strides, conv_shortcut=strides > 1,
                    conv_bias=conv_bias, shortcut_batch_norm=shortcut_batch_norm, bn=bn,
                    name=block_name,
                )
    if preact:
        x = batch_norm(x, name="post_bn", **bn)
        x = keras.layers.Activation("relu", name="post_relu")(x)
    x = pooled_classifier(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return load_weights_if_given(model, weights)


def _variant(registry_name, function_name, stack_depths, block_type, reference, twin_options):
    """Define and register a thin keras.applications-signature builder for one variant."""

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=registry_name,
        *,
        width_ratio=1.0,
    ):
        return ResNet(
            stack_depths, block_type, width_ratio=width_ratio, include_top=include_top,
            weights=weights, input_tensor=input_tensor, input_shape=input_shape,
            pooling=pooling, classes=classes, classifier_activation=classifier_activation,
            name=name, **twin_options,
        )

    builder.__name__ = builder.__qualname__ = function_name
    builder.__doc__ = f"{function_name}: twin of {reference}."
    return register_model(
        name=registry_name, family="resnet", default_input_shape=(224, 224, 3),
        reference=reference,
    )(builder)


_TORCHVISION = dict(conv_bias=False, stride_in="3x3", bn_epsilon=1e-5, bn_momentum=0.9)
_KERAS = dict(conv_bias=True, stride_in="1x1", bn_epsilon=1.001e-5, bn_momentum=0.99)

ResNet18 = _variant("resnet18", "ResNet18", (2, 2, 2, 2), "basic", "torchvision resnet18 (He et al. 2016)", _TORCHVISION)
ResNet34 = _variant("resnet34", "ResNet34", (3, 4, 6, 3), "basic", "torchvision resnet34 (He et al. 2016)", _TORCHVISION)
ResNet50 = _variant("resnet50", "ResNet50", (3, 4, 6, 3), "bottleneck", "keras.applications.ResNet50", _KERAS)
ResNet101 = _variant("resnet101", "ResNet101", (3, 4, 23, 3), "bottleneck", "keras.applications.ResNet101", _KERAS)
ResNet152 = _variant("resnet152", "ResNet152", (3, 8, 36, 3), "bottleneck", "keras.applications.ResNet152", _KERAS)
ResNet50V2 = _variant("resnet50v2", "ResNet50V2", (3, 4, 6, 3), "bottleneck_v2", "keras.applications.ResNet50V2", _KERAS)
ResNet101V2 = _variant("resnet101v2", "ResNet101V2", (3, 4, 23, 3), "bottleneck_v2", "keras.applications.ResNet101V2", _KERAS)
ResNet152V2 = _variant("resnet152v2", "ResNet152V2", (3, 8, 36, 3), "bottleneck_v2", "keras.applications.ResNet152V2", _KERAS)
