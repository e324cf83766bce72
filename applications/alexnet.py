"""AlexNet: five convolutions (11x11/4 first), three 3x3/2 max pools, two dense 4096 layers.

Reference: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012; Dive into Deep Learning, section 8.1 (the seeds' version).

Note: as in the seeds, this is the single-stream AlexNet without local response
normalization: 96-256-384-384-256 convolutions, the first unpadded, the others "same"; 3x3
max pools with stride 2 and no padding after convolutions 1, 2 and 5. `batch_norm=True`
inserts BatchNorm between every convolution and its ReLU (the convolution then has no bias).

`alexnet_tv` is torchvision's `alexnet` (its pretrained weights convert into it), the
64-192-384-256-256 network of Krizhevsky 2014 ("One weird trick for parallelizing convolutional
neural networks", arXiv:1404.5997): the first convolution padded by 2, the others "same".
torchvision's adaptive 6x6 average pool before the dense layers is the identity at 224x224
(left out), and its dropout comes before each hidden dense layer instead of after it: the same
function at inference.
"""

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
    resolve_weights,
    scaled_channels,
)

# The seeds' layers, input to features: (name, channels, kernel, stride, padding); rows
# without channels are max pools; an integer padding pads both sides by that many zeros.
D2L_ARCH = (
    ("conv1", 96, 11, 4, "valid"),
    ("pool1", None, 3, 2, "valid"),
    ("conv2", 256, 5, 1, "same"),
    ("pool2", None, 3, 2, "valid"),
    ("conv3", 384, 3, 1, "same"),
    ("conv4", 384, 3, 1, "same"),
    ("conv5", 256, 3, 1, "same"),
    ("pool5", None, 3, 2, "valid"),
)
# torchvision's `alexnet` (Krizhevsky 2014).
TORCHVISION_ARCH = (
    ("conv1", 64, 11, 4, 2),
    ("pool1", None, 3, 2, "valid"),
    ("conv2", 192, 5, 1, "same"),
    ("pool2", None, 3, 2, "valid"),
    ("conv3", 384, 3, 1, "same"),
    ("conv4", 256, 3, 1, "same"),
    ("conv5", 256, 3, 1, "same"),
    ("pool5", None, 3, 2, "valid"),
)


def min_input_size(arch):
    """The smallest side for which every layer of `arch` yields a pixel (seeds: 67; torchvision: 63)."""
    return smallest_input_size([(kernel, stride, pad) for _, _, kernel, stride, pad in arch])


def check_arch(arch):
    """`arch` rows: (name, channels or None, kernel, stride, padding "same"/"valid"/int >= 0)."""
    valid = isinstance(arch, (list, tuple)) and len(arch) > 0 and all(
        isinstance(row, (list, tuple)) and len(row) == 5 and isinstance(row[0], str)
        and (row[1] is None or (isinstance(row[1], int) and row[1] >= 1))
        and all(isinstance(v, int) and v >= 1 for v in row[2:4])
        and (row[4] in ("same", "valid") or (isinstance(row[4], int) and row[4] >= 0))
        for row in arch
    )
    if not valid:
        raise ValueError(
            "`arch` must be a non-empty sequence of (name, channels or None for a max pool, "
            f"kernel, stride, padding) rows. Received: arch={arch!r}"
        )
    return tuple(tuple(row) for row in arch)


# 67: the 11x11/4 convolution and three unpadded 3x3/2 pools must each produce one pixel.
MIN_INPUT_SIZE = min_input_size(D2L_ARCH)


