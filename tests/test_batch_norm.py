"""The BatchNorm layer against a float64 numpy reference and keras.layers.BatchNormalization.

Reference formulation: Ioffe & Szegedy 2015 (arXiv:1502.03167); d2l 8.5 (the seeds).
"""

import keras
import numpy as np
import pytest

from keras_modern_cnn.layers import BatchNorm


def reference_batch_norm(x, gamma, beta, mean, variance, epsilon):
    """float64 BN with statistics broadcast along the last axis."""
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta


def channels_last(x, axis):
    return np.moveaxis(x, axis, -1)


CASES = [
    pytest.param((16, 5), -1, id="rank2"),
    pytest.param((4, 6, 7, 3), -1, id="rank4-channels-last"),
    pytest.param((4, 3, 6, 7), 1, id="rank4-channels-first"),
    pytest.param((3, 4, 5, 6, 2), -1, id="rank5"),
]


@pytest.mark.parametrize("shape, axis", CASES)
def test_training_and_inference_match_the_float64_reference(shape, axis):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=shape).astype("float32")
    channels = shape[axis]
    gamma = rng.uniform(0.5, 1.5, channels)
    beta = rng.normal(size=channels)
    layer = BatchNorm(axis=axis, momentum=0.8, epsilon=1e-3)
    layer.build(shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)

    moved = channels_last(x.astype("float64"), axis).reshape(-1, channels)
    batch_mean, batch_variance = moved.mean(axis=0), moved.var(axis=0)
    expected = reference_batch_norm(
        channels_last(x.astype("float64"), axis), gamma, beta, batch_mean, batch_variance, 1e-3
    )
    outputs = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(channels_last(outputs, axis), expected, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.2 * batch_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.8 + 0.2 * batch_variance, rtol=1e-5
    )

    expected_inference = reference_batch_norm(
        channels_last(x.astype("float64"), axis), gamma, beta,
        layer.moving_mean.numpy(), layer.moving_variance.numpy(), 1e-3,
    )
    for training in (False, None):
        outputs = np.asarray(layer(x, training=training))
        np.testing.assert_allclose(channels_last(outputs, axis), expected_inference, atol=1e-4)


@pytest.mark.parametrize("shape, axis", CASES[:3])
def test_equals_keras_batch_normalization_with_identical_weights(shape, axis):
    rng = np.random.default_rng(1)
    ours = BatchNorm(axis=axis, momentum=0.9, epsilon=1e-5)
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    for layer in (ours, theirs):
        layer.build(shape)
    channels = shape[axis]
    weights = [rng.uniform(0.5, 2, channels), rng.normal(size=channels),
               rng.normal(size=channels), rng.uniform(0.5, 2, channels)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    for step in range(3):
        x = rng.normal(step, 1 + step, size=shape).astype("float32")
        np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=2e-5)
        np.testing.assert_allclose(ours(x), theirs(x), atol=2e-5)
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)


