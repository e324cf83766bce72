"""DenseNet(memory_efficient=True): the same function, weights and training as the plain model.

Reference: Pleiss et al., "Memory-Efficient Implementation of DenseNets" (arXiv:1707.06990).
The memory saving itself is measured in benchmarks/densenet_memory.py (BENCHMARKS.md).
"""

import keras
import numpy as np
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.applications import DenseNet

# Slow (gradients through recomputed DenseNet blocks): left out of `make test-fast`.
pytestmark = pytest.mark.slow

TINY = dict(blocks=(2, 3), growth_rate=4, input_shape=(32, 32, 3), classes=5)


def twin_pair(bottleneck):
    keras.utils.set_random_seed(0)
    plain = DenseNet(bottleneck=bottleneck, **TINY)
    efficient = DenseNet(bottleneck=bottleneck, memory_efficient=True, **TINY)
    assert [w.shape for w in efficient.weights] == [w.shape for w in plain.weights]
    efficient.set_weights(plain.get_weights())
    return plain, efficient


@pytest.mark.parametrize("bottleneck", [False, True], ids=["d2l", "bc"])
def test_same_outputs_gradients_and_moving_statistics_as_the_plain_model(bottleneck):
    plain, efficient = twin_pair(bottleneck)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 5, size=(8,))
    for training in (False, True):
        np.testing.assert_allclose(
            efficient(x, training=training), plain(x, training=training), rtol=1e-5, atol=1e-6
        )
    # With SGD at learning rate 1, one step moves every weight by minus its gradient, so equal
    # weights afterwards mean equal gradients; the moving statistics must move exactly once.
    initial = plain.get_weights()
    for model in (plain, efficient):
        model.compile(
            optimizer=keras.optimizers.SGD(1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
        )
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for variable, before, after_plain, after_efficient in zip(
        plain.weights, initial, plain.get_weights(), efficient.get_weights()
    ):
        np.testing.assert_allclose(after_efficient, after_plain, rtol=1e-4, atol=1e-5)
        if variable.path.endswith(("kernel", "moving_mean", "moving_variance")):
            assert not np.allclose(after_plain, before), f"{variable.path} did not train"


def test_memory_efficient_model_round_trips_through_keras_file_in_safe_mode(tmp_path):
    _, efficient = twin_pair(bottleneck=True)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    efficient(x, training=True)  # moving statistics no longer the initial ones
    path = tmp_path / "densenet.keras"
    efficient.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), efficient.predict(x, verbose=0))


def test_registered_twins_accept_memory_efficient_with_unchanged_parameters():
    options = dict(input_shape=(32, 32, 3), width_ratio=1 / 8)
    plain = kmc.get_model("densenet121", **options)
    efficient = kmc.get_model("densenet121", memory_efficient=True, **options)
    assert efficient.count_params() == plain.count_params()
    assert any(layer.name.endswith("_recomputed") for layer in efficient.layers)


def test_invalid_memory_efficient_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"memory_efficient.*Received: memory_efficient='yes'"):
        DenseNet(memory_efficient="yes", **TINY)
    with kmc.batch_norm_implementation("keras"):
        with pytest.raises(ValueError, match=r"memory_efficient=True.*BatchNorm"):
            DenseNet(memory_efficient=True, **TINY)
