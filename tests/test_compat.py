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

from keras_modern_cnn import _compat, layers
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


def test_a_functional_model_runs_its_graph_through_an_instance_runner_in_graph_steps_order():
    """`keras_modern_cnn.torch_graph`: `Functional.call` (and `clone_model`) call
    `self._run_through_graph(inputs, operation_fn=...)`, found on the instance; Keras runs the
    nodes in `graph_steps`'s order; `Node.arguments.fill_in` takes tensors by id; the outputs'
    nesting is `_outputs_struct`."""
    order = []

    class Recorder(keras.layers.Layer):
        def call(self, x):
            order.append(self.name)
            return x + 1.0

    x = inputs = keras.Input((4,))
    a = Recorder(name="a")(x)
    b = Recorder(name="b")(Recorder(name="b0")(x))
    outputs = {"sum": keras.layers.Add(name="add")([Recorder(name="c")(a), b]), "a": a}
    model = keras.Model(inputs, outputs)
    order.clear()  # the symbolic calls that built the graph
    model(np.ones((1, 4), "float32"))
    steps = _compat.graph_steps(model)
    assert [node.operation.name for node in steps if node.operation.name != "add"] == order
    node = steps[0]
    value = keras.ops.ones((1, 4))
    args, kwargs = node.arguments.fill_in({id(node.input_tensors[0]): value})
    assert args[0] is value and kwargs == {}
    structure = _compat.outputs_structure(model)
    assert set(structure) == {"sum", "a"} and keras.tree.flatten(structure) == model.outputs
    assert _compat.graph_steps(keras.Sequential([keras.layers.Dense(1)])) is None
    calls = []

    def runner(inputs, operation_fn=lambda op: op, call_fn=None):
        calls.append(call_fn)
        return type(model)._run_through_graph(model, inputs, operation_fn, call_fn)

    _compat.replace_graph_runner(model, runner)
    model(np.ones((1, 4), "float32"))
    keras.models.clone_model(model)
    assert calls == [None, None]


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


def test_what_a_direct_layer_call_reads_of_keras():
    """`layers/fast_call.py` skips `Layer.__call__` only when all it would do is call `call`.
    Written for Keras 3.15: when Keras moves, re-read `Layer.__call__` (what it does besides
    calling `call`) and update these checks and `fast_call.call_kwargs`."""
    assert keras.__version__.startswith(_compat.KERAS_VERSION_WRITTEN_FOR + "."), keras.__version__
    from keras.src.backend import AutocastScope

    layer = BatchNorm()
    assert _compat.call_context_arguments(layer) == ({"training"}, {"training": True})
    assert _compat.call_context_arguments(layers.Conv2D(2, 1))[1] == {"training": False}
    assert not _compat.remat_mode(layer)
    with keras.RematScope(mode="full"):
        assert _compat.remat_mode(layers.Activation("relu"))
    assert _compat.autocast_scope() is None
    with AutocastScope("float16"):
        assert _compat.autocast_scope() is not None
    inputs = keras.ops.convert_to_tensor(np.ones((2, 3, 4), "float32"))
    assert _compat.keras_mask(keras.layers.Masking()(inputs)) is not None
    called = layers.Activation("relu")
    assert not called._called
    _compat.mark_called(called)
    assert called._called




@pytest.mark.skipif(keras.config.backend() != "torch", reason="a torch parameter behind a Keras variable")
def test_the_torch_parameter_behind_a_variable_can_be_stored_in_another_layout():
    """`layers/torch_conv.py` re-stores a kernel's parameter channels_last in `build`; Keras must
    keep training and assigning into that same parameter."""
    import torch

    layer = layers.Conv2D(8, 3)
    layer.build((None, 5, 5, 4))
    parameter = _compat.torch_parameter(layer.kernel)
    assert isinstance(parameter, torch.nn.Parameter) and tuple(parameter.shape) == (3, 3, 4, 8)
    assert any(p is parameter for p in layer.parameters())
    replacement = torch.nn.Parameter(parameter.detach().permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0))
    _compat.replace_torch_parameter(layer.kernel, replacement)
    layer.kernel.assign(np.ones((3, 3, 4, 8), "float32"))
    assert _compat.torch_parameter(layer.kernel) is replacement  # assigned in place
    assert replacement.permute(3, 2, 0, 1).is_contiguous(memory_format=torch.channels_last)
    assert float(replacement.detach().sum()) == 3 * 3 * 4 * 8


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


