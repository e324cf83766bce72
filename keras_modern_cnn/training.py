"""Training a registered model: the stages behind `kmc train`, `kmc compare`, `kmc tune`.

`train(config)` runs the stages on one `RunConfig` (`keras_modern_cnn.config`):
plan the run directory (new, resume or extend: `keras_modern_cnn.rundir`), `prepare_data`
(load and check), `build_and_compile`, `fit` (validation on the test split every epoch,
checkpoint every epoch, stop on a non-finite loss), then `report` (`model.keras`,
`metrics.json`, `history.csv`, `curves.png`). A `kill -9` at any moment loses at most the
epoch in progress; rerunning the same command resumes.

Reference recipe: Dive into Deep Learning, "Modern CNNs" (plain SGD, Fashion-MNIST).
"""

import contextlib
import csv
import dataclasses
import importlib.util
import io
import json
import math
import os
import time

import keras

import keras_modern_cnn
from keras_modern_cnn import losses, rundir, saving
from keras_modern_cnn.config import OPTIMIZER_CLASSES
from keras_modern_cnn.data import load_data, make_pipeline
from keras_modern_cnn.devices import device_settings
from keras_modern_cnn.metrics import MeanDice
from keras_modern_cnn.registry import get_spec


class NonFiniteLossError(ValueError):
    """Training produced a non-finite loss; nothing of that epoch was saved."""


def make_optimizer(name, learning_rate):
    """A fresh Keras optimizer by name (one of `OPTIMIZERS`, checked by `RunConfig`)."""
    return getattr(keras.optimizers, OPTIMIZER_CLASSES[name])(learning_rate=learning_rate)


def train(config, *, overwrite=False, resume=False, verbose="auto", log=print):
    """Train, evaluate and save the run `config` describes; returns the metrics dict.

    In a multi-process `data-parallel` run (`keras_modern_cnn.distribute.jax_cluster`), process
    0 writes the run directory; every other process runs the same steps (saving included: JAX
    saves collectively) on a private copy of it, removed at the end.

    Args:
        config: a `RunConfig` (`keras_modern_cnn.config.resolve_config`).
        overwrite: start over in a directory holding another or a finished run.
        resume: train a finished run on to `config.epochs` (more than it has).
        verbose: `model.fit` verbosity ("auto": progress bar).
        log: where one-line notices go ("resuming from epoch N of M").
    """
    from keras_modern_cnn.distribute import jax_cluster

    cluster = jax_cluster(os.environ) if config.strategy == "data-parallel" else None
    if cluster is None or cluster[2] == 0:
        return _train(config, overwrite, resume, verbose, log)
    _, processes, index = cluster
    log(f"process {index} of {processes}: process 0 writes {config.output_dir}")
    with rundir.private_copy(config.output_dir) as copy:
        metrics = _train(dataclasses.replace(config, output_dir=copy), overwrite, resume,
                         verbose, log)
    # The paths of the files process 0 wrote.
    return {**metrics, **{key: os.path.join(config.output_dir, os.path.relpath(metrics[key], copy))
                          for key in ("model_path", "curves_path", "history_path")}}


def _train(config, overwrite, resume, verbose, log):
    """`train` in `config.output_dir`: plan, then the stages under the strategy."""
    # The whole run, data included, under the strategy: MultiWorkerMirroredStrategy must exist
    # before the first TensorFlow op, and JAX reads the distribution when fit runs.
    with _strategy(config.strategy) as strategy:
        if isinstance(strategy, keras.distribution.DataParallel):
            strategy.auto_shard_dataset = False  # make_pipelines gives each process its share
        device = device_settings(config, _device_count(strategy))
        log(device.summary())
        # run.json records the precision the device chose, not "default": a run resumed on
        # the same kind of device (or started before per-device defaults) compares equal.
        config = dataclasses.replace(config, mixed_precision=device.mixed_precision)
        plan = rundir.plan_run(config, overwrite=overwrite, resume=resume)
        keras.utils.set_random_seed(config.seed)
        data = prepare_data(config)
        names = ", ".join(data.class_names[:5]) + (", ..." if data.num_classes > 5 else "")
        log(f"data {data.name}: {data.num_train} train / {data.num_test} test examples, "
            f"{data.num_classes} classes ({names})")
        if data.skipped_files:
            log(f"skipped {data.skipped_files} unreadable image file(s)")
        notice = resize_notice(config, data)
        if notice:
            log(notice)
        pipelines = make_pipelines(config, data)
        model = build_and_compile(config, data, device, plan)
        if config.strategy == "data-parallel":  # every process planned before process 0 writes
            from keras_modern_cnn.distribute import check_same_on_every_process

            check_same_on_every_process(
                "run directory state", (rundir.RUN_MODES.index(plan.mode), plan.epochs_done))
        # Every check has passed: only now is the run directory touched.
        plan.begin(config, data_info(data, config), device.to_dict())
        if plan.message(config.epochs):
            log(plan.message(config.epochs))
        timer, wall_time = fit(config, model, pipelines, verbose)
        results = model.evaluate(pipelines["test"], verbose=0, return_dict=True)
        _check_finite(results, "the test evaluation", config)
        model_path = os.path.join(config.output_dir, rundir.MODEL_FILE)
        rundir.atomic_write(model_path, lambda path: _save_model(model, path))
    return report(config, data, model, results, timer, wall_time, plan)


