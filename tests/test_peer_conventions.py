"""The calls users of timm, KerasHub and KerasTuner write out of habit, each in that library's
own style: accepted where the meaning is ours (one name documented as ours, the peer's as an
alias), refused with a message naming ours where it is not.

What these conventions change is argument handling and graph surgery, the same on every
backend: they run in the TensorFlow pass only (conftest.py), except `dtype=`, whose policies
each backend computes in.
"""

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.applications import HyperImageAugment

import keras_modern_cnn as kmc
from keras_modern_cnn.data.embedded import load_shapes
from keras_modern_cnn.tuning import HyperLeNet

TINY = dict(input_shape=(32, 32, 3), width_ratio=0.125)


def shapes(count, size=16):
    (images, labels, _), _ = load_shapes(num_train=count, num_test=1, image_size=size)
    return images.astype("float32") / 255.0, labels


# timm: create_model(name, num_classes=...), model.num_features, model.reset_classifier(n),
# features_only=True with out_indices=n ("the last n stages").


@pytest.mark.backend_independent
def test_timm_create_model_num_classes_num_features_and_reset_classifier(tmp_path):
    model = kmc.get_model("resnet18", num_classes=10, **TINY)
    assert model.output_shape == (None, 10)
    assert kmc.num_features(model) == 64  # 512 * 0.125: what the classifier reads
    assert kmc.reset_classifier(model, 5).output_shape == (None, 5)
    assert kmc.reset_classifier(model, 0).output_shape == (None, kmc.num_features(model))
    # Functions, not attributes: they work on the reloaded model as on the built one.
    reloaded = keras.saving.load_model(kmc.saving.save_model(model, tmp_path / "m.keras"))
    assert kmc.num_features(reloaded) == 64
    assert kmc.num_features(kmc.ResNet18(include_top=False, pooling="avg", **TINY)) == 64

    with pytest.raises(ValueError, match=r"name the same argument.*Received: num_classes=3, classes=3"):
        kmc.get_model("resnet18", num_classes=3, classes=3)
    # A misspelt argument lists the builder's arguments, `classes` among them.
    with pytest.raises(ValueError, match=r"takes no argument `num_clases`.*pooling, classes, "
                                         r"classifier_activation.*Received: num_clases=3"):
        kmc.get_model("resnet18", num_clases=3)


@pytest.mark.backend_independent
def test_timm_out_indices_as_an_integer_takes_the_last_n_stages():
    backbone = kmc.get_model("resnet18", features_only=True, out_indices=3, **TINY)
    assert [info.reduction for info in backbone.feature_info] == [8, 16, 32]
    assert backbone.feature_info == kmc.get_model(
        "resnet18", features_only=True, out_indices=(-3, -2, -1), **TINY).feature_info
    for n in (0, 6, -1):
        with pytest.raises(ValueError, match=rf"last n stages.*\[1, 5\].*Received: out_indices={n}"):
            kmc.get_model("resnet18", features_only=True, out_indices=n)


# KerasHub: Backbone(..., dtype="bfloat16").


