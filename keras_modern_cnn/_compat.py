"""Every place the package relies on Keras internals, in one module, for Keras 3.15.

Each entry names what it relies on; `tests/test_compat.py` holds one test per entry that fails
when Keras changes that behaviour, so a Keras upgrade shows at once what to revisit. The
KerasTuner internals `kmc tune` overrides live in `keras_modern_cnn.tuning._compat` (the core
never imports KerasTuner).

Relied on without a wrapper here: on JAX, `keras.callbacks.Callback.model` writes the trainer's
state back into the variables (`jax_state_sync`), and the training and evaluation loops read
the variables again afterwards, so what a callback assigns through `self.model` (precise BN's
statistics) is what validation and the next steps use (test_compat pins it).
"""

import contextlib
import json
import os

import keras

from keras_modern_cnn.files import atomic_write, block_point, variables_bytes, write_text

KERAS_VERSION_WRITTEN_FOR = "3.15"
# Why each internal is used: the engine's checkpoint and losses, `utils` (flops, weights), the
# fine-tuning tools, and on PyTorch the layers' direct calls and zero-copy kernels
# (`layers/fast_call.py`, `layers/torch_conv.py`, issue 31).

# Keras 3.15 records torch-specific optimizer classes (`torch_sgd.SGD`, ...) from this module
# in a `.keras` file saved on torch (`keras_modern_cnn.saving.make_backend_portable`).
TORCH_OPTIMIZER_MODULES = "keras.src.backend.torch.optimizers."


def all_layers(model, include_self=False):
    """Every layer inside `model`, nested models' layers included, in creation order.

    Relies on `Layer._flatten_layers(include_self=...)` (Keras has no public equivalent that
    descends into nested models).
    """
    return list(model._flatten_layers(include_self=include_self))


def nodes_by_depth(model):
    """The functional graph's nodes grouped by depth, or None for a subclassed model.

    Relies on `Functional._nodes_by_depth` and `Sequential._functional`.
    """
    graph = model._functional if isinstance(model, keras.Sequential) else model
    return getattr(graph, "_nodes_by_depth", None)


def graph_steps(model):
    """The nodes of a functional model's graph in the order `Function._run_through_graph` runs
    them (deepest first, input nodes left out), or None for any other model.

    Relies on `Functional._nodes_by_depth` and on `Node.operation`, `Node.is_input`,
    `Node.input_tensors`, `Node.outputs` and `Node.arguments.fill_in(tensors by id)`.
    """
    from keras.src.models.functional import Functional

    if not isinstance(model, Functional):
        return None
    by_depth = model._nodes_by_depth
    return [
        node
        for depth in sorted(by_depth, reverse=True)
        for node in by_depth[depth]
        if node.operation and not node.is_input
    ]


def replace_graph_runner(model, runner):
    """Make `runner(inputs, operation_fn=..., call_fn=None)` run `model`'s graph.

    Relies on `Functional.call` (and `keras.models.clone_model`) calling
    `self._run_through_graph(inputs, operation_fn=...)`: an instance attribute of that name
    is found before the class's method. Set with `object.__setattr__`, outside Keras's and
    torch's attribute tracking (it is neither a layer, a variable nor saved).
    """
    object.__setattr__(model, "_run_through_graph", runner)


def remove_graph_runner(model):
    """Take back a runner `replace_graph_runner` gave `model` (None if it has none): Keras's
    `Function._run_through_graph` runs its graph again."""
    return vars(model).pop("_run_through_graph", None)


def outputs_structure(model):
    """The nesting of a functional model's outputs. Relies on `Function._outputs_struct`."""
    return model._outputs_struct


def call_context_arguments(layer):
    """`(names, accepted)`: the call-context arguments `Layer.__call__` resolves for `layer`
    ("training") and, per name, whether `layer.call` takes it.

    Relies on `Layer._call_context_args` and `Layer._call_has_context_arg`.
    """
    return layer._call_context_args, layer._call_has_context_arg


def remat_mode(layer):
    """`layer`'s rematerialization mode (`keras.RematScope`), None when off.

    Relies on `Layer._remat_mode`.
    """
    return getattr(layer, "_remat_mode", None)


def keras_mask(tensor):
    """The mask Keras attached to a backend tensor, or None. Relies on `tensor._keras_mask`."""
    return getattr(tensor, "_keras_mask", None)