def prepare_data(config):
    """Load the run's dataset, checked (`keras_modern_cnn.data.checks`)."""
    return load_data(
        config.dataset, task=get_spec(config.model).task, data_dir=config.data_dir,
        download=config.download, image_size=config.image_size,
        train_examples=config.train_examples, test_examples=config.test_examples,
        seed=config.seed, skip_unreadable=config.skip_unreadable,
    )


def resize_notice(config, data):
    """One line when the images are scaled by more than 2x to the model's input, else None."""
    height, width = data.train.element_spec[0].shape[:2]
    if height is None or width is None:  # sizes vary: each image is resized its own way
        return None
    factor = config.image_size / min(height, width)
    if 0.5 <= factor <= 2:
        return None
    return (f"note: {height}x{width} images are resized {factor:.3g}x to "
            f"{config.image_size}x{config.image_size} for {config.model}; "
            f"--image-size sets the input side")


def data_info(data, config):
    """What `run.json` records of the data, for `kmc evaluate` and `kmc predict`."""
    return {
        "name": data.name, "task": data.task, "channels": data.channels,
        "num_classes": data.num_classes, "class_names": list(data.class_names),
        "image_size": config.image_size, "normalization": config.normalization,
    }


def make_pipelines(config, data):
    """The train and test `tf.data` pipelines of a run (this process's share of each batch)."""
    processes, process_index = _processes(config.strategy)
    return {
        split: make_pipeline(
            getattr(data, split), image_size=config.image_size, batch_size=config.batch_size,
            training=split == "train", task=data.task, normalization=config.normalization,
            augment=config.augment and split == "train", seed=config.seed,
            shuffle_buffer=min(data.num_train, 50000), replicas=_replicas(config.strategy),
            processes=processes, process_index=process_index,
        )
        for split in ("train", "test")
    }


def _replicas(strategy):
    """Devices a JAX data-parallel batch is split over (tf.distribute splits uneven batches)."""
    if strategy != "data-parallel":
        return 1
    return len(keras.distribution.list_devices())


def _processes(strategy):
    """(processes, this one's index) of a data-parallel run; (1, 0) otherwise."""
    if strategy != "data-parallel":
        return 1, 0
    import jax

    return jax.process_count(), jax.process_index()


def _device_count(strategy):
    """Devices a run trains on, every process's included."""
    if strategy is None:
        return 1
    if isinstance(strategy, keras.distribution.DataParallel):
        return strategy.device_mesh.devices.size
    return strategy.num_replicas_in_sync


def build_and_compile(config, data, device, plan=None):
    """The compiled model under the run's `DeviceSettings`: built for the data, or the saved
    one when a run is extended."""
    with _dtype_policy(device.dtype_policy):
        if plan is not None and plan.from_saved_model:
            return load_model(os.path.join(config.output_dir, rundir.MODEL_FILE))
        model = build_model(
            get_spec(config.model), data, config.image_size, config.width_ratio, config.encoder
        )
        model.compile(
            optimizer=make_optimizer(config.optimizer, config.learning_rate),
            # Averaged over the weighted examples: a padded data-parallel test batch's
            # zero-weight padding does not dilute its loss.
            loss=losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"),
            weighted_metrics=_metrics(data),  # padded examples (weight 0) never count
            jit_compile=device.jit_compile,
        )
    return model


