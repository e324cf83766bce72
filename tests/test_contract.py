"""Registry-driven contract tests: every registered model joins by adding one golden row.

A golden row names the reference the variant reproduces and its exact parameter counts at the
default configuration (Keras `count_params()` total, BN moving statistics included, and the
trainable count torchvision reports), plus the keyword arguments of a tiny configuration used
for forward passes. Full-size models are only built, never run.
"""

import json

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.cards import card
from keras_modern_cnn.registry import CARDS_PATH

# name: (total, trainable, tiny builder kwargs). Keep rows grouped by family.
GOLDEN = {
    # --- lenet ---
    # d2l 8.5.4 BN-LeNet: 44,878 trainable + 4 BN layers x 2 x (6, 16, 120, 84) moving stats.
    "bn_lenet": (45_330, 44_878, dict(input_shape=(28, 28, 1))),
    # --- alexnet ---
    # d2l 8.1 AlexNet (96-256-384-384-256, dense 4096-4096) at 224x224x3, 1000 classes.
    "alexnet": (50_844_008, 50_844_008, dict(input_shape=(67, 67, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "alexnet_bn": (50_848_136, 50_845_384, dict(input_shape=(67, 67, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    # torchvision alexnet (64-192-384-256-256): trainable equals torchvision's.
    "alexnet_tv": (61_100_840, 61_100_840, dict(input_shape=(63, 63, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    # --- vgg ---
    # vgg16/vgg19 equal keras.applications; vgg11/vgg13 and vgg16_bn trainable equal torchvision.
    "vgg11": (132_863_336, 132_863_336, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg11_bn": (132_874_344, 132_868_840, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg13": (133_047_848, 133_047_848, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg13_bn": (133_059_624, 133_053_736, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg16": (138_357_544, 138_357_544, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg16_bn": (138_374_440, 138_365_992, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg19": (143_667_240, 143_667_240, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    "vgg19_bn": (143_689_256, 143_678_248, dict(input_shape=(32, 32, 3), width_ratio=1 / 16, dense_units=(16, 16))),
    # --- nin ---
    "nin": (7_439_608, 7_439_608, dict(input_shape=(67, 67, 3), width_ratio=1 / 16)),
    # --- googlenet ---
    "googlenet": (6_998_552, 6_998_552, dict(input_shape=(32, 32, 3), width_ratio=1 / 4)),
    "googlenet_bn": (7_020_392, 7_005_832, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    # torchvision googlenet (BN, 3x3 third path, no aux heads): trainable equals torchvision's.
    "googlenet_tv": (6_639_464, 6_624_904, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    # --- resnet ---
    # resnet18/34 trainable equal torchvision; the others equal keras.applications.
    "resnet18": (11_699_112, 11_689_512, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet34": (21_814_696, 21_797_672, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet50": (25_636_712, 25_583_592, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet101": (44_707_176, 44_601_832, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet152": (60_419_944, 60_268_520, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet50v2": (25_613_800, 25_568_360, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet101v2": (44_675_560, 44_577_896, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet152v2": (60_380_648, 60_236_904, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    # torchvision's (and timm's) v1.5 bottleneck ResNets: trainable equals torchvision's.
    "resnet50_tv": (25_610_152, 25_557_032, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet101_tv": (44_654_504, 44_549_160, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    "resnet152_tv": (60_344_232, 60_192_808, dict(input_shape=(32, 32, 3), width_ratio=1 / 16)),
    # --- densenet ---
    # densenet121/169/201 equal keras.applications (trainable: torchvision); 264 from Table 1.
    "densenet121": (8_062_504, 7_978_856, dict(input_shape=(32, 32, 3), width_ratio=1 / 8)),
    "densenet169": (14_307_880, 14_149_480, dict(input_shape=(32, 32, 3), width_ratio=1 / 8)),
    "densenet201": (20_242_984, 20_013_928, dict(input_shape=(32, 32, 3), width_ratio=1 / 8)),
    "densenet264": (33_736_232, 33_337_704, dict(input_shape=(32, 32, 3), width_ratio=1 / 8)),
    "densenet_d2l": (764_834, 758_226, dict(input_shape=(32, 32, 1), width_ratio=1 / 8)),
    # --- unet ---
    # Paper U-Net, 1 input channel, 2 classes: 31,030,658 counted by hand (64-128-256-512-1024 double convs,
    # four up-convolutions, a 1x1 classifier).
    "unet": (31_030_658, 31_030_658, dict(input_shape=(32, 32, 1), width_ratio=1 / 16)),
}


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_every_registered_model_has_a_golden_row():
    assert set(kmc.list_models()) == set(GOLDEN)


# One model per block type (each family's layers and each kind of block once): the matrices
# (export round trips, dtype policies, gradient reach, composition) run on these in the
# TensorFlow pass. The other registered variants stack the same blocks deeper or wider: their
# full-size parameter counts and model cards (test_full_size_parameter_counts_equal_the_reference)
# and a tiny forward pass with the head contract (every model on every backend) prove them, and
# the deepest of each residual block type runs the policy matrix under float16, where depth
# matters (test_batch_norm_policies.py).
BLOCK_TYPE_MODELS = (
    "bn_lenet", "alexnet", "alexnet_bn", "vgg11", "vgg11_bn", "nin", "googlenet", "googlenet_bn",
    "resnet18", "resnet50", "resnet50v2", "densenet121", "densenet_d2l", "unet",
)
DEEPEST_OF_BLOCK_TYPE = ("resnet152", "resnet152v2", "densenet264")
# Every registered model; those outside BLOCK_TYPE_MODELS only in `make test`, not test-fast.
EVERY_MODEL = [
    name if name in BLOCK_TYPE_MODELS else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(GOLDEN)
]


# Counted once: a parameter count is the backend's layers' shapes, the same on every backend
# (each backend builds and runs every model in the tiny-configuration test below).
@pytest.mark.backend_independent
@pytest.mark.parametrize("name", EVERY_MODEL)
def test_full_size_parameter_counts_equal_the_reference(name):
    total, trainable, _ = GOLDEN[name]
    model = kmc.get_model(name)
    assert (model.count_params(), trainable_count(model)) == (total, trainable)
    # The model card, read without a build, is the built model's (counts, FLOPs, stages).
    assert json.loads(CARDS_PATH.read_text())[name] == card(kmc.get_spec(name), model)
    meta = kmc.get_model_meta(name)
    assert (meta["params"], meta["trainable_params"], meta["params_torchvision"]) == (
        total, trainable, trainable
    )
    assert tuple(model.input.shape[1:]) == meta["default_input_shape"]
    assert [info.name for info in meta["feature_info"]] == [s[0] for s in kmc.get_spec(name).stages]


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_tiny_configuration_runs_and_honours_the_head_contract(name):
    spec = kmc.get_spec(name)
    tiny = GOLDEN[name][2]
    shape = tiny["input_shape"]
    images = np.random.default_rng(0).uniform(size=(2, *shape)).astype("float32")
    if spec.task == "segmentation":
        model = kmc.get_model(name, classes=3, **tiny)
        assert tuple(model(images).shape) == (2, *shape[:-1], 3)
        return
    model = kmc.get_model(name, classes=7, **tiny)
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)

    features = kmc.get_model(name, include_top=False, pooling="avg", **tiny)
    assert len(features(images).shape) == 2


# Argument checks run before any layer is built (`keras_modern_cnn.validation`): no backend
# work, so they are proven in the TensorFlow pass.
@pytest.mark.backend_independent
@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize(
    "kwargs, received",
    [
        (dict(classes=0), "classes=0"),
        (dict(include_top=False, pooling="mean"), "pooling='mean'"),
        (dict(weights="no_such_preset"), "weights='no_such_preset'"),
        (dict(weights="/no/such/file.weights.h5"), "weights='/no/such/file.weights.h5'"),
        (dict(input_shape=(2, 2, 3)), "input_shape=(2, 2, 3)"),
        (dict(classifier_activation="no_such_activation"), "classifier_activation="),
    ],
)
def test_bad_arguments_are_rejected_with_a_message_naming_them(name, kwargs, received):
    with pytest.raises(ValueError, match="Received: " + received.replace("(", r"\(").replace(")", r"\)")):
        kmc.get_model(name, **kwargs)


def tiny_batch(name, classes, batch=2):
    """Images and matching sparse labels (per image, or per pixel for segmentation)."""
    shape = GOLDEN[name][2]["input_shape"]
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(batch, *shape)).astype("float32")
    if kmc.get_spec(name).task == "segmentation":
        labels = rng.integers(0, classes, size=(batch, *shape[:-1]))
    else:
        labels = rng.integers(0, classes, size=(batch,))
    return images, labels


def training_gradients(model, images, output_weights):
    """Gradients of a linear read-out of the training-mode outputs, for every trainable variable.

    The read-out `sum(outputs * output_weights)` sends the same non-zero signal back from every
    output element whatever the weights are, unlike a cross-entropy that can saturate.
    """
    if keras.backend.backend() == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def read_out(trainable):
            outputs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
            return keras.ops.sum(outputs * output_weights)

        return jax.jit(jax.grad(read_out))([v.value for v in model.trainable_variables])
    if keras.backend.backend() == "torch":
        import torch

        trainable = [v.value for v in model.trainable_variables]
        read_out = (model(images, training=True) * torch.as_tensor(output_weights)).sum()
        return torch.autograd.grad(read_out, trainable, allow_unused=True)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        read_out = tf.reduce_sum(model(images, training=True) * output_weights)
    return tape.gradient(read_out, model.trainable_variables)


def open_every_relu(model):
    """Set every bias and BatchNorm offset to +1 so ReLUs pass most of their inputs.

    With biases at zero, a narrow ReLU stack (NiN at width 1/16) can be born with every unit of
    a layer inactive on a small batch, which silences the whole network below it: a property of
    the draw, not a defect. With +1 offsets a layer goes silent only if its input is disconnected
    or multiplied away, which is what the test looks for.
    """
    for variable in model.trainable_variables:
        if variable.path.endswith(("/bias", "/beta")):
            variable.assign(keras.ops.ones(variable.shape, variable.dtype))


# One model per family, for tests of what a family's variants share (functional composition,
# serialization): one model per block type in the TensorFlow pass, these on JAX and PyTorch.
FAMILY_MODELS = ("bn_lenet", "alexnet_bn", "vgg11_bn", "nin", "googlenet_bn", "resnet18",
                 "densenet_d2l", "unet")
SHARED_BEHAVIOUR_MODELS = (
    BLOCK_TYPE_MODELS if keras.backend.backend() == "tensorflow" else FAMILY_MODELS
)


@pytest.mark.slow
@pytest.mark.parametrize("name", BLOCK_TYPE_MODELS)
def test_a_training_step_reaches_every_trainable_variable(name):
    """Every trainable variable gets a non-zero gradient: no dead or disconnected branch.

    The logits (no final activation) are read out linearly on a batch of zero-mean images, with
    ReLUs opened by `open_every_relu`, so a healthy network cannot fail. Conv biases that feed a
    BatchNorm (keras.applications' ResNet v1) have an exactly-zero gradient in exact arithmetic;
    they count as reached through rounding, as in Keras's own model.
    """
    model = kmc.get_model(name, classes=3, classifier_activation=None, **GOLDEN[name][2])
    open_every_relu(model)
    shape = GOLDEN[name][2]["input_shape"]
    rng = np.random.default_rng(2)
    images = rng.standard_normal((4, *shape)).astype("float32")
    output_weights = rng.standard_normal((4, *model.output_shape[1:])).astype("float32")
    gradients = training_gradients(model, images, output_weights)
    unreached = [
        variable.path for variable, gradient in zip(model.trainable_variables, gradients)
        if gradient is None or not np.any(np.asarray(gradient))
    ]
    assert not unreached


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_BEHAVIOUR_MODELS)
def test_two_named_copies_compose_in_one_model_from_a_preceding_layer(name):
    """keras #19689 (duplicate layer names) and keras.applications' `input_tensor` contract."""
    tiny = dict(GOLDEN[name][2])
    shape = tiny.pop("input_shape")
    inputs = keras.Input(shape)
    preceding = keras.layers.Rescaling(2.0, name="rescale")(inputs)  # exact in float32
    logits = dict(classes=3, classifier_activation=None, **tiny)
    first = kmc.get_model(name, input_tensor=preceding, name=f"{name}_a", **logits)
    second = kmc.get_model(name, input_shape=shape, name=f"{name}_b", **logits)
    combined = keras.Model(
        inputs, keras.layers.Average()([first.output, second(preceding)])
    )
    assert first.inputs[0] is inputs
    assert combined.get_layer("rescale").scale == 2.0
    images, _ = tiny_batch(name, 3)
    # `first` starts at the raw input (its model includes the preceding layer).
    expected = (np.asarray(first(images)) + np.asarray(second(images * 2))) / 2
    np.testing.assert_allclose(combined(images), expected, rtol=1e-3, atol=1e-4)


# The cheapest variant of each family (ResNet v2's stages are its own). Stage names of every
# variant are checked against its full-size model by the parameter-count test (model cards).
REPRESENTATIVES = [
    "alexnet", "bn_lenet", "densenet_d2l", "googlenet", "nin", "resnet18", "resnet50v2", "vgg11_bn",
]


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_features_only_returns_the_declared_stages_and_loads_the_classifier_weights(name, tmp_path):
    """Every classifier gives its stages; its weights file loads into the feature model."""
    tiny = GOLDEN[name][2]
    spec = kmc.get_spec(name)
    classifier = kmc.get_model(name, classes=3, **tiny)
    features = kmc.get_model(name, features_only=True, **tiny)
    assert len(features.outputs) == len(spec.stages) == len(features.feature_info)
    side = tiny["input_shape"][0]
    for output, info, (layer, reduction) in zip(features.outputs, features.feature_info, spec.stages):
        assert (info.name, info.reduction) == (layer, reduction)
        assert info.channels == output.shape[-1]
        if spec.exact_stages:
            assert output.shape[1:3] == (side // reduction, side // reduction)
    classifier.save_weights(tmp_path / "classifier.weights.h5")
    features.load_weights(tmp_path / "classifier.weights.h5")
    for layer in features.layers:
        for ours, theirs in zip(layer.weights, classifier.get_layer(layer.name).weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    last = kmc.get_model(name, features_only=True, out_indices=(-1,), **tiny)
    assert [info.name for info in last.feature_info] == [spec.stages[-1][0]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(out_indices=(0, -5)), r"names a stage twice.*Received: out_indices=\(0, -5\)"),
        (dict(out_indices=(5,)), r"lie in \[-5, 4\].*Received: out_indices=\(5,\)"),
        (dict(out_indices=(-6,)), r"Received: out_indices=\(-6,\)"),
        (dict(out_indices=()), r"non-empty.*Received: out_indices=\(\)"),
        (dict(out_indices=(1.0,)), r"integer.*Received: out_indices=\(1.0,\)"),
        (dict(pooling="avg"), r"does not apply.*Received: pooling='avg'"),
    ],
)
def test_bad_stage_selections_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kmc.get_model("resnet18", features_only=True, input_shape=(32, 32, 3), **kwargs)


def test_out_indices_without_features_only_and_models_without_stages_are_rejected():
    with pytest.raises(ValueError, match=r"features_only=True.*Received: out_indices=\(1,\)"):
        kmc.get_model("resnet18", out_indices=(1,))
    with pytest.raises(ValueError, match="declares no stage features.*Received: name='unet'"):
        kmc.get_model("unet", features_only=True)


@pytest.mark.parametrize("name", [*REPRESENTATIVES, "unet"])
def test_the_head_can_be_replaced_and_read_before_it(name):
    tiny = GOLDEN[name][2]
    model = kmc.get_model(name, classes=3, **tiny)
    if name == "nin":
        with pytest.raises(ValueError, match="class block is its head.*Received: model='nin'"):
            kmc.replace_head(model, 5)
        return
    replaced = kmc.replace_head(model, 5, classifier_activation=None)
    assert replaced.output.shape[-1] == 5 and replaced.layers[-1].name == "predictions"
    assert replaced.get_layer(model.layers[1].name) is model.layers[1]  # the body is shared
    assert kmc.pre_logits(model).output.shape == model.get_layer("predictions").input.shape


@pytest.mark.parametrize("encoder", ["densenet_d2l", "googlenet", "resnet18", "vgg11"])
def test_unet_on_an_encoder_of_every_family_keeps_the_input_size(encoder):
    assert {kmc.get_spec(name).family for name in kmc.encoder_names()} == {
        "resnet", "densenet", "vgg", "googlenet"
    }
    model = kmc.UNet(encoder=encoder, input_shape=(None, None, 3), classes=3, width_ratio=1 / 16)
    assert model(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 64, 64, 3)
