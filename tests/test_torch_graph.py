"""`keras_modern_cnn.torch_graph`: on torch, the package's functional models run their graph
releasing each intermediate tensor after its last use (issue 31), computing exactly what
Keras's `_run_through_graph` computes."""

import copy
import weakref

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn import layers, saving, torch_graph
from keras_modern_cnn.heads import pre_logits

ON_TORCH = keras.backend.backend() == "torch"
torch_only = pytest.mark.skipif(not ON_TORCH, reason="the runner exists on the torch backend only")
TINY = dict(input_shape=(32, 32, 3), width_ratio=1 / 16, classes=3)


def installed(model):
    return "_run_through_graph" in vars(model)


def train_call(model, x, upstream):
    """Outputs, input and weight gradients, and every weight after one training call."""
    import torch

    inputs = torch.tensor(x, requires_grad=True)
    outputs = model(inputs, training=True)
    (outputs * torch.tensor(upstream)).sum().backward()
    gradients = [v.value.grad.numpy().copy() for v in model.trainable_weights]
    for v in model.trainable_weights:
        v.value.grad = None
    return [outputs.detach().numpy(), inputs.grad.numpy(), *gradients,
            *[w.numpy() for w in model.weights]]


@torch_only
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "googlenet_bn"])
def test_the_runner_computes_exactly_what_keras_computes(name):
    """Inference outputs, and in training the outputs, gradients and updated moving
    statistics, are bitwise those of Keras's path (the same operations in the same order)."""
    keras.utils.set_random_seed(0)
    model = kmc.get_model(name, **TINY)
    assert installed(model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    upstream = rng.normal(size=(4, 3)).astype("float32")
    initial = model.get_weights()
    ours = [np.asarray(model.predict_on_batch(x)), *train_call(model, x, upstream)]
    model.set_weights(initial)
    with torch_graph.disabled(model):
        reference = [np.asarray(model.predict_on_batch(x)), *train_call(model, x, upstream)]
    assert len(ours) == len(reference)
    for value, expected in zip(ours, reference):
        np.testing.assert_array_equal(value, expected)


def probed_chain(length):
    """A chain of `length + 1` probes, plus an Add reading the first probe's output again at
    the end (a tensor with two readers). Each probe records how many inputs of the probes
    before it, from the third on (the model's input and the twice-read tensor left out), are
    still alive when it runs."""
    seen, alive = [], []

    class Probe(keras.layers.Layer):
        def call(self, x):
            alive.append(sum(ref() is not None for ref in seen[2:]))
            seen.append(weakref.ref(x))
            return x + 1.0

    x = inputs = keras.Input((4,))
    first = x = Probe()(x)
    for _ in range(length):
        x = Probe()(x)
    outputs = layers.Add()([x, first])
    return keras.Model(inputs, outputs), seen, alive


@torch_only
def test_intermediates_are_released_after_their_last_use():
    """In inference a tensor lives until its last reader has run, not until the model returns:
    along a chain of 9 probes no earlier input is alive when the next probe runs (the one the
    final Add reads again excepted); under Keras's own runner all of them are."""
    import torch

    def most_alive(model, seen, alive):
        seen.clear()
        alive.clear()
        with torch.no_grad():
            outputs = model(torch.ones((2, 4)), training=False)
        np.testing.assert_array_equal(outputs.numpy(), np.full((2, 4), 12.0))
        return max(alive)

    model, seen, alive = probed_chain(8)
    torch_graph.install(model)
    assert most_alive(model, seen, alive) == 0
    with torch_graph.disabled(model):
        assert most_alive(model, seen, alive) == 6  # the test can fail: Keras keeps them all


def test_installed_where_the_package_makes_models_on_torch_only(tmp_path):
    """Builders, derived models (features, pre-logits, a replaced head, a folded model) and
    loaded models get the runner on torch; on TensorFlow and JAX the models are Keras's."""
    from keras_modern_cnn.heads import replace_head
    from keras_modern_cnn.utils.fold import fold_batch_norm

    keras.utils.set_random_seed(0)
    model = kmc.get_model("resnet18", classifier_activation=None, **TINY)
    path = saving.save_model(model, str(tmp_path / "model.keras"))
    derived = [
        model,
        kmc.get_model("resnet18", features_only=True, input_shape=(32, 32, 3), width_ratio=1 / 16),
        pre_logits(model),
        replace_head(model, classes=2),
        fold_batch_norm(model),
        saving.load_model(path),
    ]
    assert [installed(m) for m in derived] == [ON_TORCH] * len(derived)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    # A deep copy runs its own layers (the runner is copied with the model it belongs to).
    twin = copy.deepcopy(model)
    twin.get_layer("predictions").bias.assign(np.ones(3, "float32"))
    np.testing.assert_allclose(
        twin.predict_on_batch(x), model.predict_on_batch(x) + 1.0, rtol=1e-5, atol=1e-5
    )
    # Symbolic calls and cloning go through Keras's method (shapes from the graph).
    assert tuple(model(keras.Input((32, 32, 3))).shape) == (None, 3)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
