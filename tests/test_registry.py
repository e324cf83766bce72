"""The registry and the argument handling every builder shares."""

import inspect
import json
import pathlib

import keras
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn import applications
from keras_modern_cnn.assembly import Family, Variant, without_annotations
from keras_modern_cnn.registry import natural_key, register_model

# Every public builder's module, signature and docstring, recorded from the generated builders
# they replaced (one explicit function per variant now); LeNet's `batch_norm` spelling since.
BUILDER_API = pathlib.Path(__file__).with_name("data") / "builder_api.json"


def test_every_public_builder_keeps_its_signature_and_docstring_is_typed_and_written_out():
    recorded = json.loads(BUILDER_API.read_text())
    assert sorted(recorded) == sorted(applications.__all__)
    for name, expected in recorded.items():
        builder = getattr(applications, name)
        signature = inspect.signature(builder)
        assert {"module": builder.__module__, "signature": str(without_annotations(signature)),
                "doc": inspect.getdoc(builder)} == expected, name
        if name != "encoder_names":
            assert signature.return_annotation is keras.Model, name
            assert all(p.annotation is not p.empty for p in signature.parameters.values()), name
        # grep finds it: an explicit `def` of that name in its family module.
        assert f"def {name}(" in inspect.getsource(inspect.getmodule(builder)), name


def test_a_variant_that_drifts_from_its_table_row_fails_at_definition():
    def generic(arch=(), *, width_ratio=1.0, include_top=True, weights=None, input_tensor=None,
                input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                name="toy", include_preprocessing=False, default_input_shape=(32, 32, 3)):
        return arch

    family = Family(name="toy", builder=generic, configs={"toy1": Variant("Toy1", "ref", {"arch": (1,)})},
                    summary="", paper="", options=("width_ratio",), min_input_size=lambda c: 1)
    with pytest.raises(TypeError, match="Toy1.*must be.*name='toy1'.*include_preprocessing=False, width_ratio=1.0"):
        @family.variant("toy1")
        def Toy1(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
                 classes=10, classifier_activation="softmax", name="toy1", *, include_preprocessing=False,
                 width_ratio=1.0):
            return generic(**family.configs["toy1"].arguments(locals()))


def test_wildcards_and_filters_select_registered_names_in_natural_order():
    everything = kmc.list_models()
    assert "bn_lenet" in everything and everything == sorted(everything, key=natural_key)
    assert kmc.list_models("resnet*") == [
        "resnet18", "resnet34", "resnet50", "resnet50_tv", "resnet50v2", "resnet101",
        "resnet101_tv", "resnet101v2", "resnet152", "resnet152_tv", "resnet152v2",
    ]
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