def autocast_scope():
    """The active `AutocastScope` (mixed precision inside a layer call), or None.

    Relies on `keras.src.backend.get_autocast_scope`.
    """
    from keras.src.backend import get_autocast_scope

    return get_autocast_scope()


def mark_called(layer):
    """Record that `layer` was called, as `Layer.__call__` does. Relies on `Layer._called`."""
    if not layer._called:  # Keras's tracked __setattr__ costs ~0.5 ms a call: set it once
        layer._called = True


def torch_parameter(variable):
    """The `torch.nn.Parameter` behind a Keras variable on the torch backend.

    Relies on `keras.src.backend.torch.Variable._value` holding it (and `assign` copying into
    it, keeping its strides).
    """
    return variable._value


def replace_torch_parameter(variable, parameter):
    """Put `parameter` behind the Keras variable (call before Keras tracks the layer's
    parameters, i.e. in `build`). Relies on `Variable._value`."""
    variable._value = parameter


def loss_function_arguments(loss):
    """The keyword arguments a `keras.losses.LossFunctionWrapper` passes to its function.

    Relies on `LossFunctionWrapper._fn_kwargs`.
    """
    return loss._fn_kwargs


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose checkpoint survives `kill -9` at any moment.

    Keras writes the weights file in place, so a kill during the first save leaves a truncated
    file that the next run cannot load. Here weights and metadata are written to temporary
    files and renamed over the previous checkpoint (weights first: a kill between the two
    renames replays one epoch from slightly newer weights, never loses one), through
    `files.atomic_write`: a full disk is one line, checked before h5py writes.

    Relies on `BackupAndRestore._save_model` (called at each epoch end), its attributes
    `_weights_path`, `_training_metadata_path`, `_current_epoch`, `_last_batch_seen`, and on
    `on_train_begin` restoring from the same two files (metadata `{"epoch", "batch"}`).
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)

        def write(temporary):
            self.model.save_weights(temporary, overwrite=True)
            if self._current_epoch >= 2:
                block_point("epoch-checkpoint")

        # Checked for space first: h5py can crash the process on a full disk.
        atomic_write(self._weights_path, write, expected_bytes=variables_bytes(self.model.weights))
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        write_text(self._training_metadata_path, json.dumps(metadata))


# TFDS's downloader retries each request `MAX_RETRIES` times (10 in tensorflow-datasets 4.9)
# with exponential backoff (0.2 s doubling): offline, a first download sat at "Dl Completed 0%"
# for 3.4 minutes before failing. Three retries fail in about two seconds and still ride out a
# brief outage.
TFDS_DOWNLOAD_RETRIES = 3


@contextlib.contextmanager
def tfds_download_retries(retries=TFDS_DOWNLOAD_RETRIES):
    """Within the block, TFDS's downloader retries a request at most `retries` times.

    Relies on `tensorflow_datasets.core.download.downloader.MAX_RETRIES`, read by
    `_open_with_requests` on every download.
    """
    from tensorflow_datasets.core.download import downloader

    previous = downloader.MAX_RETRIES
    downloader.MAX_RETRIES = retries
    try:
        yield
    finally:
        downloader.MAX_RETRIES = previous


@contextlib.contextmanager
def replaced_call(layer, call):
    """Within the block, `layer(...)` runs `call(inputs, training=None, mask=None)` in place of
    the class's `call` (precise BN's collecting call for `keras.layers.BatchNormalization`).

    Relies on `Layer.__call__` (through `Operation.__call__`) looking `self.call` up on the
    instance at each call, and on `_call_has_training_arg`/`_call_has_mask_arg`, computed from
    the class's signature, still passing `training` and `mask` to the replacement.
    """
    vars(layer)["call"] = call
    try:
        yield layer
    finally:
        vars(layer).pop("call", None)


def distribute_batch(batch):
    """`batch` (this process's share) laid out as `fit` lays out a batch under the current
    `keras.distribution` on JAX (sharded over the batch axis across every process's devices);
    unchanged without a distribution.

    Relies on `keras.src.backend.jax.trainer._distribute_data`, what `JAXTrainer` calls on
    every batch of `fit`, `evaluate` and `predict`.
    """
    if keras.distribution.distribution() is None:
        return batch
    from keras.src.backend.jax.trainer import _distribute_data

    return _distribute_data(batch)