def fit(config, model, pipelines, verbose="auto"):
    """Fit to `config.epochs`, resuming from the checkpoint; returns (timer, wall seconds)."""
    output_dir = config.output_dir
    timer = TrainingTimer()
    callbacks = [
        # First: a non-finite epoch stops the run before it is recorded or checkpointed.
        StopOnNonFiniteLoss(config),
        # Before the checkpoint: an epoch is recorded before it counts as finished, so an
        # interruption in between replays (and re-records) it instead of losing its row.
        EpochHistory(os.path.join(output_dir, rundir.HISTORY_FILE)),
        AtomicBackupAndRestore(os.path.join(output_dir, rundir.BACKUP_DIR), delete_checkpoint=False),
        timer,
    ]
    if rundir.BLOCK_AT_VARIABLE in os.environ:
        callbacks.append(BlockMidEpoch())
    if importlib.util.find_spec("tensorboard") is not None:  # tf.summary needs it at run time
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, rundir.LOGS_DIR)))
    start = time.perf_counter()
    model.fit(
        pipelines["train"], validation_data=pipelines["test"], epochs=config.epochs,
        initial_epoch=rundir.finished_epochs(output_dir), callbacks=callbacks,
        verbose=verbose, shuffle=False,  # the pipeline shuffles
    )
    return timer, time.perf_counter() - start


def report(config, data, model, results, timer, wall_time, plan):
    """Write `curves.png` and `metrics.json` (the run is then finished), drop the checkpoint."""
    output_dir = config.output_dir
    history_path = os.path.join(output_dir, rundir.HISTORY_FILE)
    curves_path = os.path.join(output_dir, rundir.CURVES_FILE)
    plot_curves({config.model: read_history(history_path)}, curves_path,
                title=run_title(config, data.name))
    metrics = {
        "model": config.model,
        "dataset": data.name,
        "task": data.task,
        "class_names": list(data.class_names),
        "image_size": config.image_size,
        "channels": data.channels,
        "normalization": config.normalization,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer,
        "learning_rate": config.learning_rate,
        "width_ratio": config.width_ratio,
        "encoder": config.encoder,
        "recipe": config.recipe,
        "test_accuracy": float(results["accuracy"]),
        "test_loss": float(results["loss"]),
        **{f"test_{name}": float(results[name])
           for name in SEGMENTATION_METRICS if name in results},
        "examples_per_second": timer.examples_per_second(data.num_train),
        "parameters": model.count_params(),
        "wall_time_seconds": wall_time,
        "model_path": os.path.join(output_dir, rundir.MODEL_FILE),
        "curves_path": curves_path,
        "history_path": history_path,
    }
    rundir.write_metrics(os.path.join(output_dir, rundir.METRICS_FILE), metrics)
    plan.finish()
    return metrics


def load_model(path):
    """A `.keras` model written by `kmc`, or a one-line error naming the file."""
    keras_modern_cnn._load()  # registers the custom layers for safe loading

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file. Received: model_file={str(path)!r}")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # a truncated zip, a foreign file, a missing custom object
        raise ValueError(
            f"Cannot load the model ({type(error).__name__}: {str(error)[:200]}). "
            f"Received: model_file={str(path)!r}"
        ) from None


def _save_model(model, path):
    model.save(path)
    saving.make_backend_portable(path)
    rundir.block_point("final-save")


def _check_finite(logs, where, config):
    bad = {key: value for key, value in (logs or {}).items() if not math.isfinite(float(value))}
    if bad:
        raise NonFiniteLossError(
            f"Training stopped: {', '.join(f'{k}={v}' for k, v in bad.items())} in {where}; "
            f"nothing of it was saved (lower the learning rate or check the data for "
            f"NaN/inf). Received: learning_rate={config.learning_rate!r}"
        )


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise `NonFiniteLossError` at the end of an epoch whose loss or metrics are not finite."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def on_epoch_end(self, epoch, logs=None):
        _check_finite(logs, f"epoch {epoch + 1}", self.config)