@pytest.mark.parametrize("dtype, variables, compute", [
    ("bfloat16", "bfloat16", "bfloat16"), ("mixed_float16", "float32", "float16"),
])
def test_keras_hub_dtype_sets_every_layers_policy_and_leaves_the_global_one(tmp_path, dtype, variables, compute):
    model = kmc.BNLeNet(input_shape=(16, 16, 1), width_ratio=0.5, dtype=dtype)
    assert keras.config.dtype_policy().name == "float32"
    assert {layer.dtype_policy.name for layer in model.layers[1:]} == {dtype}
    assert {weight.dtype for weight in model.weights} == {variables}
    outputs = model.predict_on_batch(np.ones((2, 16, 16, 1), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == compute
    reloaded = keras.saving.load_model(kmc.saving.save_model(model, tmp_path / "m.keras"))
    assert reloaded.get_layer("conv1_conv").dtype_policy.name == dtype
    # The generic builders and get_model take it too.
    unet = kmc.get_model("unet", input_shape=(16, 16, 1), classes=3, width_ratio=0.0625, depth=2, dtype=dtype)
    assert unet.get_layer("predictions").dtype_policy.name == dtype
    with pytest.raises(ValueError, match=r"Keras dtype policy.*Received: dtype='float8'"):
        kmc.ResNet18(dtype="float8")


# KerasTuner: hp.Choice for booleans, a compile_model override, HyperImageAugment, input_tensor.


@pytest.mark.backend_independent
def test_keras_tuner_boolean_choice_reaches_the_builder_as_a_bool(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("batch_norm", [True, False])  # KerasTuner stores the values 1 and 0
    # Every other dimension fixed: two distinct trials are batch_norm 1 and 0.
    hypermodel = HyperLeNet(input_shape=(16, 16, 1), classes=10, width_ratio=0.5, dense_layers=1,
                            dense_units=32, optimizer="sgd", learning_rate=0.1)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=2, hyperparameters=hp,
        directory=tmp_path, project_name="choice",
    )
    images, labels = shapes(64)
    tuner.search(images, labels, validation_split=0.25, epochs=1, batch_size=32, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert [trial.status for trial in trials] == ["COMPLETED"] * 2
    assert {trial.hyperparameters["batch_norm"] for trial in trials} == {0, 1}
    for trial in trials:
        model = tuner.hypermodel.build(trial.hyperparameters)
        has_bn = any(isinstance(layer, kmc.BatchNorm) for layer in model.layers)
        assert has_bn is bool(trial.hyperparameters["batch_norm"])


@pytest.mark.backend_independent
def test_keras_tuner_compile_model_override_searches_only_what_it_uses(tmp_path):
    class OwnOptimizer(HyperLeNet):
        def compile_model(self, hp, model):
            model.compile(optimizer=keras.optimizers.Adam(1e-3),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

    class SearchedOptimizer(HyperLeNet):
        def compile_model(self, hp, model):
            model.compile(optimizer=self.make_optimizer(hp),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

    for hypermodel_class, searched in [(OwnOptimizer, False), (SearchedOptimizer, True), (HyperLeNet, True)]:
        tuner = keras_tuner.RandomSearch(
            hypermodel_class(input_shape=(16, 16, 1), classes=10), objective="val_accuracy",
            max_trials=1, directory=tmp_path, project_name=hypermodel_class.__name__,
        )
        names = {hp.name for hp in tuner.oracle.hyperparameters.space}
        assert {"learning_rate", "optimizer"} <= names if searched else not names & {"learning_rate", "optimizer"}
        assert "dense_units" in names


@pytest.mark.backend_independent
def test_keras_tuner_image_augmentation_and_input_tensor_compose_with_the_network(tmp_path):
    augment = HyperImageAugment(input_shape=(16, 16, 1), augment_layers=0, rotate=[0.1, 0.2],
                                translate_x=0.1, translate_y=None, contrast=None)
    inputs = keras.Input((16, 16, 1), name="pixels")
    hypermodel = HyperLeNet(input_tensor=inputs, classes=10, width_ratio=0.5, augment=augment)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert model.inputs[0] is inputs and model.layers[1].name == "image_augment"
    assert {"factor_rotate", "factor_translate_x", "dense_units", "learning_rate"} <= set(hp.values)
    images, labels = shapes(32)
    model.fit(images, labels, epochs=1, batch_size=16, verbose=0)
    # Identity at inference; the model reloads in safe mode.
    reloaded = keras.saving.load_model(kmc.saving.save_model(model, tmp_path / "m.keras"))
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert HyperLeNet(input_shape=(16, 16, 1), classes=10, augment=True).build(
        keras_tuner.HyperParameters()).layers[1].name == "image_augment"

    with pytest.raises(ValueError, match=r"RandAugment.*augment_layers=0"):
        HyperLeNet(input_shape=(16, 16, 1), classes=10,
                   augment=HyperImageAugment(input_shape=(16, 16, 1), augment_layers=2))
    with pytest.raises(ValueError, match=r"Pass `input_shape`.*Received: input_shape=None"):
        HyperLeNet(classes=10)
    with pytest.raises(ValueError, match=r"disagree.*Received: input_shape=\(8, 8, 1\)"):
        HyperLeNet(input_shape=(8, 8, 1), input_tensor=inputs, classes=10)