def small_convnet():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = BatchNorm(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def moving_statistics(model):
    layer = model.get_layer("bn")
    return np.concatenate([layer.moving_mean.numpy(), layer.moving_variance.numpy()])


def test_moving_statistics_change_only_when_training():
    rng = np.random.default_rng(2)
    x = rng.normal(2.0, 3.0, size=(8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 2, size=(8,))
    model = small_convnet()
    initial = moving_statistics(model)

    model(x)
    model(x, training=False)
    model.predict(x, verbose=0)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(moving_statistics(model), initial)

    model(x, training=True)
    after_call = moving_statistics(model)
    assert not np.allclose(after_call, initial)

    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert not np.allclose(moving_statistics(model), after_call)


def test_stateless_call_returns_updated_statistics_as_non_trainable_state():
    """The JAX custom-loop contract (keras #20378): statistics come back, nothing mutates."""
    x = np.random.default_rng(3).normal(1.0, 2.0, size=(8, 8, 8, 3)).astype("float32")
    model = small_convnet()
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    before = moving_statistics(model)

    _, updated = model.stateless_call(trainable, non_trainable, x, training=True)
    np.testing.assert_array_equal(moving_statistics(model), before)
    changed = np.concatenate([np.asarray(v) for v in updated])
    assert not np.allclose(changed, before)

    _, unchanged = model.stateless_call(trainable, non_trainable, x, training=False)
    np.testing.assert_array_equal(np.concatenate([np.asarray(v) for v in unchanged]), before)


def test_trainable_false_means_inference_and_no_updates():
    rng = np.random.default_rng(4)
    x = rng.normal(5.0, 2.0, size=(8, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 2, size=(8,))
    model = small_convnet()
    model.get_layer("bn").trainable = False
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = moving_statistics(model)
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), atol=1e-6)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(moving_statistics(model), before)
    assert len(model.get_layer("bn").trainable_weights) == 0


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager-graph", "jit"])
def test_fit_tracks_the_exact_moving_statistics_so_inference_matches_training(jit_compile):
    """Under `fit`, K steps on one fixed batch with frozen weights (learning rate 0) must give
    moving = (1 - momentum**K) * batch statistic, and then inference must equal training mode.

    This is the check TensorFlow's fused kernel failed (right training accuracy, wrong
    statistics, 0.10 test accuracy); it needs activations far from zero, hence the offset data.
    """
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(16, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 2, size=(16,))
    model = small_convnet()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, jit_compile=jit_compile)
    steps = 120
    model.fit(x, y, epochs=steps, batch_size=16, shuffle=False, verbose=0)

    conv_output = keras.Model(model.inputs, model.get_layer("conv").output).predict(x, verbose=0)
    conv_output = conv_output.astype("float64")
    layer = model.get_layer("bn")
    kept = 1.0 - layer.momentum**steps
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), kept * conv_output.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        kept * conv_output.var(axis=(0, 1, 2)) + (1.0 - kept),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        model.predict(x, verbose=0), model(x, training=True), rtol=1e-3, atol=1e-3
    )

    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, jit_compile=jit_compile)
    gamma_before = layer.gamma.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.allclose(layer.gamma.numpy(), gamma_before)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_keeps_float32_statistics_and_finite_outputs(dtype):
    keras.config.set_dtype_policy(f"mixed_{dtype}")
    layer = BatchNorm()
    x = np.random.default_rng(6).normal(1e4, 50.0, size=(4, 5, 5, 3))
    outputs = layer(keras.ops.cast(x, dtype), training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    assert all(v.dtype == "float32" for v in layer.weights)
    outputs = np.asarray(keras.ops.cast(outputs, "float32"))
    assert np.all(np.isfinite(outputs))
    # Normalised output: per-channel mean ~0 and std ~1 despite the 1e4 offset.
    np.testing.assert_allclose(outputs.mean(axis=(0, 1, 2)), 0.0, atol=0.05)
    np.testing.assert_allclose(outputs.std(axis=(0, 1, 2)), 1.0, atol=0.05)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-3)


@pytest.mark.parametrize(
    "x",
    [
        pytest.param(np.full((1, 4, 4, 2), 7.0, "float32"), id="batch-of-one-constant"),
        pytest.param(np.full((6, 3), -2.5, "float32"), id="constant"),
        pytest.param(
            np.random.default_rng(7).normal(1e4, 1.0, (8, 3)).astype("float32"), id="1e4-scale"
        ),
    ],
)
def test_degenerate_batches_give_finite_outputs(x):
    layer = BatchNorm()
    assert np.all(np.isfinite(np.asarray(layer(x, training=True))))
    assert np.all(np.isfinite(np.asarray(layer(x, training=False))))
    assert np.all(layer.moving_variance.numpy() >= 0)


