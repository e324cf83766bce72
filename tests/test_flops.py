"""`keras_modern_cnn.utils.flops` against hand-counted nets and the published ResNet-50 count."""

import keras
import pytest

from keras_modern_cnn import LeNet, get_model
from keras_modern_cnn.utils import flops


def chain(input_shape, *layers):
    inputs = keras.Input(input_shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_every_convolution_kind_counts_its_multiply_adds(data_format):
    keras.config.set_image_data_format(data_format)  # the autouse fixture restores it
    model = chain(
        (9, 9, 3) if data_format == "channels_last" else (3, 9, 9),
        keras.layers.Conv2D(4, 3, padding="same"),  # 9x9x4 outputs x 3x3x3 inputs each
        keras.layers.Conv2D(8, 3, strides=2),  # 4x4x8 x 3x3x4
        keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),  # 4x4x16 x 3x3
        keras.layers.SeparableConv2D(6, 1),  # depthwise 4x4x16 x 1, pointwise 4x4x6 x 16
        keras.layers.Conv2D(6, 1, groups=2),  # 4x4x6 x 3 (half the channels per group)
        keras.layers.Conv2DTranspose(2, 2, strides=2),  # 4x4x6 inputs x 2x2x2 outputs each
    )
    multiply_adds = (
        9 * 9 * 4 * 27 + 4 * 4 * 8 * 36 + 4 * 4 * 16 * 9 + 4 * 4 * 16 + 4 * 4 * 6 * 16
        + 4 * 4 * 6 * 3 + 4 * 4 * 6 * 8
    )
    assert flops(model) == 2 * multiply_adds


def test_dense_layers_shared_nested_and_sequential():
    assert flops(keras.Sequential([keras.Input((10,)), keras.layers.Dense(5)])) == 2 * 10 * 5
    shared = keras.layers.Dense(10)
    inner = chain((3, 10), keras.layers.Dense(4))  # Dense on every one of 3 positions
    inputs = keras.Input((3, 10))
    model = keras.Model(inputs, inner(shared(shared(inputs))))
    assert flops(model) == 2 * (2 * 3 * 10 * 10 + 3 * 10 * 4)


def test_tiny_lenet_and_resnet50_at_224():
    lenet = LeNet((2, 3), (4,), input_shape=(16, 16, 1), classes=5)
    # conv1 5x5: 12x12x2 x 25; pool to 6x6; conv2 5x5: 2x2x3 x 50; pool to 1x1x3; 3 -> 4 -> 5.
    assert flops(lenet) == 2 * (12 * 12 * 2 * 25 + 2 * 2 * 3 * 50 + 3 * 4 + 4 * 5)
    # 3.86 G multiply-adds: keras.applications' ResNet50 (stride in the 1x1), 1000 classes.
    assert 7.7e9 <= flops(get_model("resnet50")) <= 8.2e9


def test_models_without_a_static_graph_are_refused():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="Received: model="):
        flops(Subclassed())
    with pytest.raises(ValueError, match="Received: model="):
        flops("resnet50")
    flexible = chain((None, None, 3), keras.layers.Conv2D(4, 3))
    with pytest.raises(ValueError, match="static shapes.*Received: model="):
        flops(flexible)
