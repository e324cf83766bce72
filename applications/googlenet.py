"""GoogLeNet (Inception v1): a 7x7 stem, nine four-path Inception blocks, global pooling.

Reference: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842);
Dive into Deep Learning, section 8.4 (the seeds' `Inception` block and `b1`..`b5`).

Note: as in the seeds, without the auxiliary classifiers, local response normalization and
the dropout before the classifier; the third path keeps the paper's true 5x5 convolution
(torchvision uses a 3x3 there). The stride-2 convolution and pools pad symmetrically like
the seeds (explicit `ZeroPadding2D`, exact for the pools because they follow ReLUs), so
outputs line up pixel for pixel with the seeds' model. `batch_norm=True` (the seeds'
first exercise) puts BatchNorm between every convolution (then without bias) and its ReLU.

`googlenet_tv` is torchvision's `googlenet` (its pretrained weights convert into it): BatchNorm
(epsilon 1e-3) after every convolution, a 3x3 convolution in the third path (torchvision's
documented deviation; the layers keep the paper's `5x5` names), PyTorch's `ceil_mode` max pools
(zero padding at the bottom and right only, exact after a ReLU) and a 2x2/2 pool after stage 4.
Its 0.2 dropout before the classifier and auxiliary heads (used only in training) are left out.
"""

import math
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
from keras_modern_cnn.blocks import channel_axis, conv_relu, conv_relu_output, smallest_input_size
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_choice,
    check_number,
    check_width_ratio,
    resolve_weights,
    scaled_channels,
)

# The seeds' table: stage -> Inception blocks (c1, (c2 reduce, c2), (c3 reduce, c3), c4);
# a 3x3/2 max pool (padding 1) follows stages 3 and 4.
INCEPTION_STAGES = {
    3: {
        "3a": (64, (96, 128), (16, 32), 32),
        "3b": (128, (128, 192), (32, 96), 64),
    },
    4: {
        "4a": (192, (96, 208), (16, 48), 64),
        "4b": (160, (112, 224), (24, 64), 64),
        "4c": (128, (128, 256), (24, 64), 64),
        "4d": (112, (144, 288), (32, 64), 64),
        "4e": (256, (160, 320), (32, 128), 128),
    },
    5: {
        "5a": (256, (160, 320), (32, 128), 128),
        "5b": (384, (192, 384), (48, 128), 128),
    },
}

# Every spatial step, as (kernel, stride, padding): stem conv, pool1, the 3x3 conv of b2,
# pool2, pool3, pool4 (Inception paths are all "same").
_STEPS = [(7, 2, 3), (3, 2, 1), (3, 1, "same"), (3, 2, 1), (3, 2, 1), (3, 2, 1)]
# Padding every window, GoogLeNet runs on any size (smallest_input_size gives 1). We require
# one input pixel per cell of its stride-32 output grid, as keras.applications does for its
# stride-32 networks, so no stage works on padding alone.
MIN_INPUT_SIZE = max(
    smallest_input_size(_STEPS), math.prod(stride for _, stride, _ in _STEPS)
)


POOL_MODES = ("padded", "ceil")


def _padded_max_pool(x, *, name):
    """The seeds' MaxPool2D(3, strides=2, padding=1); zero padding is exact after a ReLU."""
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name=name)(x)


def _ceil_max_pool(x, size, *, name):
    """PyTorch's MaxPool2d(size, stride=2, ceil_mode=True): one row and column of zero padding
    at the bottom and right (a window there is partial, or unused), exact after a ReLU."""
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return layers.MaxPooling2D(size, strides=2, name=name)(x)


def _max_pool(x, pool_mode, *, name, last=False):
    if pool_mode == "padded":
        return _padded_max_pool(x, name=name)
    return _ceil_max_pool(x, 2 if last else 3, name=name)


def inception_block(
    x, c1, c2, c3, c4, *, name, batch_norm=False, width_ratio=1.0, third_path_kernel=5,
    bn_epsilon=1e-5,
):
    """The seeds' Inception block: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 pool -> 1x1, concatenated.

    `c2` and `c3` are (reduce, output) channel pairs. Layers are named `{name}_1x1`,
    `{name}_3x3_reduce`, `{name}_3x3`, `{name}_5x5_reduce`, `{name}_5x5`, `{name}_pool`,
    `{name}_pool_proj` and `{name}_concat`, as in the paper's Caffe model (the third path keeps
    its names with `third_path_kernel=3`, torchvision's).
    """

    def conv(tensor, channels, kernel_size, suffix):
        return conv_relu(
            tensor, scaled_channels(channels, width_ratio), kernel_size,
            batch_norm=batch_norm, bn_epsilon=bn_epsilon, name=f"{name}_{suffix}",
        )

    path1 = conv(x, c1, 1, "1x1")
    path2 = conv(conv(x, c2[0], 1, "3x3_reduce"), c2[1], 3, "3x3")
    path3 = conv(conv(x, c3[0], 1, "5x5_reduce"), c3[1], third_path_kernel, "5x5")
    path4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    path4 = conv(path4, c4, 1, "pool_proj")
    return layers.Concatenate(axis=channel_axis(), name=f"{name}_concat")(
        [path1, path2, path3, path4]
    )


