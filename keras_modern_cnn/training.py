"""Training a registered model: the engine behind `kmc train`, `kmc compare` and `make demo`.

One run = load data, build the model for the data's channels/classes at the chosen input
size, fit with validation on the test split every epoch, then write to the output directory:
`history.csv`, `curves.png`, TensorBoard logs (`logs/`), `metrics.json` and `model.keras`.
Every epoch is checkpointed (`backup/`, Keras BackupAndRestore): rerunning the same command
after an interruption (even `kill -9`) resumes from the last finished epoch.

Reference recipe: Dive into Deep Learning, "Modern CNNs" (plain SGD, Fashion-MNIST).
"""

import contextlib
import csv
import importlib.util
import json
import os
import time

import keras

from keras_modern_cnn.data import load_data, make_pipeline
from keras_modern_cnn.recipes import get_recipe
from keras_modern_cnn.registry import get_spec
from keras_modern_cnn.validation import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    check_width_ratio,
)

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
JIT_COMPILE = ("auto", "on", "off")
STRATEGIES = ("none", "mirrored", "multi-worker", "data-parallel")
# Defaults where neither the user nor a recipe says otherwise: the d2l BN-LeNet settings
# (one epoch on the embedded shapes reaches ~0.9 test accuracy).
DEFAULTS = dict(epochs=10, batch_size=128, optimizer="sgd", image_size=None, width_ratio=None)
DEFAULT_LEARNING_RATES = {"sgd": 1.0, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
HISTORY_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE = (
    "history.csv", "curves.png", "metrics.json", "model.keras",
)


def make_optimizer(name, learning_rate):
    check_choice("optimizer", name, OPTIMIZERS)
    check_number("learning_rate", learning_rate, low=0.0, low_open=True)
    return {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }[name](learning_rate=learning_rate)


def resolve_settings(model_name, recipe=None, **given):
    """Explicit settings (not None) win over the recipe's, which win over `DEFAULTS`."""
    settings = dict(DEFAULTS, dataset=None, learning_rate=None)
    if recipe is not None:
        settings.update(get_recipe(recipe, model_name))
    settings.update({key: value for key, value in given.items() if value is not None})
    if settings["learning_rate"] is None:
        settings["learning_rate"] = DEFAULT_LEARNING_RATES[
            check_choice("optimizer", settings["optimizer"], OPTIMIZERS)
        ]
    return settings


def check_output_dir(output_dir):
    """Create `output_dir` and prove it is writable, or say so in one line."""
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise ValueError(
            f"`output_dir` must be a writable directory ({error.strerror}). "
            f"Received: output_dir={output_dir!r}"
        ) from None
    return output_dir


def train(
    model_name,
    *,
    dataset=None,
    recipe=None,
    epochs=None,
    batch_size=None,
    optimizer=None,
    learning_rate=None,
    image_size=None,
    width_ratio=None,
    data_dir=None,
    download=True,
    train_examples=None,
    test_examples=None,
    normalization="scale",
    augment=False,
    output_dir="runs/demo",
    seed=0,
    mixed_precision=False,
    jit_compile="auto",
    strategy="none",
    verbose="auto",
):
    """Train `model_name`, evaluate it on the test split, save it; return the metrics dict.

    Args:
        model_name: a registered model (`kmc list`).
        dataset: see `keras_modern_cnn.data.load_data` (default: the embedded shapes, or
            Fashion-MNIST under `recipe="d2l"`).
        recipe: "d2l" takes input size, learning rate, batch size, epochs and optimizer from
            the seeds; explicit arguments still win.
        epochs, batch_size, optimizer, learning_rate, image_size, width_ratio: training
            and model settings (None: recipe or default; image size: the model's own).
        data_dir, download, train_examples, test_examples: passed to `load_data`.
        normalization, augment: passed to `make_pipeline`.
        output_dir: where history, curves, logs, metrics, model and checkpoints go.
        seed: seeds Keras, NumPy, Python and the pipeline.
        mixed_precision: train under the "mixed_float16" dtype policy.
        jit_compile: "auto", "on" or "off" (XLA compilation of the train step).
        strategy: "none" or a distribution strategy (`keras_modern_cnn.distribute`).
        verbose: `model.fit` verbosity ("auto": progress bar).
    """
    spec = get_spec(model_name)
    settings = resolve_settings(
        spec.name, recipe, dataset=dataset, epochs=epochs, batch_size=batch_size,
        optimizer=optimizer, learning_rate=learning_rate, image_size=image_size,
        width_ratio=width_ratio,
    )
    epochs = check_positive_int("epochs", settings["epochs"])
    batch_size = check_positive_int("batch_size", settings["batch_size"])
    optimizer = check_choice("optimizer", settings["optimizer"], OPTIMIZERS)
    check_number("learning_rate", settings["learning_rate"], low=0.0, low_open=True)
    if settings["width_ratio"] is not None:
        check_width_ratio(settings["width_ratio"])
    check_bool("mixed_precision", mixed_precision)
    check_choice("jit_compile", jit_compile, JIT_COMPILE)
    check_choice("strategy", strategy, STRATEGIES)
    output_dir = check_output_dir(output_dir)
    # The whole run, data included, under the strategy: MultiWorkerMirroredStrategy must exist
    # before the first TensorFlow op, and JAX reads the distribution when fit runs.
    with _strategy(strategy):
        keras.utils.set_random_seed(seed)

        data = load_data(
            settings["dataset"], task=spec.task, data_dir=data_dir, download=download,
            image_size=settings["image_size"], train_examples=train_examples,
            test_examples=test_examples, seed=seed,
        )
        image_size = check_positive_int(
            "image_size", settings["image_size"] or _spatial_size(spec.default_input_shape)
        )
        pipelines = {
            split: make_pipeline(
                getattr(data, split), image_size=image_size, batch_size=batch_size,
                training=split == "train", task=data.task, normalization=normalization,
                augment=augment and split == "train", seed=seed,
                shuffle_buffer=min(data.num_train, 50000),
            )
            for split in ("train", "test")
        }

        with _dtype_policy("mixed_float16" if mixed_precision else None):
            model = build_model(spec, data, image_size, settings["width_ratio"])
            model.compile(
                optimizer=make_optimizer(optimizer, settings["learning_rate"]),
                loss="sparse_categorical_crossentropy",
                metrics=_metrics(data),
                jit_compile={"auto": "auto", "on": True, "off": False}[jit_compile],
            )
        timer = TrainingTimer()
        callbacks = [
            # Before BackupAndRestore: an epoch is recorded before it counts as finished, so an
            # interruption in between replays (and re-records) it instead of losing its row.
            EpochHistory(os.path.join(output_dir, HISTORY_FILE)),
            AtomicBackupAndRestore(os.path.join(output_dir, "backup")),
            timer,
        ]
        if importlib.util.find_spec("tensorboard") is not None:  # tf.summary needs it at run time
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
        start = time.perf_counter()
        model.fit(
            pipelines["train"], validation_data=pipelines["test"], epochs=epochs,
            callbacks=callbacks, verbose=verbose, shuffle=False,  # the pipeline shuffles
        )
        wall_time = time.perf_counter() - start
        results = model.evaluate(pipelines["test"], verbose=0, return_dict=True)

        model_path = os.path.join(output_dir, MODEL_FILE)
        model.save(model_path)
    history = read_history(os.path.join(output_dir, HISTORY_FILE))
    curves_path = os.path.join(output_dir, CURVES_FILE)
    plot_curves({spec.name: history}, curves_path)
    metrics = {
        "model": spec.name,
        "dataset": data.name,
        "task": data.task,
        "class_names": list(data.class_names),
        "image_size": image_size,
        "channels": data.channels,
        "normalization": normalization,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "learning_rate": settings["learning_rate"],
        "width_ratio": settings["width_ratio"],
        "recipe": recipe,
        "test_accuracy": float(results["accuracy"]),
        "test_loss": float(results["loss"]),
        **({"test_mean_iou": float(results["mean_iou"])} if "mean_iou" in results else {}),
        "examples_per_second": timer.examples_per_second(data.num_train),
        "parameters": model.count_params(),
        "wall_time_seconds": wall_time,
        "model_path": model_path,
        "curves_path": curves_path,
        "history_path": os.path.join(output_dir, HISTORY_FILE),
    }
    with open(os.path.join(output_dir, METRICS_FILE), "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics


def build_model(spec, data, image_size, width_ratio=None):
    """The registered model sized for the data: its channels, classes and `image_size`."""
    shape = (image_size, image_size, data.channels)
    if keras.config.image_data_format() == "channels_first":
        shape = (data.channels, image_size, image_size)
    kwargs = dict(input_shape=shape, classes=data.num_classes)
    if width_ratio is not None:
        kwargs["width_ratio"] = width_ratio
    return spec.builder(**kwargs)


def _spatial_size(shape):
    return shape[1] if keras.config.image_data_format() == "channels_first" else shape[0]


def _metrics(data):
    if data.task == "segmentation":
        return [
            "accuracy",
            keras.metrics.MeanIoU(
                num_classes=data.num_classes, sparse_y_pred=False, name="mean_iou"
            ),
        ]
    return ["accuracy"]


@contextlib.contextmanager
def _dtype_policy(policy):
    previous = keras.config.dtype_policy()
    if policy is not None:
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
        metadata_tmp = f"{self._training_metadata_path}.tmp"
        with open(metadata_tmp, "w") as handle:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, handle)
        os.replace(weights_tmp, self._weights_path)
        os.replace(metadata_tmp, self._training_metadata_path)


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
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def plot_curves(histories, path):
    """The seeds' training plot: train loss, train accuracy and test accuracy per epoch.

    One model: the three curves on one axis, as d2l draws them. Several models (`kmc
    compare`): one panel per quantity, one line per model.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    quantities = [("loss", "train loss"), ("accuracy", "train acc"), ("val_accuracy", "test acc")]
    if len(histories) == 1:
        (name, rows), = histories.items()
        figure, axis = pyplot.subplots(figsize=(4.5, 3.2))
        for key, label in quantities:
            axis.plot([r["epoch"] + 1 for r in rows], [r.get(key) for r in rows], label=label)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.legend()
        axis.grid(alpha=0.3)
    else:
        figure, axes = pyplot.subplots(1, 3, figsize=(13, 3.6))
        for axis, (key, label) in zip(axes, quantities):
            for name, rows in histories.items():
                axis.plot([r["epoch"] + 1 for r in rows], [r.get(key) for r in rows], label=name)
            axis.set_title(label)
            axis.set_xlabel("epoch")
            axis.grid(alpha=0.3)
        axes[-1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
