"""BatchNorm and the zoo under every dtype policy, on the current backend.

What is covered, within a CI budget of about a minute per backend:
- the layer against a float64 numpy reference under each policy (training output, moving
  statistics, inference output), with tolerances set by the output and variable dtypes, and
  the dtypes of its outputs and variables equal to `keras.layers.BatchNormalization`'s;
- under each policy, the `MATRIX` models (BN-LeNet: BatchNorm after convolutions and dense
  layers) run in training and inference mode: outputs in the compute dtype and finite,
  BatchNorm variables in the policy's variable dtype;
- BN-LeNet under each policy: `fit` one step, `predict`, `.keras` round trip in safe mode.

Not covered here: the other registered models and the memory-efficient DenseNet (which runs
`BatchNorm.normalize` inside `keras.remat`) under the four non-float32 policies. They use the
same layer code through the same `make_batch_norm` helper and run under float32 in
test_contract.py and test_densenet_memory_efficient.py; on JAX CPU one eager training call of
the tiny memory-efficient DenseNet alone took 25 s per policy, and eleven of the
registry's architectures ~7 minutes for one policy, beyond the CI budget.
"""

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.layers import BatchNorm
from test_contract import GOLDEN, tiny_batch

POLICIES = ["float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"]

MATRIX = ["bn_lenet"]

# Output tolerance relative to the output scale, and moving-statistics tolerance, per dtype.
OUTPUT_ATOL = {"float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}
VARIABLE_RTOL = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2}


@pytest.mark.parametrize("policy", POLICIES)
def test_layer_matches_a_float64_reference_and_keras_dtypes(policy):
    keras.config.set_dtype_policy(policy)
    compute = keras.config.dtype_policy().compute_dtype
    variable = keras.config.dtype_policy().variable_dtype
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(8, 4, 4, 3)).astype("float32")
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.normal(size=3)
    layer = BatchNorm(momentum=0.5, epsilon=1e-3)
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    # The reference sees the inputs the layer sees: rounded to the compute dtype.
    seen = np.asarray(keras.ops.cast(keras.ops.cast(x, compute), "float32"), "float64")
    gamma, beta = layer.gamma.numpy().astype("float64"), layer.beta.numpy().astype("float64")
    mean, variance = seen.mean(axis=(0, 1, 2)), seen.var(axis=(0, 1, 2))

    outputs = layer(x, training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == compute
    expected = gamma * (seen - mean) / np.sqrt(variance + 1e-3) + beta
    np.testing.assert_allclose(as_float64(outputs), expected, atol=OUTPUT_ATOL[compute] * 4)
    np.testing.assert_allclose(as_float64(layer.moving_mean), 0.5 * mean, rtol=VARIABLE_RTOL[variable])
    np.testing.assert_allclose(
        as_float64(layer.moving_variance), 0.5 + 0.5 * variance, rtol=VARIABLE_RTOL[variable]
    )

    moving_mean, moving_variance = as_float64(layer.moving_mean), as_float64(layer.moving_variance)
    expected = gamma * (seen - moving_mean) / np.sqrt(moving_variance + 1e-3) + beta
    np.testing.assert_allclose(as_float64(layer(x)), expected, atol=OUTPUT_ATOL[compute] * 4)

    keras_layer = keras.layers.BatchNormalization()
    keras_outputs = keras_layer(x, training=True)
    assert keras_outputs.dtype == outputs.dtype
    assert [w.dtype for w in layer.weights] == [w.dtype for w in keras_layer.weights]
    assert {w.dtype for w in layer.weights} == {variable}


def as_float64(tensor):
    return np.asarray(keras.ops.cast(tensor, "float32"), "float64")


def batch_norm_variables(model):
    return [w for layer in model._flatten_layers() if isinstance(layer, BatchNorm) for w in layer.weights]


def architectures():
    """(name, model, images) for the MATRIX models."""
    for name in MATRIX:
        images, _ = tiny_batch(name, 3)
        yield name, kmc.get_model(name, classes=3, **GOLDEN[name][2]), images


@pytest.mark.parametrize("policy", POLICIES)
def test_every_architecture_runs_under_every_policy(policy):
    """One test per policy (not per model): the per-test session reset costs more than a model."""
    keras.config.set_dtype_policy(policy)
    compute = keras.config.dtype_policy().compute_dtype
    variable = keras.config.dtype_policy().variable_dtype
    for name, model, images in architectures():
        for training in (True, False):
            outputs = model(images, training=training)
            assert keras.backend.standardize_dtype(outputs.dtype) == compute, name
            assert np.all(np.isfinite(as_float64(outputs))), (name, training)
        assert {w.dtype for w in batch_norm_variables(model)} == {variable}, name


@pytest.mark.parametrize("policy", POLICIES)
def test_fit_predict_and_reload_under_every_policy(policy, tmp_path):
    keras.config.set_dtype_policy(policy)
    model = kmc.BNLeNet(classes=3, input_shape=(28, 28, 1))
    images, labels = tiny_batch("bn_lenet", 3, batch=4)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    statistics = [w for w in model.non_trainable_weights if "moving" in w.name]
    before = [w.numpy().astype("float32") for w in statistics]
    history = model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy().astype("float32") for w in statistics]
    assert len(statistics) == 8 and all(not np.array_equal(b, a) for b, a in zip(before, after))
    predictions = model.predict(images, verbose=0)
    assert keras.backend.standardize_dtype(predictions.dtype) == keras.config.dtype_policy().compute_dtype
    assert np.all(np.isfinite(predictions.astype("float32")))

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.get_layer(kmc.layers.batch_norm_layers(model)[0].name).dtype_policy.name == policy
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), predictions)