class BlockMidEpoch(keras.callbacks.Callback):
    """Test hook (`rundir.block_point`): block in the middle of the second epoch."""

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch >= 1 and batch >= 1:
            rundir.block_point("mid-epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def build_model(spec, data, image_size, width_ratio=None, encoder=None):
    """The registered model sized for the data: its channels, classes and `image_size`."""
    kwargs = dict(input_shape=input_shape(image_size, data.channels), classes=data.num_classes)
    if width_ratio is not None:
        kwargs["width_ratio"] = width_ratio
    if encoder is not None:
        kwargs["encoder"] = encoder
    return spec.builder(**kwargs)


def input_shape(image_size, channels):
    """A square image input shape in the current image data format."""
    if keras.config.image_data_format() == "channels_first":
        return (channels, image_size, image_size)
    return (image_size, image_size, channels)


SEGMENTATION_METRICS = ("mean_iou", "mean_dice")  # metrics.json: test_mean_iou, test_mean_dice


def _metrics(data):
    if data.task == "segmentation":
        return [
            "accuracy",
            keras.metrics.MeanIoU(
                num_classes=data.num_classes, sparse_y_pred=False, name="mean_iou"
            ),
            MeanDice(num_classes=data.num_classes, sparse_y_pred=False, name="mean_dice"),
        ]
    return ["accuracy"]


@contextlib.contextmanager
def _dtype_policy(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _strategy(name):
    if name == "none":
        return contextlib.nullcontext()
    from keras_modern_cnn.distribute import distribution_scope

    return distribution_scope(name)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose checkpoint survives `kill -9` at any moment.

    Keras writes the weights file in place, so a kill during the first save leaves a
    truncated file that the next run cannot load. Here weights and metadata are written to
    temporary files and renamed over the previous checkpoint (weights first: a kill between
    the two renames replays one epoch from slightly newer weights, never loses one).
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights_tmp = f"{self._weights_path[:-len('.weights.h5')]}.tmp.weights.h5"
        self.model.save_weights(weights_tmp, overwrite=True)
        if self._current_epoch >= 2:
            rundir.block_point("epoch-checkpoint")
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        os.replace(weights_tmp, self._weights_path)
        rundir.write_text(self._training_metadata_path, json.dumps(metadata))


class EpochHistory(keras.callbacks.Callback):
    """`history.csv` holding every finished epoch exactly once, across resumed runs.

    The first epoch of a run tells where training (re)starts: rows of that epoch and later
    (left by an interrupted run) are dropped, earlier rows kept.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.rows = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is None:
            self.rows = [row for row in read_history(self.path) if row["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        write_history(self.rows, self.path)


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


def read_history(path):
    """Rows of a `history.csv` as dicts (epoch as int, metrics as float); [] if absent."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return [
            {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def write_history(rows, path):
    """Write rows atomically (a kill mid-write leaves the previous complete file)."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    rundir.write_text(path, text.getvalue())


def plot_curves(histories, path, title=None):
    """Loss and accuracy per epoch, train (solid) and test (dashed), one colour per model.

    Two panels (a loss of 3 would squash accuracies on a shared axis), whole-number epoch
    ticks, 200 dpi. `histories`: model name -> `read_history` rows; `title`: the settings.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    figure, axes = pyplot.subplots(1, 2, figsize=(10, 3.6))
    panels = [("loss", "loss (cross-entropy)"), ("accuracy", "accuracy")]
    for axis, (key, label) in zip(axes, panels):
        for index, (name, rows) in enumerate(histories.items()):
            epochs = [row["epoch"] + 1 for row in rows]
            prefix = "" if len(histories) == 1 else f"{name} "
            for split, style in (("", "-"), ("val_", "--")):
                axis.plot(epochs, [row.get(split + key) for row in rows], style, marker="o",
                          markersize=3, color=f"C{index}",
                          label=prefix + ("test" if split else "train"))
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(0, 1.02)
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))  # off the data
    figure.suptitle(title or ", ".join(histories))
    figure.tight_layout()
    rundir.atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=200))
    pyplot.close(figure)
    return path


def plot_comparison(all_metrics, path, title):
    """Bar charts of test accuracy and training examples/sec, one bar per model (`kmc compare`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = [metrics["model"] for metrics in all_metrics]
    figure, axes = pyplot.subplots(1, 2, figsize=(max(6, 1.6 * len(names) + 2), 3.6))
    panels = [("test_accuracy", "test accuracy", "{:.3f}"),
              ("examples_per_second", "training examples/sec", "{:,.0f}")]
    for axis, (key, label, number) in zip(axes, panels):
        values = [metrics[key] or 0 for metrics in all_metrics]  # None: no epoch timed
        bars = axis.bar(names, values, color=[f"C{i}" for i in range(len(names))])
        axis.bar_label(bars, labels=[number.format(value) for value in values], fontsize="small")
        axis.set_ylabel(label)
        axis.tick_params(axis="x", labelrotation=30 if len(names) > 3 else 0)
        axis.margins(y=0.15)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 1.1)
    figure.suptitle(title)
    figure.tight_layout()
    rundir.atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=200))
    pyplot.close(figure)
    return path


def run_title(config, data_name):
    """The settings a curve depends on, for a plot's title."""
    width = "" if config.width_ratio is None else f", width x{config.width_ratio:g}"
    encoder = "" if config.encoder is None else f" ({config.encoder} encoder)"
    return (f"{config.model}{encoder} on {data_name} ({config.image_size}px{width}): {config.optimizer} "
            f"lr {config.learning_rate:g}, batch {config.batch_size}")
