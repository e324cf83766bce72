"""The Keras callbacks of `kmc train` (`keras_modern_cnn.training.fit`), usable in any `model.fit`.

- `StopOnNonFiniteLoss`: a non-finite loss or metric ends the run before the epoch is recorded.
- `EpochHistory`: `history.csv`, every finished epoch exactly once across resumed runs.
- `AtomicBackupAndRestore`: Keras's `BackupAndRestore` with a checkpoint that survives `kill -9`.
- `TrainingTimer`: seconds of training per epoch (validation excluded), for examples/sec.
- `CheckSpaceBeforeSaving`: a full disk found before a library's checkpoint write, not by a crash.
- `CurrentEpoch`: the epoch in progress (1-based), for the message of an interrupted run.
- `PreciseBatchNorm`: precise BatchNorm statistics (population, not EMA) before each validation.
- `BlockMidEpoch`: a test hook (`files.block_point`) that stops a real run at a known moment.
"""

import contextlib
import math
import time
from typing import Any, Optional

import keras
import numpy as np

from keras_modern_cnn import rundir
from keras_modern_cnn._compat import AtomicBackupAndRestore
from keras_modern_cnn.choices import PRECISE_BN_BATCHES
from keras_modern_cnn.files import block_point, ensure_space, variables_bytes
from keras_modern_cnn.layers.precise_bn import (
    StatisticsEstimator,
    assign_statistics,
    moving_statistics,
    statistics_layers,
)
from keras_modern_cnn.validation import check_choice, check_positive_int

__all__ = [
    "AtomicBackupAndRestore", "BlockMidEpoch", "CheckSpaceBeforeSaving", "CurrentEpoch", "EpochHistory",
    "NonFiniteLossError", "PreciseBatchNorm", "StopOnNonFiniteLoss", "TrainingTimer",
    "check_finite",
]


class NonFiniteLossError(ValueError):
    """Training produced a non-finite loss; nothing of that epoch was saved."""


def check_finite(logs, where, learning_rate):
    """Raise `NonFiniteLossError` if any value of `logs` is NaN or infinite."""
    bad = {key: value for key, value in (logs or {}).items() if not math.isfinite(float(value))}
    if bad:
        raise NonFiniteLossError(
            f"Training stopped: {', '.join(f'{k}={v}' for k, v in bad.items())} in {where}; "
            f"nothing of it was saved (lower the learning rate or check the data for "
            f"NaN/inf). Received: learning_rate={learning_rate!r}"
        )


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise `NonFiniteLossError` at the end of an epoch whose loss or metrics are not finite."""

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = learning_rate

    def on_epoch_end(self, epoch, logs=None):
        check_finite(logs, f"epoch {epoch + 1}", self.learning_rate)


class BlockMidEpoch(keras.callbacks.Callback):
    """Test hook (`files.block_point`): block in the middle of the second epoch."""

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch >= 1 and batch >= 1:
            block_point("mid-epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


class CurrentEpoch(keras.callbacks.Callback):
    """`epoch`: the epoch in progress, counted from 1 (None before the first begins)."""

    def __init__(self):
        super().__init__()
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1


class CheckSpaceBeforeSaving(keras.callbacks.Callback):
    """At each epoch's end, before a library saves the model's weights to `path` (KerasTuner's
    best-epoch checkpoint): `DiskFullError` if its device lacks room for them. h5py, which
    writes them, can crash the process on a full disk instead of raising."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        ensure_space(self.path, variables_bytes(self.model.weights))


class EpochHistory(keras.callbacks.Callback):
    """`history.csv` holding every finished epoch exactly once, across resumed runs.

    Rows are numbered from 1. The first epoch of a run tells where training (re)starts: rows
    of that epoch and later (left by an interrupted run) are dropped, earlier rows kept.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.rows = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is None:  # Keras's `epoch` counts from 0: the epochs already done
            self.rows = [row for row in rundir.read_history(self.path) if row["epoch"] <= epoch]

    def on_epoch_end(self, epoch, logs=None):
        # Numbered from 1, as the progress lines and curves.png count.
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        rundir.write_history(self.rows, self.path)


class TrainingTimer(keras.callbacks.Callback):
    """Seconds spent in the training part of each epoch (validation excluded)."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def examples_per_second(self, num_train):
        """Training throughput; the first epoch (compilation) is left out when others ran."""
        timed = self.seconds[1:] or self.seconds
        return num_train * len(timed) / sum(timed) if timed else None


PRECISE_BN_WHEN = ("epoch", "end")


