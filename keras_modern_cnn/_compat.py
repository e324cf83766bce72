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

from keras_modern_cnn.files import block_point, write_text

KERAS_VERSION_WRITTEN_FOR = "3.15"

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
    renames replays one epoch from slightly newer weights, never loses one).

    Relies on `BackupAndRestore._save_model` (called at each epoch end), its attributes
    `_weights_path`, `_training_metadata_path`, `_current_epoch`, `_last_batch_seen`, and on
    `on_train_begin` restoring from the same two files (metadata `{"epoch", "batch"}`).
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights_tmp = f"{self._weights_path[:-len('.weights.h5')]}.tmp.weights.h5"
        self.model.save_weights(weights_tmp, overwrite=True)
        if self._current_epoch >= 2:
            block_point("epoch-checkpoint")
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        os.replace(weights_tmp, self._weights_path)
        write_text(self._training_metadata_path, json.dumps(metadata))


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