@accepts_dtype
def AlexNet(
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 1000,
    classifier_activation: Activation = "softmax",
    name: str = "alexnet",
    *,
    include_preprocessing: bool = False,
    arch: Sequence[tuple] = D2L_ARCH,
    batch_norm: bool = False,
    dense_units: Sequence[int] = (4096, 4096),
    dropout_rate: float = 0.5,
    width_ratio: float = 1.0,
    default_input_shape: Shape = (224, 224, 3),
) -> keras.Model:
    """AlexNet as in the seeds (d2l 8.1), for inputs of at least 67x67.

    The seeds' Fashion-MNIST model (46,764,746 parameters):
    `AlexNet(input_shape=(224, 224, 1), classes=10, classifier_activation=None)`.

    Args:
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing`.
            The default input is 224x224x3 with 1000 classes; `include_top=False` returns the `pool5` features.
        arch: the feature layers, ((name, channels, kernel, stride, padding), ...), a row
            without channels being a max pool (default: the seeds'; `TORCHVISION_ARCH` is
            torchvision's).
        batch_norm: BatchNorm between every convolution and its ReLU.
        dense_units: sizes of the hidden dense layers (4096, 4096).
        dropout_rate: dropout after each hidden dense layer (0.5; 0 disables it).
        width_ratio: multiplies every convolution's channel count.
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`).
    """
    weights = resolve_weights("alexnet", weights)  # registered as itself
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    arch = check_arch(arch)
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
    for layer_name, channels, kernel, stride, padding in arch:
        if channels is None:
            x = layers.MaxPooling2D(kernel, strides=stride, name=layer_name)(x)
        else:
            if isinstance(padding, int):
                x = keras.layers.ZeroPadding2D(padding, name=f"{layer_name}_pad")(x)
                padding = "valid"
            x = conv_relu(
                x, scaled_channels(channels, width_ratio), kernel, strides=stride,
                padding=padding, batch_norm=batch_norm, name=layer_name,
            )
    x = dense_classifier(
        x, include_top=include_top, pooling=pooling, dense_units=dense_units,
        dropout_rate=dropout_rate, classes=classes, classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="alexnet")


def alexnet_stages(batch_norm):
    """Stage outputs: the last layer at each resolution (conv1, conv2, conv5, pool5); sides are
    only about input / reduction (unpadded 11x11/4 convolution and 3x3/2 pools)."""
    return (
        (conv_relu_output("conv1", batch_norm), 4), (conv_relu_output("conv2", batch_norm), 8),
        (conv_relu_output("conv5", batch_norm), 16), ("pool5", 32),
    )


ALEXNET_CONFIGS = {
    "alexnet": Variant("AlexNet", "d2l 8.1 AlexNet (Krizhevsky et al. 2012, single stream, no LRN)", {}),
    "alexnet_bn": Variant(
        "AlexNetBN",
        "d2l 8.1 AlexNet + BatchNorm after every convolution (Ioffe & Szegedy 2015)",
        dict(batch_norm=True),
    ),
    "alexnet_tv": Variant(
        "AlexNetTV", "torchvision alexnet (64-192-384-256-256, Krizhevsky 2014)",
        dict(arch=TORCHVISION_ARCH),
    ),
}

ALEXNET = Family(
    name="alexnet", builder=AlexNet, configs=ALEXNET_CONFIGS,
    summary="AlexNet: five convolutions (11x11/4 first), three 3x3/2 max pools, two dense 4096\n"
    "layers with dropout, as in the seeds (d2l 8.1) or torchvision (64-192-384-256-256);\n"
    "BatchNorm between every convolution and its ReLU in the BN variant.",
    paper="Krizhevsky, Sutskever & Hinton, NeurIPS 2012; Ioffe & Szegedy, ICML 2015 "
    "(arXiv:1502.03167).",
    options=("dense_units", "dropout_rate", "width_ratio"),
    min_input_size=lambda config: min_input_size(config.get("arch", D2L_ARCH)),
    stages=lambda config: alexnet_stages(config.get("batch_norm", False)),
)
ALEXNET.register_builder("alexnet")


@ALEXNET.variant("alexnet_bn")
def AlexNetBN(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
              input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
              classifier_activation: Activation = "softmax", name: str = "alexnet_bn", *,
              include_preprocessing: bool = False,
              dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
              width_ratio: float = 1.0) -> keras.Model:
    return AlexNet(**ALEXNET_CONFIGS["alexnet_bn"].arguments(locals()))


@ALEXNET.variant("alexnet_tv")
def AlexNetTV(include_top: bool = True, weights: Weights = None, input_tensor: Tensor = None,
              input_shape: Optional[Shape] = None, pooling: Pooling = None, classes: int = 1000,
              classifier_activation: Activation = "softmax", name: str = "alexnet_tv", *,
              include_preprocessing: bool = False,
              dense_units: Sequence[int] = (4096, 4096), dropout_rate: float = 0.5,
              width_ratio: float = 1.0) -> keras.Model:
    return AlexNet(**ALEXNET_CONFIGS["alexnet_tv"].arguments(locals()))


__all__ = ["AlexNet", "AlexNetBN", "AlexNetTV"]
