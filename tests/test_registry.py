"""The registry and the argument handling every builder shares."""

import keras
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.registry import register_model


def test_wildcards_and_filters_select_registered_names():
    everything = kmc.list_models()
    assert "bn_lenet" in everything and everything == sorted(everything)
    assert kmc.list_models("bn_*") == ["bn_lenet"]
    assert kmc.list_models("BN_LeNet") == ["bn_lenet"]
    assert kmc.list_models(family="lenet") == ["bn_lenet"]
    assert kmc.list_models("no_such_*") == []


def test_duplicate_registration_is_rejected():
    with pytest.raises(ValueError, match="already registered.*Received: name='bn_lenet'"):
        register_model(name="bn_lenet", family="lenet", default_input_shape=(28, 28, 1),
                       reference="test")(lambda **kwargs: None)


def test_a_model_registered_for_an_experiment_can_be_unregistered():
    builder = lambda **kwargs: kmc.BNLeNet(**kwargs)  # noqa: E731
    register_model(name="my_lenet", family="test", default_input_shape=(28, 28, 1),
                   reference="test")(builder)
    assert kmc.get_model("my_lenet", classes=3).output.shape == (None, 3)
    assert kmc.unregister_model("MY_LENET").builder is builder
    assert "my_lenet" not in kmc.list_models()
    with pytest.raises(ValueError, match="Received: name='my_lenet'"):
        kmc.unregister_model("my_lenet")


def test_unknown_name_lists_what_exists():
    with pytest.raises(ValueError, match="Registered models: .*bn_lenet.*Received: name='lenet5'"):
        kmc.get_model("lenet5")


def test_get_model_forwards_builder_arguments_including_name():
    model = kmc.get_model("bn_lenet", classes=3, name="mine")
    assert model.name == "mine" and model.output.shape == (None, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(15, 28, 1)), r"at least 16x16.*Received: input_shape=\(15, 28, 1\)"),
        (dict(input_shape=(None, None, 1)), r"static spatial size.*Received: input_shape=\(None, None, 1\)"),
        (dict(input_shape=(28, 28)), r"3 positive integers.*Received: input_shape=\(28, 28\)"),
        (dict(input_shape=(28, 28, 1), input_tensor=keras.Input((32, 32, 1))),
         r"disagree. Received: input_shape=\(28, 28, 1\), input_tensor.shape=\(32, 32, 1\)"),
        (dict(input_tensor="pixels"), r"rank 4.*Received: input_tensor='pixels'"),
        (dict(include_top=1), "Received: include_top=1"),
        (dict(name=""), "Received: name=''"),
        (dict(width_ratio=0), "Received: width_ratio=0"),
    ],
)
def test_bad_input_arguments_name_the_argument_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kmc.BNLeNet(**kwargs)


def test_unusual_channel_counts_warn_but_build():
    with pytest.warns(UserWarning, match="1 \\(grayscale\\) or 3 \\(RGB\\).*for 4 channels"):
        model = kmc.BNLeNet(input_shape=(28, 28, 4))
    assert model.input.shape == (None, 28, 28, 4)


def test_headless_model_accepts_any_size_above_the_minimum():
    features = kmc.BNLeNet(include_top=False, pooling="max")
    assert features.input.shape == (None, None, None, 1)
    assert features.output.shape == (None, 16)


def test_channels_first_data_format_is_honoured():
    keras.config.set_image_data_format("channels_first")
    model = kmc.BNLeNet(input_shape=(1, 28, 28))
    assert model.get_layer("conv1_bn").axis == 1
    assert model.output.shape == (None, 10)


def test_batch_norm_implementation_switches_every_normalisation_layer():
    with kmc.batch_norm_implementation("keras"):
        reference = kmc.BNLeNet()
    ours = kmc.BNLeNet()
    kinds = lambda model: {type(layer).__name__ for layer in model.layers if layer.name.endswith("_bn")}
    assert kinds(reference) == {"BatchNormalization"} and kinds(ours) == {"BatchNorm"}
    with pytest.raises(ValueError, match="Received: implementation='torch'"):
        with kmc.batch_norm_implementation("torch"):
            pass
