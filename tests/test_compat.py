"""The Keras and KerasTuner internals the package relies on (`keras_modern_cnn._compat`,
`keras_modern_cnn.tuning._compat`): one test per entry, failing when the pinned library
changes the behaviour relied upon. When one fails after an upgrade, revisit that entry."""

import json
import os
import zipfile

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.errors import FailedTrialError

from keras_modern_cnn import _compat
from keras_modern_cnn.layers import BatchNorm
from keras_modern_cnn.tuning import _compat as tuner_compat
from keras_modern_cnn.tuning import make_tuner, search


def _tiny_model():
    inputs = keras.Input((4,))
    inner = keras.Sequential([keras.layers.Dense(3), BatchNorm(name="inner_bn")], name="inner")
    return keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)), name="outer")


def test_all_layers_descends_into_nested_models():
    model = _tiny_model()
    names = [layer.name for layer in _compat.all_layers(model)]
    assert "inner_bn" in names and "inner" in names and "outer" not in names
    assert _compat.all_layers(model, include_self=True)[0] is model


def test_nodes_by_depth_of_functional_and_sequential_models_but_not_subclassed_ones():
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    for model in (_tiny_model(), sequential):
        graph = _compat.nodes_by_depth(model)
        layers = {node.operation.name for nodes in graph.values() for node in nodes if not node.is_input}
        assert {layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)} <= layers

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert _compat.nodes_by_depth(Subclassed()) is None


def test_loss_function_arguments_are_what_the_wrapped_function_receives():
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=3)
    arguments = _compat.loss_function_arguments(loss)
    assert arguments["from_logits"] is True and arguments["ignore_class"] == 3 and arguments["axis"] == -1


def test_keras_resumes_from_the_checkpoint_the_atomic_backup_writes(tmp_path):
    """Our `_save_model` runs at each epoch end, and Keras's own BackupAndRestore resumes from
    the files it wrote (same weights path, metadata {"epoch", "batch"})."""
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")

    def compiled():
        model = _tiny_model()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    backup = tmp_path / "backup"
    compiled().fit(x, y, epochs=2, verbose=0,
                   callbacks=[_compat.AtomicBackupAndRestore(str(backup), delete_checkpoint=False)])
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    assert not [name for name in os.listdir(backup) if ".tmp" in name]

    epochs = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))
    compiled().fit(x, y, epochs=3, verbose=0,
                   callbacks=[keras.callbacks.BackupAndRestore(str(backup)), record])
    assert epochs == [2]


def test_a_keras_file_saved_on_torch_names_the_torch_optimizer_module(tmp_path):
    """`saving.make_backend_portable` rewrites this module name; once Keras stops writing it
    (on torch), the rewrite can go."""
    model = _tiny_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    path = tmp_path / "model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        module = json.loads(archive.read("config.json"))["compile_config"]["optimizer"]["module"]
    if keras.config.backend() == "torch":
        assert module.startswith(_compat.TORCH_OPTIMIZER_MODULES)
    else:
        assert module == "keras.optimizers"


def test_a_replaced_call_receives_training_and_mask_and_is_undone():
    """Precise BN swaps `keras.layers.BatchNormalization.call` per instance: `Layer.__call__`
    must look `call` up on the instance and pass `training` and `mask` on."""
    layer = keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.Masking(0.0), layer])
    x = np.ones((2, 3, 2), "float32")
    x[0, 1] = 0.0  # masked position
    seen = {}

    def call(inputs, training=None, mask=None):
        seen.update(training=training, mask=None if mask is None else keras.ops.convert_to_numpy(mask))
        return inputs * 0.0 + 7.0

    with _compat.replaced_call(layer, call):
        outputs = keras.ops.convert_to_numpy(model(x, training=False))
    assert (outputs == 7.0).all() and seen["training"] is False
    np.testing.assert_array_equal(seen["mask"], [[True, False, True], [True, True, True]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x / np.sqrt(1.0 + 1e-3),
                               rtol=1e-6)  # Keras's own call again: moving statistics 0 and 1
    assert "call" not in vars(layer)


def test_distribute_batch_lays_a_batch_out_as_fit_does():
    """`_distribute_data` of the JAX trainer, as precise BN shards its batches; elsewhere, and
    without a distribution, the batch is returned as it is."""
    batch = np.arange(8 * 3, dtype="float32").reshape(8, 3)
    assert _compat.distribute_batch(batch) is batch
    if keras.config.backend() != "jax":
        return
    distribution = keras.distribution.DataParallel()
    keras.distribution.set_distribution(distribution)
    try:
        laid_out = _compat.distribute_batch({"x": batch})["x"]
    finally:
        keras.distribution.set_distribution(None)
    expected = distribution.get_data_layout(batch.shape).backend_layout
    assert laid_out.sharding.is_equivalent_to(expected, 2)
    np.testing.assert_array_equal(np.asarray(laid_out), batch)


def test_a_callback_reads_and_assigns_what_training_continues_from_mid_epoch():
    """The JAX trainer holds the state during an epoch; `Callback.model` syncs it, so a
    callback reads the current weights and what it assigns is what the next steps start from
    (every backend: TensorFlow and PyTorch train the variables themselves)."""
    inputs = keras.Input((2,))
    model = keras.Model(inputs, BatchNorm(momentum=0.5, name="bn")(keras.layers.Dense(2)(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    initial = keras.ops.convert_to_numpy(model.layers[1].kernel).copy()
    seen = {}

    class AssignAfterFirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                seen["kernel"] = keras.ops.convert_to_numpy(self.model.layers[1].kernel).copy()
                self.model.get_layer("bn").moving_mean.assign(np.full(2, 1000.0, "float32"))

    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    model.fit(x, x, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[AssignAfterFirstStep()])
    # The first step's weights: near the initial ones (a small step), not equal, not a placeholder.
    assert np.allclose(seen["kernel"], initial, atol=0.05) and not np.array_equal(seen["kernel"], initial)
    # One more step with momentum 0.5 from 1000: about 500, not the batch mean's scale.
    assert (keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean) > 400).all()


class _DenseHyperModel(keras_tuner.HyperModel):
    def __init__(self, fail_default=False):
        super().__init__()
        self.fail_default = fail_default

    def build(self, hp):
        units = hp.Int("units", 1, 4)
        if self.fail_default and units == 1:
            raise FailedTrialError("the default configuration is invalid")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


@pytest.mark.backend_independent
def test_keras_tuner_state_is_written_through_our_atomic_writer(tmp_path, monkeypatch):
    """KerasTuner still saves the oracle through `Oracle.save`, each trial through
    `Oracle._save_trial`, the tuner's state at `_get_tuner_fname()`, and asks `_is_worker()`."""
    written = []
    write_text = tuner_compat.write_text
    for module in (tuner_compat, search):
        monkeypatch.setattr(module, "write_text",
                            lambda path, text: written.append(os.path.basename(path)) or write_text(path, text))
    tuner = make_tuner(_DenseHyperModel(), "random", max_trials=2, directory=tmp_path, project_name="p",
                       objective="val_loss", seed=0)
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert not tuner_compat.is_worker(tuner)
    assert {"oracle.json", "trial.json", os.path.basename(tuner_compat.tuner_state_path(tuner))} <= set(written)
    assert written.count("trial.json") >= 2


@pytest.mark.backend_independent
def test_keras_tuner_still_builds_the_default_configuration_when_a_tuner_starts(tmp_path):
    with pytest.warns(UserWarning, match="default configuration cannot be built"):
        make_tuner(_DenseHyperModel(fail_default=True), "random", max_trials=1, directory=tmp_path,
                   project_name="p", objective="val_loss")