def test_model_round_trips_through_keras_file_in_safe_mode(tmp_path):
    model = small_convnet()
    x = np.random.default_rng(8).normal(2.0, 1.0, size=(4, 8, 8, 3)).astype("float32")
    model(x, training=True)  # moving statistics no longer the initial ones
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert type(reloaded.get_layer("bn")) is BatchNorm
    assert reloaded.get_layer("bn").get_config() == model.get_layer("bn").get_config()
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)


def test_synchronized_statistics_on_one_device_are_the_batch_statistics_on_every_backend(tmp_path):
    """Global-batch statistics across devices are tested in test_distribute.py (tf.distribute
    workers, JAX DataParallel); on one device they are the batch's, and the setting is saved."""
    x = np.random.default_rng(9).normal(2.0, 3.0, size=(6, 4)).astype("float32")
    inputs = keras.Input((4,))
    synced = keras.Model(inputs, BatchNorm(synchronized=True, name="bn")(inputs))
    plain = BatchNorm()
    np.testing.assert_allclose(synced(x, training=True), plain(x, training=True), atol=1e-5)
    layer = synced.get_layer("bn")
    np.testing.assert_allclose(layer.moving_variance, plain.moving_variance, rtol=1e-5)
    synced.save(tmp_path / "synchronized.keras")
    reloaded = keras.saving.load_model(tmp_path / "synchronized.keras", safe_mode=True)
    assert reloaded.get_layer("bn").synchronized
    np.testing.assert_allclose(reloaded(x), synced(x), atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.distributed process groups")
def test_synchronized_statistics_refuse_a_torch_process_group(monkeypatch):
    import torch.distributed

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *group: 2)
    x = np.ones((4, 3), "float32")
    with pytest.raises(NotImplementedError, match="'bn' has synchronized=True.*2 processes"):
        BatchNorm(synchronized=True, name="bn")(x, training=True)
    BatchNorm(synchronized=True)(x, training=False)  # inference uses no batch statistics


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(axis=(1, 2)), "Received: axis=(1, 2)"),
        (dict(axis="channels"), "Received: axis='channels'"),
        (dict(momentum=1.0), "Received: momentum=1.0"),
        (dict(momentum=-0.1), "Received: momentum=-0.1"),
        (dict(epsilon=0), "Received: epsilon=0"),
        (dict(center="yes"), "Received: center='yes'"),
        (dict(scale=None), "Received: scale=None"),
        (dict(synchronized=1), "Received: synchronized=1"),
    ],
)
def test_invalid_arguments_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BatchNorm(**kwargs)


