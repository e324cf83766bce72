"""Backbone features beyond the registry-wide contract: U-Net on an encoder, stochastic depth,
zero-initialised last BN, and the encoder dimension of the U-Net hypermodel."""

import keras
import keras_tuner
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.layers import DropPath
from keras_modern_cnn.tuning import HyperUNet

TINY = dict(input_shape=(32, 32, 3), width_ratio=1 / 16, classes=3)


def count_layers(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)


def test_unet_encoder_takes_the_classifier_weights_by_name_and_reloads_in_safe_mode(tmp_path):
    classifier = kmc.ResNet18(**TINY)
    model = kmc.UNet(encoder="resnet18", **TINY)
    copied = kmc.copy_weights_by_name(classifier, model)
    assert "conv1_conv" in copied and "conv5_block2_2_bn" in copied and "predictions" not in copied
    np.testing.assert_array_equal(
        model.get_layer("conv1_conv").kernel.numpy(), classifier.get_layer("conv1_conv").kernel.numpy()
    )
    path = tmp_path / "unet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded(images), model(images), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(encoder="alexnet"), "encoder_names|exact stage features.*Received: encoder='alexnet'"),
        (dict(encoder="resnet18", depth=3), r"classic encoder.*Received: depth=3, encoder='resnet18'"),
        (dict(decoder_filters=(8, 8)), r"Received: decoder_filters=\(8, 8\)"),
        (dict(encoder="resnet18", decoder_filters=(8, 8)), r"5 integers.*Received: decoder_filters=\(8, 8\)"),
        (dict(encoder="resnet18", input_shape=(48, 48, 3)),
         r"divisible by its largest reduction = 32. Received: input_shape=\(48, 48, 3\)"),
    ],
)
def test_unet_encoder_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kmc.UNet(**kwargs)


def test_drop_path_is_off_by_default_and_drops_whole_residual_branches_when_on(tmp_path):
    plain = kmc.ResNet18(**TINY)
    dropping = kmc.ResNet18(drop_path_rate=0.5, **TINY)
    # Eight blocks at rates 0, 0.5/7, ..., 0.5: the first (rate 0) gets no layer.
    assert count_layers(plain, DropPath) == 0 and count_layers(dropping, DropPath) == 7
    assert dropping.count_params() == plain.count_params()
    rates = [layer.rate for layer in dropping.layers if isinstance(layer, DropPath)]
    np.testing.assert_allclose(rates, np.linspace(0, 0.5, 8)[1:])
    kmc.copy_weights_by_name(plain, dropping)  # the body; then the head
    dropping.get_layer("predictions").set_weights(plain.get_layer("predictions").get_weights())
    images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(dropping(images, training=False), plain(images, training=False), rtol=1e-5, atol=1e-6)
    path = tmp_path / "dropping.keras"
    dropping.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert [layer.rate for layer in reloaded.layers if isinstance(layer, DropPath)] == rates


def test_drop_path_layer_zeroes_or_rescales_each_example():
    layer = DropPath(0.5, seed=1)
    x = np.ones((64, 2, 2, 3), "float32")
    y = np.asarray(layer(x, training=True))
    per_example = y.reshape(64, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert np.all(per_example.min(axis=1) == per_example.max(axis=1))  # whole examples
    assert 0 < (per_example[:, 0] == 0).sum() < 64
    np.testing.assert_array_equal(layer(x, training=False), x)
    with pytest.raises(ValueError, match="Received: rate=1.0"):
        DropPath(1.0)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_densenet_drop_path_on_new_features(memory_efficient):
    model = kmc.DenseNet(
        (2, 2), 8, drop_path_rate=0.2, memory_efficient=memory_efficient, input_shape=(32, 32, 1)
    )
    assert count_layers(model, DropPath) == 3  # four layers, the first at rate 0
    assert model.count_params() == kmc.DenseNet((2, 2), 8, input_shape=(32, 32, 1)).count_params()


@pytest.mark.parametrize("name, last", [("resnet18", "_2_bn"), ("resnet50", "_3_bn"), ("resnet50v2", "_3_conv")])
def test_zero_init_last_bn_zeroes_the_end_of_every_residual_branch(name, last):
    model = kmc.get_model(name, zero_init_last_bn=True, **TINY)
    ends = [layer for layer in model.layers if layer.name.endswith(last)]
    assert ends and all(
        not np.any((layer.gamma if last.endswith("bn") else layer.kernel).numpy()) for layer in ends
    )
    assert model.count_params() == kmc.get_model(name, **TINY).count_params()


def test_unet_hypermodel_searches_the_encoder():
    hypermodel = HyperUNet(input_shape=(32, 32, 3), classes=3, width_ratio=0.125)
    assert "resnet18" in hypermodel.search_space()["encoder"].values
    hp = keras_tuner.HyperParameters()
    hp.Fixed("encoder", "resnet18")
    model = hypermodel.build(hp)
    assert model.output_shape == (None, 32, 32, 3) and "conv5_block2_out" in [l.name for l in model.layers]
    with pytest.raises(ValueError, match="Received: encoder='alexnet'"):
        HyperUNet(input_shape=(32, 32, 3), classes=3, encoder="alexnet")
