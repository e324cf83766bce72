"""Freezing and recalibrating BatchNorm, and the Keras BatchNorm pitfalls, against the zoo.

Pitfalls reproduced (see /work/shared/REFERENCE.md): keras-team/keras #23166 (Resizing or
CenterCrop before BatchNorm put it in training mode at inference), #23364 (`stateless_call`
dropping `training` on JAX), #9214/#20285 (fine-tuning with a frozen backbone moving its
BatchNorm statistics). Recalibration follows torch's `swa_utils.update_bn` (arXiv:1803.05407).
"""

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.layers import BatchNorm, freeze_batch_norm, recalibrate_batch_norm


def statistics(model):
    return [w.numpy().copy() for layer in kmc.layers.batch_norm_layers(model)
            for w in (layer.moving_mean, layer.moving_variance)]


def bn_lenet():
    return kmc.BNLeNet(classes=3, input_shape=(28, 28, 1))


def images(n, seed=0, shape=(28, 28, 1)):
    return np.random.default_rng(seed).normal(0.5, 2.0, size=(n, *shape)).astype("float32")


def test_recalibration_equals_numpy_statistics_over_the_whole_dataset():
    inputs = keras.Input((4, 4, 3))
    hidden = BatchNorm(name="first", momentum=0.9)(keras.layers.Conv2D(5, 3, name="conv")(inputs))
    model = keras.Model(inputs, BatchNorm(name="second", renorm=True)(keras.layers.ReLU()(hidden)))
    x = np.random.default_rng(0).normal(4.0, 3.0, size=(24, 4, 4, 3)).astype("float32")
    batches = [(x[i : i + 8], None) for i in range(0, 24, 8)]
    weights = [w.numpy().copy() for w in model.trainable_weights]

    assert recalibrate_batch_norm(model, batches, steps=3) == 24

    conv = keras.Model(inputs, model.get_layer("conv").output).predict(x, verbose=0).astype("float64")
    first = model.get_layer("first")
    np.testing.assert_allclose(first.moving_mean.numpy(), conv.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), conv.var(axis=(0, 1, 2)), rtol=1e-5)
    # The second layer sees the first normalised with each batch's own statistics (as update_bn).
    seen = []
    for chunk, _ in batches:
        c = conv[: len(chunk)] if False else conv[len(seen) * 8 : len(seen) * 8 + 8]
        normed = (c - c.mean(axis=(0, 1, 2))) / np.sqrt(c.var(axis=(0, 1, 2)) + first.epsilon)
        seen.append(np.maximum(normed * first.gamma.numpy() + first.beta.numpy(), 0.0))
    seen = np.concatenate(seen)
    second = model.get_layer("second")
    np.testing.assert_allclose(second.moving_mean.numpy(), seen.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second.moving_variance.numpy(), seen.var(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(
        second.moving_stddev.numpy(), np.sqrt(seen.var(axis=(0, 1, 2)) + second.epsilon), rtol=1e-4
    )
    for before, after in zip(weights, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_recalibration_arguments_are_validated():
    model = bn_lenet()
    batches = [images(2)]
    with pytest.raises(ValueError, match="Received: steps=0"):
        recalibrate_batch_norm(model, batches, steps=0)
    with pytest.raises(ValueError, match="ran out after 1 batches.*Received: steps=2"):
        recalibrate_batch_norm(model, batches, steps=2)
    with pytest.raises(ValueError, match="must yield batches"):
        recalibrate_batch_norm(model, images(2))
    with pytest.raises(ValueError, match="no keras_modern_cnn BatchNorm.*Received: model='nin'"):
        freeze_batch_norm(kmc.NiN(input_shape=(67, 67, 3), width_ratio=1 / 16, classes=3))
    with pytest.raises(ValueError, match="Received: frozen='yes'"):
        freeze_batch_norm(model, frozen="yes")


def test_frozen_backbone_fine_tuning_keeps_its_statistics_while_other_weights_train():
    """keras #9214/#20285: `backbone.trainable = True` must not unfreeze frozen BatchNorms."""
    backbone = kmc.BNLeNet(classes=3, input_shape=(28, 28, 1), classifier_activation=None)
    frozen_layers = freeze_batch_norm(backbone)
    backbone.trainable = True  # the usual "unfreeze for fine-tuning" step
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, name="new_head")(backbone(inputs)))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    x, y = images(8, seed=1), np.arange(8) % 2
    before_statistics = statistics(backbone)
    before_affine = [w.numpy().copy() for layer in frozen_layers for w in (layer.gamma, layer.beta)]
    affine = {id(w) for layer in frozen_layers for w in (layer.gamma, layer.beta)}
    assert not affine & {id(w) for w in model.trainable_weights}
    before_trainable = [w.numpy().copy() for w in backbone.trainable_weights]

    model.fit(x, y, epochs=2, batch_size=4, verbose=0)

    for before, after in zip(before_statistics, statistics(backbone)):
        np.testing.assert_array_equal(before, after)
    for before, layer_weight in zip(before_affine, [w for l in frozen_layers for w in (l.gamma, l.beta)]):
        np.testing.assert_array_equal(before, layer_weight.numpy())
    assert all(
        not np.array_equal(old, new.numpy())
        for old, new in zip(before_trainable, backbone.trainable_weights)
    )
    # Frozen means inference behaviour whatever `training` says.
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), atol=1e-5)
    assert all(layer.get_config()["frozen"] for layer in frozen_layers)