def dense_search(directory, max_trials):
    """A seeded random search over `_DenseHyperModel` in `directory/p`, minimising val_loss."""
    return make_tuner(_DenseHyperModel(), "random", max_trials=max_trials, directory=directory,
                      project_name="p", objective="val_loss", seed=0)


@pytest.mark.slow
@pytest.mark.backend_independent
def test_keras_tuner_state_is_written_through_our_atomic_writer(tmp_path, monkeypatch):
    """KerasTuner still saves the oracle through `Oracle.save`, each trial through
    `Oracle._save_trial`, the tuner's state at `_get_tuner_fname()`, and asks `_is_worker()`."""
    written = []
    write_text = tuner_compat.write_text
    for module in (tuner_compat, search):
        monkeypatch.setattr(module, "write_text",
                            lambda path, text: written.append(os.path.basename(path)) or write_text(path, text))
    tuner = dense_search(tmp_path, 2)
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


@pytest.mark.backend_independent
def test_hyper_image_augment_records_its_rand_augment_mode_in_model_name():
    """`HyperCNN(augment=...)` refuses KerasTuner's RandAugment mode, told by `model_name`."""
    from keras_tuner.applications import HyperImageAugment

    assert tuner_compat.is_rand_augment(HyperImageAugment(input_shape=(8, 8, 1), augment_layers=2))
    assert not tuner_compat.is_rand_augment(HyperImageAugment(input_shape=(8, 8, 1), augment_layers=0))


@pytest.mark.backend_independent
def test_tfds_downloads_retry_as_often_as_we_set_and_the_failure_is_reported_whole(tmp_path, monkeypatch):
    """TFDS still reads `downloader.MAX_RETRIES` per request: offline, `--dataset cifar10` fails
    after `TFDS_DOWNLOAD_RETRIES` retries (seconds), not TFDS's ten (3.4 minutes of backoff),
    and the one-line error carries the whole cause."""
    import http.server
    import threading

    from tensorflow_datasets.core.download import downloader
    from tensorflow_datasets.image_classification import mnist

    from keras_modern_cnn.data import load_data

    requests = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(mnist.FashionMNIST, "URL", f"http://127.0.0.1:{server.server_port}/")
    try:
        with pytest.raises(ValueError) as raised:
            load_data("fashion_mnist", data_dir=str(tmp_path / "tfds"))
    finally:
        server.shutdown()
        server.server_close()
    per_file = {path: requests.count(path) for path in requests}
    # (The first file to fail cancels the others' remaining tries.)
    assert max(per_file.values()) == _compat.TFDS_DOWNLOAD_RETRIES + 1, per_file
    assert downloader.MAX_RETRIES == 10  # restored: TFDS's own value, for other callers
    message = str(raised.value)
    assert "could not be downloaded (ResponseError: too many 503 error responses)" in message
    assert message.endswith("Received: dataset='fashion_mnist'")


@pytest.mark.backend_independent
def test_keras_tuner_runs_each_trial_through_the_methods_stop_cleanly_overrides(tmp_path, monkeypatch):
    """`StopCleanly` relies on `BaseTuner._try_run_and_update_trial` calling
    `_run_and_update_trial` inside its `try` (which turns any `Exception` into a failed trial)
    and re-raising `FatalError`, and on `Oracle.reload` re-queueing a trial left running."""
    import signal

    from keras_modern_cnn import files, signals

    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")

    run_trial = keras_tuner.Tuner.run_trial

    def swallowed_interrupt(self, trial, *args, **kwargs):
        signals._received.append(signal.SIGINT)  # as when TensorFlow hands the signal back
        raise RuntimeError("a library's own error, raised where the signal arrived")

    monkeypatch.setattr(keras_tuner.Tuner, "run_trial", swallowed_interrupt)
    with pytest.raises(signals.Interrupted) as interrupted:
        dense_search(tmp_path, 2).search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    signals._received.clear()
    assert interrupted.value.where.startswith("during trial 0 in ")
    trial_file = tmp_path / "p" / "trial_0" / "trial.json"
    assert json.loads(trial_file.read_text())["status"] == "RUNNING"  # not failed forever

    def out_of_space(self, trial, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras_tuner.Tuner, "run_trial", out_of_space)
    with pytest.raises(files.DiskFullError, match="No space left to write .*trial_0"):
        dense_search(tmp_path, 2).search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    monkeypatch.setattr(keras_tuner.Tuner, "run_trial", run_trial)
    resumed = dense_search(tmp_path, 2)
    resumed.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert sorted((t.trial_id, t.status) for t in resumed.oracle.trials.values()) == [
        ("0", "COMPLETED"), ("1", "COMPLETED")]


