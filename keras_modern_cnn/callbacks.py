"""The Keras callbacks of `kmc train` (`keras_modern_cnn.training.fit`), usable in any `model.fit`.

- `StopOnNonFiniteLoss`: a non-finite loss or metric ends the run before the epoch is recorded.
- `EpochHistory`: `history.csv`, every finished epoch exactly once across resumed runs.
- `AtomicBackupAndRestore`: Keras's `BackupAndRestore` with a checkpoint that survives `kill -9`.
- `TrainingTimer`: seconds of training per epoch (validation excluded), for examples/sec.
- `CurrentEpoch`: the epoch in progress (1-based), for the message of an interrupted run.
- `BlockMidEpoch`: a test hook (`files.block_point`) that stops a real run at a known moment.
"""

import math
import time

import keras

from keras_modern_cnn import rundir
from keras_modern_cnn._compat import AtomicBackupAndRestore
from keras_modern_cnn.files import block_point

__all__ = [
    "AtomicBackupAndRestore", "BlockMidEpoch", "CurrentEpoch", "EpochHistory",
    "NonFiniteLossError", "StopOnNonFiniteLoss", "TrainingTimer", "check_finite",
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