def test_unfreezing_restores_training_behaviour():
    model = bn_lenet()
    layers = freeze_batch_norm(model)
    freeze_batch_norm(model, frozen=False)
    assert all(layer.gamma.trainable and not layer.frozen for layer in layers)
    before = statistics(model)
    model(images(4), training=True)
    assert not np.allclose(before[0], statistics(model)[0])


@pytest.mark.parametrize("preprocessing", ["resizing", "center_crop", "rescaling"])
def test_preprocessing_before_the_first_batch_norm_keeps_inference_mode(preprocessing):
    """keras #23166: predicting one batch twice gives equal outputs and unchanged statistics.

    `predict` and `training=False` are safe. A bare `model(x)` is not on Keras 3.15: Resizing
    and CenterCrop declare `training=True` as their default, which Keras's call context then
    hands to every later layer, so BatchNorm (ours and keras.layers.BatchNormalization alike)
    normalises with batch statistics and updates them; the fix is in Keras after 3.15.
    """
    layer, size = {
        "resizing": (keras.layers.Resizing(28, 28), 32),
        "center_crop": (keras.layers.CenterCrop(28, 28), 32),
        "rescaling": (keras.layers.Rescaling(1 / 255), 28),
    }[preprocessing]
    inputs = keras.Input((size, size, 1))
    backbone = bn_lenet()
    model = keras.Model(inputs, backbone(layer(inputs)))
    x = np.random.default_rng(2).uniform(0, 255, size=(4, size, size, 1)).astype("float32")
    before = statistics(backbone)
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, model.predict(x, verbose=0))
    np.testing.assert_allclose(first, model(x, training=False), rtol=1e-5, atol=1e-6)
    for old, new in zip(before, statistics(backbone)):
        np.testing.assert_array_equal(old, new)


def test_stateless_call_honours_training_on_a_zoo_model():
    """keras #23364: `training` reaches every BatchNorm through `stateless_call`."""
    model = bn_lenet()
    x = images(4, seed=3)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    before = [np.array(v) for v in non_trainable]

    outputs, state = model.stateless_call(trainable, non_trainable, x, training=False)
    np.testing.assert_allclose(outputs, model(x, training=False), rtol=1e-5, atol=1e-6)
    for old, new in zip(before, state):
        np.testing.assert_array_equal(old, np.asarray(new))

    outputs, state = model.stateless_call(trainable, non_trainable, x, training=True)
    state = [np.array(v) for v in state]
    for old, variable in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())  # nothing mutated
    assert all(not np.array_equal(old, new) for old, new in zip(before, state))
    np.testing.assert_allclose(outputs, model(x, training=True), rtol=1e-5, atol=1e-6)
