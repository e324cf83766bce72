"""VGG: blocks of 3x3 "same" convolutions, each block closed by a 2x2/2 max pool.

Reference: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), Table 1 configurations A, B, D, E;
Dive into Deep Learning, section 8.2 (the seeds' `vgg(conv_arch)`).

Note: layer names (`block{i}_conv{j}`, `block{i}_pool`, `flatten`, `fc1`, `fc2`,
`predictions`) and weights are those of `keras.applications.VGG16/19`, whose weights copy in
with `keras_modern_cnn.utils.transfer_weights`. As in the seeds (and the paper's training),
each hidden dense layer is followed by dropout 0.5, which `keras.applications` omits.
The BN variants put BatchNorm between every convolution (which keeps its bias, as in
torchvision's `vgg*_bn`) and its ReLU.
"""

import numbers
from collections.abc import Sequence
from typing import Optional

import keras

from keras_modern_cnn import layers
from keras_modern_cnn.assembly import (
    Family,
    Variant,
    accepts_dtype,
    dense_classifier,
    finished_model,
    image_input,
)
from keras_modern_cnn.blocks import conv_relu, conv_relu_output, smallest_input_size
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_dropout_rate,
    check_int_sequence,
    check_width_ratio,
    scaled_channels,
)

# ((number of convolutions, channels), ...) per block: the paper's Table 1.
VGG_ARCHS = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),  # A, the seeds' `conv_arch`
    "vgg13": ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),  # B
    "vgg16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),  # D
    "vgg19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),  # E
}


def check_arch(arch):
    """A non-empty sequence of (number of convolutions, channels) pairs of positive integers."""
    valid = isinstance(arch, (list, tuple)) and len(arch) > 0 and all(
        isinstance(block, (list, tuple)) and len(block) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in block
        )
        for block in arch
    )
    if not valid:
        raise ValueError(
            "`arch` must be a non-empty sequence of (num_convs, channels) pairs of positive "
            f"integers, e.g. ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)). Received: arch={arch!r}"
        )
    return tuple((int(num_convs), int(channels)) for num_convs, channels in arch)


@accepts_dtype
def VGG(
    arch: Sequence[tuple[int, int]],
    *,
    batch_norm: bool = False,
    dense_units: Sequence[int] = (4096, 4096),
    dropout_rate: float = 0.5,
    width_ratio: float = 1.0,
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 1000,
    classifier_activation: Activation = "softmax",
    name: str = "vgg",
    include_preprocessing: bool = False,
    default_input_shape: Shape = (224, 224, 3),
) -> keras.Model:
    """VGG from the seeds' `conv_arch`: one block of 3x3 convolutions + 2x2 pool per pair.

    The seeds' VGG-11 and its small version for Fashion-MNIST (convolution channels divided
    by 4, dense layers kept at 4096):

        VGG(((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
            input_shape=(224, 224, 1), classes=10, classifier_activation=None)
        VGG11(input_shape=(224, 224, 1), classes=10, width_ratio=0.25, classifier_activation=None)

    Args:
        arch: ((num_convs, channels), ...), one pair per block.
        batch_norm: BatchNorm between every convolution and its ReLU.
        dense_units: sizes of the hidden dense layers (4096, 4096); not scaled by `width_ratio`.
        dropout_rate: dropout after each hidden dense layer (0.5; 0 disables it).
        width_ratio: multiplies every convolution's channel count.
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing`.
            The default input is 224x224x3 with 1000 classes; the minimum side is 2**len(arch) (32 for 5 blocks).
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`).
    """
    arch = check_arch(arch)
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    check_bool("batch_norm", batch_norm)
    dense_units = check_int_sequence("dense_units", dense_units)
    dropout_rate = check_dropout_rate(dropout_rate)
    width_ratio = check_width_ratio(width_ratio)
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=min_input_size(arch), require_static=include_top,
        name=name,
    )
    for block, (num_convs, channels) in enumerate(arch, start=1):
        for conv in range(1, num_convs + 1):
            x = conv_relu(
                x, scaled_channels(channels, width_ratio), 3, batch_norm=batch_norm,
                bias_with_batch_norm=True, name=f"block{block}_conv{conv}",
            )
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = dense_classifier(
        x, include_top=include_top, pooling=pooling, dense_units=dense_units,
        dropout_rate=dropout_rate, classes=classes, classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="vgg")


def min_input_size(arch):
    """2**len(arch): every 2x2/2 pool must see at least one pixel."""
    return smallest_input_size([(3, 1, "same"), (2, 2, "valid")] * len(arch))


