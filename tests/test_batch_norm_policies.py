"""BatchNorm and the zoo under every dtype policy, on the current backend.

- The layer against a float64 numpy reference under each policy (training output, moving
  statistics, inference output), with tolerances set by the output and variable dtypes, and
  the dtypes of its outputs and variables equal to `keras.layers.BatchNormalization`'s.
- One model per block type (TensorFlow pass; one model per family on JAX and PyTorch, as for
  the other tests of what a family's variants share) under each of the four policies that are
  not float32 (float32 is every other test's policy; the deepest ResNet v1, v2 and DenseNet
  variants, which repeat resnet50's, resnet50v2's and densenet121's blocks, under float16 only,
  where depth matters):
  `fit` one step (statistics move, the loss is finite), outputs in the compute dtype, BatchNorm
  variables in the variable dtype, `predict` finite, and a `.keras` round trip in safe mode
  restoring the layer policies and weights.
  On JAX and PyTorch the models `fit` and `predict` the way users run them (jitted, eager); on
  TensorFlow BN-LeNet takes the compiled path (`jit_compile="auto"`: XLA) and the others run
  eagerly, the same ops: tracing and compiling a tiny DenseNet's step costs 20-35 s per policy
  there, eager execution seconds. The `.keras` round trip compares layer policies and weights
  (float32 round trips compare predictions in test_export.py).
  In the TensorFlow pass, which runs the deepest variants, the moving statistics are re-estimated
  from the batch before `predict` (`recalibrate_batch_norm`): after one step they are still
  near their initial 0 and 1, and a deep network's un-normalised activations then overflow
  float16 in inference, with `keras.layers.BatchNormalization` alike (keras.applications.
  ResNet50: finite before the step, inf after it; checked on Keras 3.15). The one shallow
  model per family of the JAX and PyTorch passes predicts straight after the step (eager
  recalibration would cost ~20 s per policy on JAX).
"""

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.layers import BatchNorm
from test_contract import DEEPEST_OF_BLOCK_TYPE, GOLDEN, SHARED_BEHAVIOUR_MODELS, tiny_batch

POLICIES = ["float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"]

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


@pytest.mark.parametrize("policy", ["mixed_float16", "float32"])
def test_large_nearly_constant_activations_keep_exact_statistics(policy):
    """A channel at 3e4 (constant, or 3e4 and 3e4 + 16, representable in float16): two-pass
    statistics on every backend. Keras's one-pass torch `moments` (E[x^2] - E[x]^2 at 9e8,
    where float32's spacing is 64) gave a negative variance and NaN outputs under
    mixed_float16, where our layer takes the portable path (issue 32)."""
    keras.config.set_dtype_policy(policy)
    x = np.full((4, 3, 3, 2), 3e4, "float32")
    x[::2, :, :, 1] += 16.0  # channel 1: half 30000, half 30016: mean 30008, variance 64
    layer = BatchNorm(momentum=0.0)
    outputs = as_float64(layer(x, training=True))
    assert np.isfinite(outputs).all()
    # Channel 0 is 0 up to one float32 step of the mean (0.002 at 3e4) over sqrt(epsilon):
    # PyTorch's float32 kernel rounds its mean so (-0.42); the portable path gives 0.
    assert np.abs(outputs[..., 0]).max() < 0.002 / np.sqrt(1e-5)
    np.testing.assert_allclose(np.abs(outputs[..., 1]), 8.0 / np.sqrt(64 + 1e-5), rtol=1e-3)
    np.testing.assert_allclose(as_float64(layer.moving_mean), [3e4, 30008.0], rtol=1e-7)
    np.testing.assert_allclose(as_float64(layer.moving_variance), [0.0, 64.0], atol=1e-3)


def as_float64(tensor):
    return np.asarray(keras.ops.cast(tensor, "float32"), "float64")


def batch_norm_variables(model):
    return [w for layer in model._flatten_layers() if isinstance(layer, BatchNorm) for w in layer.weights]


LOW_PRECISION_POLICIES = [policy for policy in POLICIES if policy != "float32"]
# The deepest variant of each residual block type repeats its family's blocks (run under all
# four in resnet50/resnet50v2/densenet121): what depth adds is float16's range (overflow), so it
# runs under pure float16 only, in the TensorFlow pass.
DEEP_VARIANT_POLICIES = ["float16"]
DEEP_VARIANTS = DEEPEST_OF_BLOCK_TYPE if keras.backend.backend() == "tensorflow" else ()
COMPILED_ON_TENSORFLOW = "bn_lenet"


@pytest.mark.slow
@pytest.mark.parametrize("name", [*SHARED_BEHAVIOUR_MODELS, *DEEP_VARIANTS])
def test_every_model_fits_predicts_and_reloads_under_every_policy(name, tmp_path):
    """One test per model (not per policy): xdist spreads the deep variants over workers."""
    # 16 examples: with 4, the 1x1 last stage of a tiny deep ResNet normalises over 4 values
    # and its pure-float16 gradients reach ~5e4, overflowing with either BatchNorm (Keras's too).
    images, labels = tiny_batch(name, 3, batch=16)
    eager = keras.backend.backend() == "tensorflow" and name != COMPILED_ON_TENSORFLOW
    for policy in DEEP_VARIANT_POLICIES if name in DEEP_VARIANTS else LOW_PRECISION_POLICIES:
        keras.config.set_dtype_policy(policy)
        compute = keras.config.dtype_policy().compute_dtype
        model = kmc.get_model(name, classes=3, **GOLDEN[name][2])
        assert {w.dtype for w in batch_norm_variables(model)} <= {keras.config.dtype_policy().variable_dtype}
        # The package's loss: Keras's fails a U-Net's backward pass on torch (kmc.losses).
        loss = kmc.losses.SparseCategoricalCrossentropy()
        model.compile(optimizer="sgd", loss=loss, run_eagerly=eager)
        statistics = [w for w in batch_norm_variables(model) if "moving" in w.name]
        history = model.fit(images, labels, epochs=1, batch_size=16, verbose=0)
        assert np.isfinite(history.history["loss"][0]), policy
        # Every layer's moving mean leaves its initial 0 (a moving variance's step from 1 can round
        # away in a bfloat16 variable, as in Keras's layer).
        means = [w for w in statistics if "moving_mean" in w.name]
        assert len(means) == len(statistics) // 2
        assert all(np.any(as_float64(mean) != 0) for mean in means), policy

        if statistics and keras.backend.backend() == "tensorflow":
            kmc.layers.recalibrate_batch_norm(model, [images])
        predictions = model.predict(images, batch_size=16, verbose=0)
        assert keras.backend.standardize_dtype(predictions.dtype) == compute, policy
        assert np.all(np.isfinite(predictions.astype("float32"))), policy

        path = tmp_path / f"{policy}.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        assert [layer.dtype_policy.name for layer in reloaded.layers] == [
            layer.dtype_policy.name for layer in model.layers
        ]
        assert {layer.dtype_policy.name for layer in reloaded.layers} == {policy}
        for saved, loaded in zip(model.weights, reloaded.weights, strict=True):
            assert (saved.path, saved.dtype) == (loaded.path, loaded.dtype)
            np.testing.assert_array_equal(as_float64(saved), as_float64(loaded))
        keras.backend.clear_session()