@pytest.mark.parametrize(
    "axis, shape, message",
    [
        (-1, (5,), "rank 2 or more"),
        (3, (4, 5), "out of range"),
        (0, (4, 5), "not the batch axis"),
    ],
)
def test_invalid_input_shapes_are_rejected_when_building(axis, shape, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm(axis=axis).build(shape)


def test_integer_inputs_are_normalised_as_floats_like_keras():
    x = np.array([[1], [2], [3], [4]], "int32")
    ours, theirs = BatchNorm(momentum=0.99, epsilon=1e-3), keras.layers.BatchNormalization()
    for training in (True, False):
        outputs = ours(x, training=training)
        assert keras.backend.standardize_dtype(outputs.dtype) == "float32"
        np.testing.assert_allclose(outputs, theirs(x, training=training), atol=1e-6)


def test_an_empty_training_batch_leaves_the_moving_statistics_unchanged():
    """Keras's layer turns its moving statistics into NaN here; ours keeps them."""
    layer = BatchNorm()
    x = np.zeros((0, 3), "float32")
    assert tuple(layer(x, training=True).shape) == (0, 3)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_behave_as_keras(bad):
    x = np.array([[1.0, bad], [2.0, 1.0], [3.0, 2.0]], "float32")
    ours, theirs = BatchNorm(momentum=0.99, epsilon=1e-3), keras.layers.BatchNormalization()
    for training in (True, False):
        np.testing.assert_allclose(ours(x, training=training), theirs(x, training=training), atol=1e-6)
    for mine, reference in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(mine.numpy()[0], reference.numpy()[0], rtol=1e-6)
        # The poisoned channel: non-finite in both (Keras keeps +Inf as the mean of Inf data).
        assert not np.isfinite(mine.numpy()[1]) or mine.name in ("gamma", "beta")
        assert np.isfinite(mine.numpy()[1]) == np.isfinite(reference.numpy()[1])


def test_configs_saved_before_renorm_masking_and_freezing_still_load():
    old = {"axis": -1, "momentum": 0.9, "epsilon": 1e-5, "center": True, "scale": True,
           "synchronized": False, "name": "bn", "trainable": True, "dtype": "float32"}
    layer = BatchNorm.from_config(old)
    assert (layer.renorm, layer.renorm_clipping, layer.frozen) == (False, None, False)
    renorm = BatchNorm(renorm=True, renorm_clipping={"rmax": 3}, renorm_momentum=0.9, frozen=True)
    config = renorm.get_config()
    assert BatchNorm.from_config(config).get_config() == config
    assert config["renorm_clipping"] == {"rmax": 3.0} and config["frozen"] is True


def test_masked_positions_are_left_out_of_the_statistics():
    x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    layer = BatchNorm(momentum=0.0)
    layer(x, training=True, mask=np.array([[True, True, False]]))
    np.testing.assert_allclose(layer.moving_mean.numpy(), [2.0])
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"one dimension less.*Received: mask.shape=\(1, 3, 1\)"):
        layer(x, training=True, mask=np.ones((1, 3, 1), bool))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(renorm=1), "Received: renorm=1"),
        (dict(renorm_momentum=1.5), "Received: renorm_momentum=1.5"),
        (dict(renorm_clipping={"rmax": 2.0}), "only with `renorm=True`"),
        (dict(renorm=True, renorm_clipping={"r": 1}), "invalid keys.*Received: renorm_clipping"),
        (dict(renorm=True, renorm_clipping={"dmax": "x"}), r"Received: renorm_clipping\['dmax'\]='x'"),
        (dict(frozen=None), "Received: frozen=None"),
    ],
)
def test_invalid_renorm_and_frozen_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm(**kwargs)


@pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="PyTorch's own kernels serve the torch backend only"
)
@pytest.mark.parametrize("shape, axis", CASES)
def test_torch_kernels_equal_the_portable_path(shape, axis, monkeypatch):
    """Outputs, gradients and moving statistics of the fast path equal the portable reference."""
    import torch

    from keras_modern_cnn.layers import batch_norm

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=shape).astype("float32")
    upstream = torch.tensor(rng.normal(size=shape).astype("float32"))
    results = {}
    for use_torch_kernels in (True, False):
        monkeypatch.setattr(batch_norm, "USE_TORCH_KERNELS", use_torch_kernels)
        keras.utils.set_random_seed(0)
        layer = BatchNorm(
            axis=axis, epsilon=0.1, gamma_initializer="random_normal", beta_initializer="random_normal"
        )
        inputs = torch.tensor(x, requires_grad=True)
        (layer(inputs, training=True) * upstream).sum().backward()
        results[use_torch_kernels] = [np.array(value) for value in (
            layer(inputs, training=True), layer(inputs, training=False), inputs.grad,
            layer.gamma.value.grad, layer.beta.value.grad, layer.moving_mean, layer.moving_variance,
        )]
        # A diverged batch (squares overflow float32) makes the statistics non-finite on both.
        layer(torch.tensor(x * 1e20), training=True)
        assert not np.isfinite(layer.moving_variance.numpy()).any()
    for fast, portable in zip(results[True], results[False]):
        np.testing.assert_allclose(fast, portable, rtol=1e-5, atol=1e-5 * np.abs(portable).max())
