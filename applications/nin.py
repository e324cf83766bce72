"""NiN (Network in Network): AlexNet-sized convolutions, each followed by two 1x1 convolutions.

Reference: Lin, Chen & Yan, "Network In Network", ICLR 2014 (arXiv:1312.4400);
Dive into Deep Learning, section 8.3 (the seeds' `nin_block` network).

Note: as in the seeds (and the paper's ImageNet model), the class block's convolutions
keep their ReLU, so the class scores averaged by global pooling are non-negative; then
`classifier_activation` (softmax by default, None for the seeds' logits) is applied.
The class block has `classes` channels and is not scaled by `width_ratio`.
"""

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
from keras_modern_cnn.blocks import conv_relu, smallest_input_size
from keras_modern_cnn.types import Activation, Pooling, Shape, Tensor, Weights
from keras_modern_cnn.validation import (
    check_application_args,
    check_dropout_rate,
    check_width_ratio,
    resolve_weights,
    scaled_channels,
)

# The seeds' feature blocks, each followed by a 3x3/2 max pool without padding:
# (channels, kernel, stride, padding) of the block's first convolution.
NIN_BLOCKS = ((96, 11, 4, "valid"), (256, 5, 1, "same"), (384, 3, 1, "same"))
_POOL = (3, 2, "valid")
# 67, as AlexNet: the 11x11/4 convolution and the three pools must each produce one pixel
# (the class block's 3x3 convolution is "same").
MIN_INPUT_SIZE = smallest_input_size(
    [step for _, kernel, stride, padding in NIN_BLOCKS for step in ((kernel, stride, padding), _POOL)]
)


def nin_block(x, filters, kernel_size, *, strides, padding, name):
    """One kxk convolution and two 1x1 convolutions, each with ReLU (`{name}_conv1..3`)."""
    x = conv_relu(x, filters, kernel_size, strides=strides, padding=padding, name=f"{name}_conv1")
    x = conv_relu(x, filters, 1, name=f"{name}_conv2")
    return conv_relu(x, filters, 1, name=f"{name}_conv3")


@accepts_dtype
def NiN(
    include_top: bool = True,
    weights: Weights = None,
    input_tensor: Tensor = None,
    input_shape: Optional[Shape] = None,
    pooling: Pooling = None,
    classes: int = 1000,
    classifier_activation: Activation = "softmax",
    name: str = "nin",
    *,
    include_preprocessing: bool = False,
    dropout_rate: float = 0.5,
    width_ratio: float = 1.0,
    default_input_shape: Shape = (224, 224, 3),
) -> keras.Model:
    """NiN as in the seeds (d2l 8.3), for inputs of at least 67x67.

    The seeds' Fashion-MNIST model (1,992,166 parameters):
    `NiN(input_shape=(224, 224, 1), classes=10, classifier_activation=None)`.

    Args:
        include_top: as in `keras.applications`, as are `weights`, `input_tensor`,
            `input_shape`, `pooling`, `classes`, `classifier_activation`, `name` and
            `include_preprocessing`.
            The default input is 224x224x3 with 1000 classes. The top is dropout, a NiN block with `classes`
            channels, global average pooling and `classifier_activation`;
            `include_top=False` returns the features before it (`block3_pool`).
        dropout_rate: dropout before the class block (0.5; 0 disables it).
        width_ratio: multiplies the channel count of every convolution of the feature blocks.
        dtype: the dtype policy of every layer ("bfloat16", "mixed_float16", ...; KerasHub's
            `dtype`); None: the global policy.
        default_input_shape: the input shape with the top when neither `input_shape` nor
            `input_tensor` is given (keras.applications' `default_size`).
    """
    weights = resolve_weights("nin", weights)  # registered as itself
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    dropout_rate = check_dropout_rate(dropout_rate)
    width_ratio = check_width_ratio(width_ratio)
    inputs, x = image_input(
        input_tensor=input_tensor, include_preprocessing=include_preprocessing, weights=weights,
        input_shape=input_shape, default_shape=default_input_shape,
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=False, name=name,
    )
    for index, (channels, kernel, stride, padding) in enumerate(NIN_BLOCKS, start=1):
        x = nin_block(
            x, scaled_channels(channels, width_ratio), kernel, strides=stride, padding=padding,
            name=f"block{index}",
        )
        pool_kernel, pool_stride, pool_padding = _POOL
        x = layers.MaxPooling2D(
            pool_kernel, strides=pool_stride, padding=pool_padding, name=f"block{index}_pool"
        )(x)
    if include_top:
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = nin_block(x, classes, 3, strides=1, padding="same", name="class_block")
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Activation(classifier_activation, name="predictions")(x)
    else:
        x = global_pool(x, pooling)
    model = keras.Model(inputs, x, name=name)
    return finished_model(model, weights, family="nin")


NIN_CONFIGS = {"nin": Variant("NiN", "d2l 8.3 NiN (Lin et al. 2014)", {})}

NIN = Family(
    name="nin", builder=NiN, configs=NIN_CONFIGS,
    summary="", paper="Lin, Chen & Yan, ICLR 2014.",
    options=(), min_input_size=lambda config: MIN_INPUT_SIZE,
    # Stage outputs: each block's pool (stride 4 convolution, then 3x3/2 pools).
    stages=lambda config: tuple(
        (f"block{index}_pool", 4 * 2**index) for index in range(1, len(NIN_BLOCKS) + 1)
    ),
)
NIN.register_builder("nin")


__all__ = ["NiN"]