class PreciseBatchNorm(keras.callbacks.Callback):
    """Precise BatchNorm statistics in `model.fit`: every reported accuracy is the model's.

    Before each validation (`when="epoch"`; at the epoch's end when that epoch does not
    validate) or once when training ends (`when="end"`), re-estimates the moving mean and
    variance of every BatchNorm layer that learns statistics — `keras_modern_cnn.layers.BatchNorm`
    and `keras.layers.BatchNormalization`; frozen and `trainable=False` layers are untouched —
    as the population statistics of `steps` training batches under the current weights, and
    writes them into the model, which validation, checkpoints saved at the epoch's end and the
    final model then carry. The EMA goes on from them in the next epoch (as fvcore's
    `PreciseBN` hook). The estimation is `keras_modern_cnn.layers.precise_bn`: one compiled
    forward pass per batch (`jax.jit` / `tf.function` / `torch.no_grad`), statistics in
    float32 under mixed precision, pooled in float64, across replicas under data parallelism.
    Put it before callbacks that save the model at an epoch's end (ModelCheckpoint,
    BackupAndRestore) when the run has epochs without validation.

        model.fit(train, validation_data=test, epochs=3,
                  callbacks=[kmc.callbacks.PreciseBatchNorm(train, steps=100)])

    Reference: Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021 (arXiv:2105.07576);
    fvcore's `PreciseBN` hook and pycls (Radosavovic et al. 2020) run it before evaluation.

    Args:
        data: the training data, yielding batches (a `tf.data.Dataset`, a `PyDataset`, a
            generator, a list; each batch the inputs or `(x, y[, sample_weight])`), or an
            array / a tuple of arrays, cut into `batch_size` batches in a fresh random order
            each time. Each estimation takes the first `steps` batches of a new pass over it
            (a shuffling dataset gives different ones each time; a plain iterator, its next).
        steps: batches per estimation (all of `data` when it has fewer), or None for all.
        when: "epoch" or "end".
        batch_size: batches of array `data` (default 32, as `fit`).

    Attributes:
        estimations: one dict per estimation: epoch (None at the end), layers estimated,
            batches, samples, seconds.
    """

    def __init__(
        self, data: Any, steps: Optional[int] = PRECISE_BN_BATCHES, *, when: str = "epoch",
        batch_size: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.steps = None if steps is None else check_positive_int("steps", steps)
        self.when = check_choice("when", when, PRECISE_BN_WHEN)
        self.data = _batches_of_arrays(data, batch_size) if _is_arrays(data) else data
        if batch_size is not None and not _is_arrays(data):
            raise ValueError(
                "`batch_size` cuts array data into batches; `data` yields batches already. "
                f"Received: batch_size={batch_size!r}"
            )
        self.estimations: list[dict] = []
        self._estimator: Optional[StatisticsEstimator] = None
        self._replaced: Optional[list] = None
        self._epoch: Optional[int] = None
        self._pending = False

    def on_train_begin(self, logs=None):
        self._pending = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._pending = epoch, self.when == "epoch"

    def on_test_begin(self, logs=None):
        if self._pending:  # this epoch's validation inside fit (not a separate evaluate)
            self.update()

    def on_epoch_end(self, epoch, logs=None):
        if self._pending:  # an epoch without validation
            self.update()

    def on_train_end(self, logs=None):
        if self.when == "end":
            self._epoch = None
            self.update()
        self._pending = False

    def update(self) -> dict:
        """Estimate and write the statistics now; returns this estimation's record."""
        self._pending = False
        model = self.model  # on JAX, mid-epoch too: the trainer's state, synced (`_compat`)
        layers = statistics_layers(model)
        replaced = moving_statistics(layers)
        estimator = self._estimator
        if estimator is None or estimator.model is not model:
            estimator = self._estimator = StatisticsEstimator(model)  # compiled once per model
        start = time.perf_counter()
        statistics = estimator.estimate(self.data, self.steps)
        if layers and not statistics.batches:
            raise ValueError(
                "PreciseBatchNorm's `data` yielded no batch: it needs training batches. "
                f"Received: data={self.data!r}"
            )
        statistics.assign()
        record = {"epoch": self._epoch, "layers": len(layers), "batches": statistics.batches,
                  "samples": statistics.samples, "seconds": time.perf_counter() - start}
        self._replaced = list(zip(layers, replaced))
        self.estimations.append(record)
        return record

    @contextlib.contextmanager
    def moving_averages(self):
        """Within the block, the layers hold the moving averages (EMA) the last estimation
        replaced, e.g. to evaluate the model as it would be without precise statistics."""
        if self._replaced is None:
            raise ValueError("PreciseBatchNorm has not estimated any statistics yet.")
        layers = [layer for layer, _ in self._replaced]
        precise = moving_statistics(layers)
        for layer, (mean, variance) in self._replaced:
            assign_statistics(layer, mean, variance)
        try:
            yield
        finally:
            for layer, (mean, variance) in zip(layers, precise):
                assign_statistics(layer, mean, variance)


def _is_arrays(data):
    if isinstance(data, tuple) and data:
        return all(isinstance(part, np.ndarray) or part is None for part in data)
    return isinstance(data, np.ndarray)


class _batches_of_arrays:
    """Array data as batches, in a new random order (seeded by the pass) on each pass."""

    def __init__(self, data, batch_size):
        self.x = data[0] if isinstance(data, tuple) else data
        self.batch_size = 32 if batch_size is None else check_positive_int("batch_size", batch_size)
        self.passes = 0

    def __iter__(self):
        order = np.random.default_rng(self.passes).permutation(len(self.x))
        self.passes += 1
        for start in range(0, len(order), self.batch_size):
            yield self.x[np.sort(order[start:start + self.batch_size])]

    def __repr__(self):
        return f"<{len(self.x)} examples in batches of {self.batch_size}>"