@accepts_dtype
def GoogLeNet(
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 1000,
    classifier_activation: Activation = "softmax",
    name: str = "googlenet",
    *,
    include_preprocessing: bool = False,
    batch_norm: bool = False,
    width_ratio: float = 1.0,
    third_path_kernel: int = 5,
    pool_mode: str = "padded",
    bn_epsilon: float = 1e-5,
    default_input_shape: Shape = (224, 224, 3),
) -> keras.Model:
    """GoogLeNet as in the seeds (d2l 8.4), for inputs of at least 32x32.

    The seeds' Fashion-MNIST model (5,977,530 parameters):
    `GoogLeNet(input_shape=(96, 96, 1), classes=10, classifier_activation=None)`.

    Args:
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing`.
            The default input is 224x224x3 with 1000 classes; the top is global average pooling + `predictions`;
            `include_top=False` returns the `inception5b_concat` features.
        batch_norm: BatchNorm between every convolution and its ReLU.
        width_ratio: multiplies every convolution's channel count (Inception paths included).
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        third_path_kernel: kernel of the third path's convolution (the paper's 5; 3 in
            torchvision).
        pool_mode: "padded" (the seeds' 3x3/2 pools with padding 1) or "ceil" (torchvision's
            ceil-mode 3x3/2 pools and a 2x2/2 pool after stage 4).
        bn_epsilon: epsilon of every BatchNorm (torchvision: 1e-3).
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`).
    """
    weights = resolve_weights("googlenet", weights)  # registered as itself
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    check_bool("batch_norm", batch_norm)
    width_ratio = check_width_ratio(width_ratio)
    check_choice("third_path_kernel", third_path_kernel, (3, 5))
    check_choice("pool_mode", pool_mode, POOL_MODES)
    bn_epsilon = float(check_number("bn_epsilon", bn_epsilon, low=0.0, low_open=True))
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=False, name=name,
    )

    def conv(tensor, channels, kernel_size, name, **kwargs):
        return conv_relu(
            tensor, scaled_channels(channels, width_ratio), kernel_size,
            batch_norm=batch_norm, bn_epsilon=bn_epsilon, name=name, **kwargs,
        )

    # b1: 7x7/2 convolution (padding 3) and pool.
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = conv(x, 64, 7, "conv1", strides=2, padding="valid")
    x = _max_pool(x, pool_mode, name="pool1")
    # b2: 1x1 then 3x3 convolution and pool.
    x = conv(x, 64, 1, "conv2_reduce")
    x = conv(x, 192, 3, "conv2")
    x = _max_pool(x, pool_mode, name="pool2")
    # b3, b4, b5: Inception stages, pooled between them.
    for stage, blocks in INCEPTION_STAGES.items():
        for block_name, (c1, c2, c3, c4) in blocks.items():
            x = inception_block(
                x, c1, c2, c3, c4, batch_norm=batch_norm, width_ratio=width_ratio,
                third_path_kernel=third_path_kernel, bn_epsilon=bn_epsilon,
                name=f"inception{block_name}",
            )
        if stage != max(INCEPTION_STAGES):
            x = _max_pool(x, pool_mode, name=f"pool{stage}", last=stage == max(INCEPTION_STAGES) - 1)
    x = pooled_classifier(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="googlenet")


def googlenet_stages(batch_norm):
    """Stage outputs: the stem convolutions (conv1, conv2), then each Inception stage's last
    block before the pool that halves the size."""
    return (
        (conv_relu_output("conv1", batch_norm), 2), (conv_relu_output("conv2", batch_norm), 4),
    ) + tuple(
        (f"inception{list(blocks)[-1]}_concat", 2**stage) for stage, blocks in INCEPTION_STAGES.items()
    )


GOOGLENET_CONFIGS = {
    "googlenet": Variant("GoogLeNet", "d2l 8.4 GoogLeNet (Szegedy et al. 2015, true 5x5, no aux heads)", {}),
    "googlenet_bn": Variant(
        "GoogLeNetBN",
        "d2l 8.4 GoogLeNet + BatchNorm after every convolution (d2l 8.4 exercise 1)",
        dict(batch_norm=True),
    ),
    "googlenet_tv": Variant(
        "GoogLeNetTV",
        "torchvision googlenet (BatchNorm, 3x3 in the third path, ceil-mode pools, no aux heads)",
        dict(batch_norm=True, third_path_kernel=3, pool_mode="ceil", bn_epsilon=1e-3),
    ),
}

GOOGLENET = Family(
    name="googlenet", builder=GoogLeNet, configs=GOOGLENET_CONFIGS,
    summary="GoogLeNet: a 7x7/2 stem, nine Inception blocks, global average pooling and\n"
    "`predictions`, as in the seeds (d2l 8.4) or torchvision (3x3 third path, ceil-mode pools);\n"
    "BatchNorm between every convolution and its ReLU in the BN variants.",
    paper='Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842).',
    options=("width_ratio",),
    min_input_size=lambda config: MIN_INPUT_SIZE,
    stages=lambda config: googlenet_stages(config.get("batch_norm", False)),
    exact_stages=True,
)
GOOGLENET.register_builder("googlenet")


@GOOGLENET.variant("googlenet_bn")
def GoogLeNetBN(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "googlenet_bn", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0) -> keras.Model:
    return GoogLeNet(**GOOGLENET_CONFIGS["googlenet_bn"].arguments(locals()))


@GOOGLENET.variant("googlenet_tv")
def GoogLeNetTV(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
                input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
                classifier_activation: Activation = "softmax", name: str = "googlenet_tv", *,
                include_preprocessing: bool = False,
                width_ratio: float = 1.0) -> keras.Model:
    return GoogLeNet(**GOOGLENET_CONFIGS["googlenet_tv"].arguments(locals()))


__all__ = ["GoogLeNet", "GoogLeNetBN", "GoogLeNetTV"]
