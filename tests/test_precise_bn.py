"""Precise BatchNorm statistics (`kmc.callbacks.PreciseBatchNorm`, `keras_modern_cnn.layers.
precise_bn`): equal to a numpy population computation, frozen layers untouched, float32
statistics under mixed precision, the callback's place in `fit`, and its cost: about N plain
forward passes (compiled), not an eager loop. Reference: Wu & Johnson 2021, arXiv:2105.07576.
"""

import statistics
import time

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.layers import BatchNorm, freeze_batch_norm
from keras_modern_cnn.layers.precise_bn import estimate_statistics, statistics_layers


def mixed_model():
    """conv -> ours -> relu -> Keras's BN -> dropout -> conv -> ours (frozen) -> Keras's BN
    (trainable=False) -> ours (masked by nothing, renorm) -> head."""
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = BatchNorm(name="ours")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.BatchNormalization(name="keras_bn")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Conv2D(5, 2, name="conv2")(x)
    x = BatchNorm(name="frozen", frozen=True)(x)
    x = keras.layers.BatchNormalization(name="keras_frozen", trainable=False)(x)
    x = BatchNorm(name="renormed", renorm=True)(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(
        keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def batch_norm_numpy(x, layer, mean=None, variance=None):
    """`layer` (ours or Keras's) applied to `x` in float64 with the given (batch) statistics."""
    gamma, beta = (np.asarray(w, "float64") for w in (layer.gamma, layer.beta))
    if mean is None:
        mean, variance = (np.asarray(w, "float64") for w in (layer.moving_mean, layer.moving_variance))
    return (x - mean) / np.sqrt(variance + layer.epsilon) * gamma + beta


def conv_numpy(x, layer):
    kernel, bias = (np.asarray(w, "float64") for w in layer.weights)
    size = kernel.shape[0]
    out = x.shape[1] - size + 1
    patches = np.concatenate(
        [x[:, i:i + out, j:j + out, :] for i in range(size) for j in range(size)], axis=-1)
    return patches @ kernel.reshape(-1, kernel.shape[-1]) + bias


def population_numpy(model, batches):
    """What precise BN computes, in float64 numpy: each learning BN normalises each batch with
    that batch's statistics, the frozen ones with their moving statistics, Dropout is off; the
    statistics are the mean and biased variance of everything each learning layer saw."""
    seen = {name: [] for name in ("ours", "keras_bn", "renormed")}
    for batch in batches:
        x = conv_numpy(batch.astype("float64"), model.get_layer("conv1"))
        for name in ("ours", "keras_bn"):
            seen[name].append(x)
            x = batch_norm_numpy(x, model.get_layer(name), x.mean((0, 1, 2)), x.var((0, 1, 2)))
            x = np.maximum(x, 0.0) if name == "ours" else x
        x = conv_numpy(x, model.get_layer("conv2"))
        x = batch_norm_numpy(x, model.get_layer("frozen"))
        x = batch_norm_numpy(x, model.get_layer("keras_frozen"))
        seen["renormed"].append(x)
    return {name: (np.concatenate(v).mean((0, 1, 2)), np.concatenate(v).var((0, 1, 2)))
            for name, v in seen.items()}


def moving(model, name):
    layer = model.get_layer(name)
    return [keras.ops.convert_to_numpy(w).copy() for w in (layer.moving_mean, layer.moving_variance)]


def test_callback_statistics_equal_numpy_population_and_frozen_layers_are_untouched():
    """In `fit`: batches of unequal sizes (8, 8, 5), a value range far from zero, both BN
    implementations, a frozen layer of each kind; checked after the last validation."""
    model = mixed_model()
    rng = np.random.default_rng(0)
    x = rng.normal(20.0, 3.0, size=(21, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, size=21)
    for name, mean in (("frozen", 0.5), ("keras_frozen", -0.25)):  # not the initial 0 and 1
        layer = model.get_layer(name)
        layer.moving_mean.assign(np.full(5, mean, "float32"))
        layer.moving_variance.assign(np.full(5, 2.0, "float32"))
    frozen = {name: moving(model, name) for name in ("frozen", "keras_frozen")}
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    batches = [x[:8], x[8:16], x[16:]]
    precise = kmc.callbacks.PreciseBatchNorm(batches, steps=5)  # more steps than batches: all
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
                        shuffle=False, callbacks=[precise])

    assert [r["epoch"] for r in precise.estimations] == [0, 1]
    assert [(r["batches"], r["samples"], r["layers"]) for r in precise.estimations] == [(3, 21, 3)] * 2
    expected = population_numpy(model, batches)
    for name, (mean, variance) in expected.items():
        got_mean, got_variance = moving(model, name)
        np.testing.assert_allclose(got_mean, mean, rtol=2e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(got_variance, variance, rtol=2e-5, atol=1e-6, err_msg=name)
    renormed = model.get_layer("renormed")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(renormed.moving_stddev),
                               np.sqrt(expected["renormed"][1] + renormed.epsilon), rtol=2e-5)
    for name, values in frozen.items():  # untouched, bit for bit
        for before, after in zip(values, moving(model, name)):
            np.testing.assert_array_equal(before, after, err_msg=name)
    # The last validation saw these statistics; the model still holds them after fit.
    assert model.evaluate(x, y, batch_size=8, verbose=0)[1] == pytest.approx(
        history.history["val_accuracy"][-1], abs=1e-6)
    # `moving_averages()`: the EMA the last estimation replaced, then back to precise.
    with precise.moving_averages():
        ema = moving(model, "ours")
        assert not np.allclose(ema[0], expected["ours"][0], rtol=1e-3)
    np.testing.assert_allclose(moving(model, "ours")[0], expected["ours"][0], rtol=2e-5, atol=1e-5)


def test_statistics_are_float32_under_mixed_float16():
    """A float16 sum of 400 values near 300 overflows (> 65504), a float16 variance of them
    would be off by percents; the statistics are taken in float32 and pooled in float64."""
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((10, 10, 2))
    model = keras.Model(inputs, BatchNorm(name="bn")(inputs))
    rng = np.random.default_rng(1)
    batches = [rng.normal(300.0, 1.0, size=(4, 10, 10, 2)).astype("float32") for _ in range(3)]
    stats = estimate_statistics(model, batches)
    seen = np.concatenate([b.astype("float16") for b in batches]).astype("float64")  # as cast
    np.testing.assert_allclose(stats.means[0], seen.mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(stats.variances[0], seen.var((0, 1, 2)), rtol=1e-4)
    stats.assign()
    assert model.get_layer("bn").moving_variance.dtype == "float32"


def test_callback_when_end_between_validations_and_outside_fit():
    model = kmc.BNLeNet(input_shape=(28, 28, 1), classes=3, width_ratio=0.25)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(24, 28, 28, 1)).astype("float32"), rng.integers(0, 3, 24)
    at_end = kmc.callbacks.PreciseBatchNorm((x, y), steps=2, when="end", batch_size=8)
    every = kmc.callbacks.PreciseBatchNorm(x, steps=None, batch_size=12)
    model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), validation_freq=2,
              verbose=0, callbacks=[every, at_end])
    # Epoch 1 validates (before its validation); epochs 0 and 2 do not (at their ends).
    assert [r["epoch"] for r in every.estimations] == [0, 1, 2]
    assert [(r["batches"], r["samples"]) for r in every.estimations] == [(2, 24)] * 3
    assert [(r["epoch"], r["batches"], r["samples"]) for r in at_end.estimations] == [(None, 2, 16)]
    model.evaluate(x, y, verbose=0, callbacks=[every])  # outside fit: no estimation
    assert len(every.estimations) == 3
    for bad, message in [(dict(steps=0), "Received: steps=0"),
                         (dict(when="batch"), "Received: when='batch'"),
                         (dict(batch_size=4, data=[x]), "Received: batch_size=4")]:
        with pytest.raises(ValueError, match=message):
            kmc.callbacks.PreciseBatchNorm(**{"data": x, **bad})
    with pytest.raises(ValueError, match="yielded no batch"):
        empty = kmc.callbacks.PreciseBatchNorm([])
        model.fit(x, y, epochs=1, verbose=0, callbacks=[empty])


