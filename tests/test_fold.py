"""`kmc.utils.fold_batch_norm` on small hand-built graphs: what folds, what stays, exactness.

One model of each block type is folded in tests/test_export.py (its round-trip fixture builds them).
"""

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.layers import BatchNorm

BATCH_NORMS = (BatchNorm, keras.layers.BatchNormalization)


def randomize_batch_norms(model, seed=0):
    """Moving statistics, scale and offset away from their initial values."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BATCH_NORMS):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=channels))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, size=channels))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 2.0, size=channels))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(size=channels))
    return model


def batch_norm_names(model):
    return [layer.name for layer in model.layers if isinstance(layer, BATCH_NORMS)]


def assert_same_inference(folded, model, shape):
    images = np.random.default_rng(1).uniform(-1, 1, size=(3, *shape)).astype("float32")
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(
        np.asarray(folded(images, training=False)), expected,
        rtol=1e-4, atol=1e-4 * np.abs(expected).max(),
    )


@pytest.mark.parametrize("batch_norm", ["keras_modern_cnn", "keras"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_depthwise_and_dense_fold_with_or_without_bias(batch_norm, data_format):
    keras.config.set_image_data_format(data_format)
    make = BatchNorm if batch_norm == "keras_modern_cnn" else keras.layers.BatchNormalization
    axis = 1 if data_format == "channels_first" else -1
    shape = (3, 8, 8) if data_format == "channels_first" else (8, 8, 3)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = make(axis=axis, name="conv_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")(x)
    x = make(axis=axis, name="depthwise_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="dense")(x)
    outputs = make(name="dense_bn")(x)
    model = randomize_batch_norms(keras.Model(inputs, outputs, name="small"))
    weights_before = [np.array(w) for w in model.weights]

    folded = kmc.utils.fold_batch_norm(model)

    assert batch_norm_names(folded) == [] and folded.name == "small"
    assert folded.get_layer("conv").use_bias and folded.get_layer("depthwise").use_bias
    assert_same_inference(folded, model, shape)
    # The original is untouched: same layers, same values.
    assert len(batch_norm_names(model)) == 3
    for before, after in zip(weights_before, model.weights):
        np.testing.assert_array_equal(before, np.asarray(after))


def test_batch_norms_that_cannot_fold_stay_and_the_result_is_still_exact():
    inputs = keras.Input((8, 8, 3))
    shared = keras.layers.Conv2D(4, 3, name="shared_output")(inputs)
    kept_1 = BatchNorm(name="after_shared_output")(shared)  # the conv output has two consumers
    activated = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="relu_conv")(kept_1)
    kept_2 = BatchNorm(name="after_activation")(activated)
    kept_3 = BatchNorm(name="after_add")(keras.layers.Add()([kept_2, shared]))
    cross = keras.layers.Conv2D(4, 1, name="cross")(kept_3)
    kept_4 = BatchNorm(axis=1, name="not_the_channel_axis")(cross)
    folds = BatchNorm(name="folds")(keras.layers.Conv2D(2, 1, name="last")(kept_4))
    model = randomize_batch_norms(keras.Model(inputs, folds))

    folded = kmc.utils.fold_batch_norm(model)

    assert batch_norm_names(folded) == [
        "after_shared_output", "after_activation", "after_add", "not_the_channel_axis"
    ]
    assert_same_inference(folded, model, (8, 8, 3))


def test_sequential_models_fold_and_subclassed_ones_are_refused():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, name="dense"), BatchNorm(name="bn")], name="seq"
    )
    randomize_batch_norms(model)
    folded = kmc.utils.fold_batch_norm(model)
    assert batch_norm_names(folded) == [] and folded.name == "seq"
    assert_same_inference(folded, model, (6,))

    class Subclassed(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="functional or Sequential.*Received: model="):
        kmc.utils.fold_batch_norm(Subclassed())
    with pytest.raises(ValueError, match="must be built.*Received: model="):
        kmc.utils.fold_batch_norm(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="Received: model='model.keras'"):
        kmc.utils.fold_batch_norm("model.keras")