def vgg_stages(arch, batch_norm):
    """Stage outputs: each block's last convolution (before its pool), then the last pool."""
    return tuple(
        (conv_relu_output(f"block{block}_conv{num_convs}", batch_norm), 2 ** (block - 1))
        for block, (num_convs, _) in enumerate(arch, start=1)
    ) + ((f"block{len(arch)}_pool", 2 ** len(arch)),)


_PAPER = "Simonyan & Zisserman 2015"
_TWIN = {
    "vgg11": "config A (torchvision vgg11; d2l 8.2 VGG-11)", "vgg13": "config B (torchvision vgg13)",
    "vgg16": "config D (keras.applications VGG16)", "vgg19": "config E (keras.applications VGG19)",
}
_TWIN_BN = {
    "vgg11": "config A + BatchNorm (torchvision vgg11_bn)", "vgg13": "config B + BatchNorm (torchvision vgg13_bn)",
    "vgg16": "config D + BatchNorm (torchvision vgg16_bn)", "vgg19": "config E + BatchNorm (torchvision vgg19_bn)",
}


def _rows(name, arch):
    """The plain and BN rows of one configuration of Table 1."""
    function = "VGG" + name[3:]
    return {
        name: Variant(function, f"{_PAPER} {_TWIN[name]}", dict(arch=arch, batch_norm=False)),
        f"{name}_bn": Variant(
            f"{function}BN", f"{_PAPER} {_TWIN_BN[name]}", dict(arch=arch, batch_norm=True)
        ),
    }


VGG_CONFIGS = {key: row for name, arch in VGG_ARCHS.items() for key, row in _rows(name, arch).items()}

VGG_FAMILY = Family(
    name="vgg", builder=VGG, configs=VGG_CONFIGS,
    summary="VGG: blocks of 3x3 \"same\" convolutions (BatchNorm between each and its ReLU in the\n"
    "BN variants), each closed by a 2x2/2 max pool; two dense 4096 layers with dropout 0.5.",
    paper='Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image '
    'Recognition",\n    ICLR 2015 (arXiv:1409.1556), Table 1.',
    options=("dense_units", "dropout_rate", "width_ratio"),
    min_input_size=lambda config: min_input_size(config["arch"]),
    stages=lambda config: vgg_stages(config["arch"], config["batch_norm"]),
    exact_stages=True,
)


@VGG_FAMILY.variant("vgg11")
def VGG11(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
          input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
          classifier_activation: Activation = "softmax", name: str = "vgg11", *,
          include_preprocessing: bool = False,
          dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
          width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg11"].arguments(locals()))


@VGG_FAMILY.variant("vgg11_bn")
def VGG11BN(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
            input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
            classifier_activation: Activation = "softmax", name: str = "vgg11_bn", *,
            include_preprocessing: bool = False,
            dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
            width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg11_bn"].arguments(locals()))


@VGG_FAMILY.variant("vgg13")
def VGG13(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
          input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
          classifier_activation: Activation = "softmax", name: str = "vgg13", *,
          include_preprocessing: bool = False,
          dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
          width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg13"].arguments(locals()))


@VGG_FAMILY.variant("vgg13_bn")
def VGG13BN(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
            input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
            classifier_activation: Activation = "softmax", name: str = "vgg13_bn", *,
            include_preprocessing: bool = False,
            dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
            width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg13_bn"].arguments(locals()))


@VGG_FAMILY.variant("vgg16")
def VGG16(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
          input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
          classifier_activation: Activation = "softmax", name: str = "vgg16", *,
          include_preprocessing: bool = False,
          dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
          width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg16"].arguments(locals()))


@VGG_FAMILY.variant("vgg16_bn")
def VGG16BN(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
            input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
            classifier_activation: Activation = "softmax", name: str = "vgg16_bn", *,
            include_preprocessing: bool = False,
            dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
            width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg16_bn"].arguments(locals()))


@VGG_FAMILY.variant("vgg19")
def VGG19(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
          input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
          classifier_activation: Activation = "softmax", name: str = "vgg19", *,
          include_preprocessing: bool = False,
          dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
          width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg19"].arguments(locals()))


@VGG_FAMILY.variant("vgg19_bn")
def VGG19BN(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
            input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
            classifier_activation: Activation = "softmax", name: str = "vgg19_bn", *,
            include_preprocessing: bool = False,
            dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
            width_ratio: float = 1.0) -> keras.Model:
    return VGG(**VGG_CONFIGS["vgg19_bn"].arguments(locals()))


__all__ = ["VGG", "VGG11", "VGG11BN", "VGG13", "VGG13BN", "VGG16", "VGG16BN", "VGG19", "VGG19BN"]
