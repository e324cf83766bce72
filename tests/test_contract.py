"""Registry-driven contract tests: every registered model joins by adding one golden row.

A golden row names the reference the variant reproduces and its exact parameter counts at the
default configuration (Keras `count_params()` total, BN moving statistics included, and the
trainable count torchvision reports), plus the keyword arguments of a tiny configuration used
for forward passes. Full-size models are only built, never run.
"""

import numpy as np
import pytest

import keras_modern_cnn as kmc

# name: (total, trainable, tiny builder kwargs). Keep rows grouped by family.
GOLDEN = {
    # --- lenet ---
    # d2l 8.5.4 BN-LeNet: 44,878 trainable + 4 BN layers x 2 x (6, 16, 120, 84) moving stats.
    "bn_lenet": (45_330, 44_878, dict(input_shape=(28, 28, 1))),
    # --- alexnet ---
    # --- vgg ---
    # --- nin ---
    # --- googlenet ---
    # --- resnet ---
    # --- densenet ---
    # --- unet ---
}


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_every_registered_model_has_a_golden_row():
    assert set(kmc.list_models()) == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_full_size_parameter_counts_equal_the_reference(name):
    total, trainable, _ = GOLDEN[name]
    model = kmc.get_model(name)
    assert (model.count_params(), trainable_count(model)) == (total, trainable)


@pytest.mark.parametrize("name", sorted(GOLDEN))
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


@pytest.mark.parametrize("name", sorted(GOLDEN))
@pytest.mark.parametrize(
    "kwargs, received",
    [
        (dict(classes=0), "classes=0"),
        (dict(include_top=False, pooling="mean"), "pooling='mean'"),
        (dict(weights="imagenet"), "weights='imagenet'"),
        (dict(weights="/no/such/file.weights.h5"), "weights='/no/such/file.weights.h5'"),
        (dict(input_shape=(2, 2, 3)), "input_shape=(2, 2, 3)"),
        (dict(classifier_activation="no_such_activation"), "classifier_activation="),
    ],
)
def test_bad_arguments_are_rejected_with_a_message_naming_them(name, kwargs, received):
    with pytest.raises(ValueError, match="Received: " + received.replace("(", r"\(").replace(")", r"\)")):
        kmc.get_model(name, **kwargs)
