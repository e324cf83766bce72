"""AlexNet: five convolutions (11x11/4 first), three 3x3/2 max pools, two dense 4096 layers.

Reference: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012; Dive into Deep Learning, section 7.1 (the seeds' version).

Note: as in the seeds, this is the single-stream AlexNet without local response
normalization: 96-256-384-384-256 convolutions, the first unpadded, the others "same"; 3x3
max pools with stride 2 and no padding after convolutions 1, 2 and 5. `batch_norm=True`
inserts BatchNorm between every convolution and its ReLU (the convolution then has no bias).
"""

import keras

from keras_modern_cnn.blocks import batch_norm as apply_batch_norm
from keras_modern_cnn.blocks import global_pool, smallest_input_size
from keras_modern_cnn.registry import register_model
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_int_sequence,
    check_number,
    check_width_ratio,
    image_input,
    load_weights_if_given,
    scaled_channels,
)

__all__ = ["AlexNet", "AlexNetBN"]

# The seeds' layers, input to features: (name, channels, kernel, stride, padding); rows
# without channels are max pools.
_LAYERS = (
    ("conv1", 96, 11, 4, "valid"),
    ("pool1", None, 3, 2, "valid"),
    ("conv2", 256, 5, 1, "same"),
    ("pool2", None, 3, 2, "valid"),
    ("conv3", 384, 3, 1, "same"),
    ("conv4", 384, 3, 1, "same"),
    ("conv5", 256, 3, 1, "same"),
    ("pool5", None, 3, 2, "valid"),
)
# 67: the 11x11/4 convolution and three unpadded 3x3/2 pools must each produce one pixel.
MIN_INPUT_SIZE = smallest_input_size([(kernel, stride, pad) for _, _, kernel, stride, pad in _LAYERS])


def conv_relu(
    x, filters, kernel_size, *, name, batch_norm=False, strides=1, padding="same",
    bias_with_batch_norm=False,
):
    """Convolution + ReLU (the unit of AlexNet, VGG, NiN and GoogLeNet), BN between them if asked.

    The convolution is always named `name`, so plain and BN variants share weight names;
    BN and ReLU are `{name}_bn` and `{name}_relu`. Before BN the convolution has no bias
    unless `bias_with_batch_norm` (torchvision's VGG-BN keeps it).
    """
    if not batch_norm:
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding=padding, activation="relu", name=name
        )(x)
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=bias_with_batch_norm,
        name=name,
    )(x)
    x = apply_batch_norm(x, name=f"{name}_bn")
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def dense_head(x, *, dense_units, dropout_rate, classes, classifier_activation):
    """Flatten, dense+ReLU layers `fc1, fc2, ...` each followed by dropout, then `predictions`."""
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{index}")(x)
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"fc{index}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


def check_dropout_rate(dropout_rate):
    return float(check_number("dropout_rate", dropout_rate, low=0.0, high=1.0, high_open=True))


@register_model(
    name="alexnet",
    family="alexnet",
    default_input_shape=(224, 224, 3),
    reference="d2l 7.1 AlexNet (Krizhevsky et al. 2012, single stream, no LRN)",
)
def AlexNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet",
    *,
    batch_norm=False,
    dense_units=(4096, 4096),
    dropout_rate=0.5,
    width_ratio=1.0,
):
    """AlexNet as in the seeds (d2l 7.1), for inputs of at least 67x67.

    The seeds' Fashion-MNIST model (46,764,746 parameters):
    `AlexNet(input_shape=(224, 224, 1), classes=10, classifier_activation=None)`.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras.applications`. The default input is
            224x224x3 with 1000 classes; `include_top=False` returns the `pool5` features.
        batch_norm: BatchNorm between every convolution and its ReLU.
        dense_units: sizes of the hidden dense layers (4096, 4096).
        dropout_rate: dropout after each hidden dense layer (0.5; 0 disables it).
        width_ratio: multiplies every convolution's channel count.
    """
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    check_bool("batch_norm", batch_norm)
    dense_units = check_int_sequence("dense_units", dense_units)
    dropout_rate = check_dropout_rate(dropout_rate)
    width_ratio = check_width_ratio(width_ratio)
    inputs, x = image_input(
        input_tensor=input_tensor, input_shape=input_shape, default_shape=(224, 224, 3),
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=include_top, name=name,
    )
    for layer_name, channels, kernel, stride, padding in _LAYERS:
        if channels is None:
            x = keras.layers.MaxPooling2D(kernel, strides=stride, name=layer_name)(x)
        else:
            x = conv_relu(
                x, scaled_channels(channels, width_ratio), kernel, strides=stride,
                padding=padding, batch_norm=batch_norm, name=layer_name,
            )
    if include_top:
        x = dense_head(
            x, dense_units=dense_units, dropout_rate=dropout_rate, classes=classes,
            classifier_activation=classifier_activation,
        )
    else:
        x = global_pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return load_weights_if_given(model, weights)


@register_model(
    name="alexnet_bn",
    family="alexnet",
    default_input_shape=(224, 224, 3),
    reference="d2l 7.1 AlexNet + BatchNorm after every convolution (Ioffe & Szegedy 2015)",
)
def AlexNetBN(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet_bn",
    *,
    dense_units=(4096, 4096),
    width_ratio=1.0,
):
    """AlexNet with BatchNorm between every convolution and its ReLU."""
    return AlexNet(
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        batch_norm=True,
        dense_units=dense_units,
        width_ratio=width_ratio,
    )