def test_a_model_without_learning_batch_norm_is_left_alone():
    model = kmc.BNLeNet(input_shape=(28, 28, 1), classes=3, width_ratio=0.25)
    freeze_batch_norm(model)
    assert statistics_layers(model) == []
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((8, 28, 28, 1), "float32"), np.zeros(8, "int64")
    precise = kmc.callbacks.PreciseBatchNorm([x])
    model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[precise])
    assert precise.estimations[0]["layers"] == 0
    with pytest.raises(ValueError, match="no BatchNorm layer that learns statistics"):
        kmc.layers.recalibrate_batch_norm(model, [x])


def _seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def test_estimation_costs_about_n_compiled_forward_passes():
    """The done-when of issue 32 (for JAX, where the estimation used to run eagerly: 20-30 s
    for a tiny GoogLeNet; for this BN-LeNet ~300x these forward passes): within 3x of N
    `predict_on_batch` calls, measured interleaved in one process after both are compiled,
    median of three rounds. Every backend: TensorFlow and PyTorch run `predict` as the
    estimation runs (a graph; eagerly)."""
    model = kmc.BNLeNet(input_shape=(28, 28, 1), classes=4, width_ratio=0.5)
    batches = [np.random.default_rng(i).normal(size=(16, 28, 28, 1)).astype("float32")
               for i in range(8)]
    estimator = kmc.layers.precise_bn.StatisticsEstimator(model)

    def forward():
        for batch in batches:
            keras.ops.convert_to_numpy(model.predict_on_batch(batch))

    def estimate():
        estimator.estimate(batches)

    forward(), estimate()  # compile both
    ratios = [_seconds(estimate) / _seconds(forward) for _ in range(3)]
    assert statistics.median(ratios) < 3.0, ratios