@pytest.mark.backend_independent
def test_keras_tuner_tells_a_worker_from_its_environment_and_reads_the_state_we_check(tmp_path, monkeypatch):
    """`is_worker_process` relies on `keras_tuner.src.distribute.utils`; `check_state_files` on
    the keys KerasTuner's `Oracle.get_state` and `Trial.get_state` write."""
    assert not tuner_compat.is_worker_process()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
    assert tuner_compat.is_worker_process()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert not tuner_compat.is_worker_process()
    monkeypatch.undo()

    tuner = dense_search(tmp_path, 1)
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert set(tuner.oracle.get_state()) == set(tuner_compat.ORACLE_STATE_KEYS)
    trial = next(iter(tuner.oracle.trials.values()))
    assert set(trial.get_state()) == set(tuner_compat.TRIAL_STATE_KEYS)
    tuner_compat.check_state_files(tuner.project_dir, tuner_compat.tuner_state_path(tuner))


@pytest.mark.backend_independent
def test_keras_tuner_saves_a_new_trial_before_the_oracle_and_reload_reruns_it(tmp_path):
    """A kill between `Oracle.create_trial`'s `_save_trial` and `save` leaves a running trial that
    `oracle.json` does not list: `AtomicOracleState.reload` queues it again (KerasTuner itself
    would leave it running forever)."""
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")

    dense_search(tmp_path, 1).search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    project = tmp_path / "p"
    state = json.loads((project / "trial_0" / "trial.json").read_text())
    (project / "trial_1").mkdir()
    (project / "trial_1" / "trial.json").write_text(json.dumps(
        dict(state, trial_id="1", status="RUNNING", score=None, best_step=0)))
    resumed = dense_search(tmp_path, 2)
    resumed.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert [(t.trial_id, t.status) for t in sorted(resumed.oracle.trials.values(),
                                                    key=lambda t: t.trial_id)] == [
        ("0", "COMPLETED"), ("1", "COMPLETED")]


@pytest.mark.backend_independent
def test_keras_tuner_reloads_only_with_the_tuner_state_file_and_we_reload_without_it(tmp_path):
    """`BaseTuner.__init__` reloads a project only when `tuner0.json` exists (written when a
    trial ends; its state is empty), else it starts over in the trials' folders. A search
    stopped before its first trial ended has only the oracle's state: reloaded from it."""
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")

    dense_search(tmp_path, 1).search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert json.loads((tmp_path / "p" / "tuner0.json").read_text()) == {}
    (tmp_path / "p" / "tuner0.json").unlink()
    first_trial = (tmp_path / "p" / "trial_0" / "trial.json").read_bytes()
    resumed = dense_search(tmp_path, 2)
    resumed.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert sorted((t.trial_id, t.status) for t in resumed.oracle.trials.values()) == [
        ("0", "COMPLETED"), ("1", "COMPLETED")]
    assert (tmp_path / "p" / "trial_0" / "trial.json").read_bytes() == first_trial  # not rerun


@pytest.mark.backend_independent
def test_keras_tuner_checkpoints_each_trial_where_we_check_the_space_first(tmp_path, monkeypatch):
    """`Tuner._get_checkpoint_fname` is the file `SaveBestEpoch` writes (with h5py, which can
    crash on a full disk): our search checks the room for it at each epoch's end, before."""
    from keras_modern_cnn import files

    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros(8, "int64")

    first = dense_search(tmp_path, 1)
    first.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert os.path.isfile(tuner_compat.checkpoint_path(first, "0"))
    monkeypatch.setattr(files, "free_bytes", lambda path: 1000)
    with pytest.raises(files.DiskFullError, match=r"No space left to write .*trial_1.*checkpoint"):
        dense_search(tmp_path, 2).search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    assert not os.path.exists(tuner_compat.checkpoint_path(first, "1"))
