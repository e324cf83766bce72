"""Fidelity beyond parameter counts: twins of keras.applications give the same outputs after a
weight copy, and the seeds' d2l configurations have the seeds' layer shapes."""

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.utils import transfer_weights

# Slow (builds keras.applications twins and copies their weights): left out of `make test-fast`.
pytestmark = pytest.mark.slow

TWINS = [
    # (ours, keras.applications builder, input side, tolerance)
    ("vgg16", "VGG16", 32, 1e-5),
    ("vgg19", "VGG19", 32, 1e-5),
    ("resnet50", "ResNet50", 64, 1e-4),
    ("resnet50v2", "ResNet50V2", 64, 1e-4),
    ("resnet101", "ResNet101", 32, 1e-4),
    ("densenet121", "DenseNet121", 64, 1e-4),
]


@pytest.mark.parametrize("ours, reference, side, tolerance", TWINS)
def test_twin_equals_keras_applications_after_weight_copy(ours, reference, side, tolerance):
    shape = (side, side, 3)
    theirs = getattr(keras.applications, reference)(weights=None, input_shape=shape, classes=7)
    model = kmc.get_model(ours, input_shape=shape, classes=7)
    rng = np.random.default_rng(0)
    # Non-trivial BN statistics, so a misplaced moving mean/variance would show.
    for variable in theirs.non_trainable_variables:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    transfer_weights(theirs, model)
    assert [layer.name for layer in model.layers if layer.weights] == [
        layer.name for layer in theirs.layers if layer.weights
    ]
    images = rng.uniform(0, 1, size=(2, *shape)).astype("float32")
    np.testing.assert_allclose(model(images), theirs(images), atol=tolerance, rtol=tolerance)


def output_shapes(model, names):
    return [tuple(model.get_layer(name).output.shape[1:]) for name in names]


def test_d2l_resnet18_reproduces_the_seeds_shape_walk_through():
    """d2l 8.6: b1 (64, 24, 24), b2 (64, 24, 24), b3 (128, 12, 12), b4 (256, 6, 6), b5 (512, 3, 3)."""
    model = kmc.ResNet(
        (2, 2, 2, 2), "basic", conv_bias=True, shortcut_batch_norm=False, bn_epsilon=1e-5,
        bn_momentum=0.9, input_shape=(96, 96, 1), classes=10,
    )
    assert output_shapes(
        model, ["pool1_pool", "conv2_block2_out", "conv3_block2_out", "conv4_block2_out", "conv5_block2_out", "predictions"]
    ) == [(24, 24, 64), (24, 24, 64), (12, 12, 128), (6, 6, 256), (3, 3, 512), (10,)]
    # d2l's shortcut 1x1 convolutions carry no BN; torchvision's do.
    assert not any(layer.name.endswith("_0_bn") for layer in model.layers)


def test_d2l_densenet_is_the_default_call():
    """d2l 8.7: 64-channel stem, 4 blocks of 4 convs with k=32, halving transitions:
    64 + 4*32 = 192 -> 96, 224 -> 112, 240 -> 120, then 120 + 128 = 248 channels."""
    model = kmc.DenseNet(growth_rate=32)
    assert model.input.shape == (None, 96, 96, 1) and model.output.shape == (None, 10)
    assert output_shapes(model, ["pool1", "pool2_pool", "pool3_pool", "pool4_pool", "relu"]) == [
        (24, 24, 64), (12, 12, 96), (6, 6, 112), (3, 3, 120), (3, 3, 248)
    ]


def test_unet_keeps_the_input_size_and_rejects_indivisible_inputs():
    model = kmc.UNet(input_shape=(48, 64, 3), classes=5, depth=4, width_ratio=1 / 16)
    assert model.output.shape == (None, 48, 64, 5)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 16. Received: input_shape=\(40, 64, 3\)"):
        kmc.UNet(input_shape=(40, 64, 3), depth=4)


@pytest.mark.parametrize(
    "call, expected",
    [
        # Counts derived from the seeds' layer tables (1 input channel, 10 classes).
        (lambda: kmc.AlexNet(input_shape=(224, 224, 1), classes=10), 46_764_746),
        (lambda: kmc.VGG11(input_shape=(224, 224, 1), classes=10, width_ratio=0.25), 43_093_322),
        (lambda: kmc.NiN(input_shape=(224, 224, 1), classes=10), 1_992_166),
        (lambda: kmc.GoogLeNet(input_shape=(96, 96, 1), classes=10), 5_977_530),
    ],
    ids=["alexnet", "vgg11-small", "nin", "googlenet"],
)
def test_d2l_configurations_have_the_seeds_parameter_counts(call, expected):
    assert call().count_params() == expected
