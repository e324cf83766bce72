"""Training a registered model: the stages behind `kmc train`, `kmc compare`, `kmc tune`.

`train(config)` runs the stages on one `RunConfig` (`keras_modern_cnn.config`):
plan the run directory (new, resume or extend: `keras_modern_cnn.rundir`), `prepare_data`
(load and check), `build_and_compile`, `fit` (validation on the test split every epoch,
checkpoint every epoch, stop on a non-finite loss), then `report` (`model.keras`,
`metrics.json`, `history.csv`, `curves.png`). A `kill -9`, Ctrl-C or SIGTERM at any moment
loses at most the epoch in progress; rerunning the same command resumes.

Reference recipe: Dive into Deep Learning, "Modern CNNs" (plain SGD, Fashion-MNIST).
"""

import contextlib
import dataclasses
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any, Union

import keras

from keras_modern_cnn import losses, rundir
from keras_modern_cnn.callbacks import (
    AtomicBackupAndRestore,
    BlockMidEpoch,
    CurrentEpoch,
    EpochHistory,
    PreciseBatchNorm,
    StopOnNonFiniteLoss,
    TrainingTimer,
    check_finite,
)
from keras_modern_cnn.config import RunConfig
from keras_modern_cnn.data import load_data, make_pipeline
from keras_modern_cnn.devices import device_settings
from keras_modern_cnn.files import BLOCK_AT_VARIABLE
from keras_modern_cnn.metrics import MeanDice
from keras_modern_cnn.plots import plot_curves, run_title
from keras_modern_cnn.registry import get_spec
from keras_modern_cnn.saving import load_model, save_model
from keras_modern_cnn.signals import Interrupted, raise_if_interrupted

# The Keras optimizer class of each name `RunConfig.optimizer` accepts (`choices.OPTIMIZERS`).
OPTIMIZER_CLASSES = {
    "sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
}


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer by name (one of `choices.OPTIMIZERS`, checked by `RunConfig`)."""
    return OPTIMIZER_CLASSES[name](learning_rate=learning_rate)


def train(
    config: RunConfig, *, overwrite: bool = False, resume: bool = False,
    verbose: Union[str, int] = "auto", log: Callable[[str], None] = print,
) -> dict[str, Any]:
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
    """`train` in `config.output_dir`: plan, then the stages under the strategy.

    The run directory is locked from planning to the end (`rundir.plan_run`). Ctrl-C or
    SIGTERM (`keras_modern_cnn.signals`) stops the run where a rerun resumes it.
    """
    plan = None
    try:
        # The whole run, data included, under the strategy: MultiWorkerMirroredStrategy must
        # exist before the first TensorFlow op, and JAX reads the distribution when fit runs.
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
            for notice in data.notices:
                log(notice)
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
            plan.begin(config, data_info(data, config), device.to_dict(), names=_run_files())
            if plan.message(config.epochs):
                log(plan.message(config.epochs))
            precise = precise_batch_norm(config, pipelines)
            timer, wall_time = fit(config, model, pipelines, verbose, precise)
            results = model.evaluate(pipelines["test"], verbose=0, return_dict=True)
            check_finite(results, "the test evaluation", config.learning_rate)
            moving_average_results = None
            if precise is not None and precise.estimations:
                with precise.moving_averages():  # the model as the EMA statistics leave it
                    moving_average_results = model.evaluate(
                        pipelines["test"], verbose=0, return_dict=True)
            save_model(model, os.path.join(config.output_dir, rundir.MODEL_FILE))
            raise_if_interrupted()
        return report(config, data, model, results, timer, wall_time, plan, precise,
                      moving_average_results)
    except Interrupted as interruption:
        if plan is None or not plan.begun:
            raise interruption.at("before training started; nothing was written") from None
        raise interruption.at(
            f"in {config.output_dir}; rerun the same command to resume") from None
    finally:
        if plan is not None:
            plan.release()


def _run_files():
    """The names a run writes in its directory (TensorBoard's logs/ when it is installed)."""
    if importlib.util.find_spec("tensorboard") is None:
        return tuple(name for name in rundir.RUN_ARTEFACTS if name != rundir.LOGS_DIR)
    return rundir.RUN_ARTEFACTS


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
    """What `run.json` records of the data, for `kmc evaluate` and `kmc predict`: its classes
    (by name), channels, the model's input side and how pixels were scaled (`pixel_scale`: the
    divisor that brought the source's values to [0, 1])."""
    return {
        "name": data.name, "task": data.task, "channels": data.channels,
        "num_classes": data.num_classes, "class_names": list(data.class_names),
        "image_size": config.image_size, "normalization": config.normalization,
        "pixel_scale": data.pixel_scale,
    }


def make_pipelines(config, data):
    """The train and test `tf.data` pipelines of a run (this process's share of each batch)."""
    processes, process_index = _processes(config.strategy)
    return {
        split: make_pipeline(
            getattr(data, split), image_size=config.image_size, batch_size=config.batch_size,
            training=split == "train", task=data.task, normalization=config.normalization,
            pixel_scale=data.pixel_scale,
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
            get_spec(config.model), data, config.image_size, config.width_ratio, config.encoder,
            weights=config.weights, freeze_batch_norm=config.freeze_batch_norm,
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


def precise_batch_norm(config, pipelines):
    """The run's `PreciseBatchNorm` (before each validation, over `config.precise_bn` training
    batches), or None when the run has it off."""
    if not config.precise_bn:
        return None
    return PreciseBatchNorm(pipelines["train"], config.precise_bn)


def fit(config, model, pipelines, verbose="auto", precise=None):
    """Fit to `config.epochs`, resuming from the checkpoint; returns (timer, wall seconds).

    `precise` (a `PreciseBatchNorm`) re-estimates the BatchNorm statistics before each
    validation: after the timer stops (its seconds are not training time), before the epoch
    is recorded and checkpointed, so both carry the statistics the model is validated with."""
    output_dir = config.output_dir
    timer = TrainingTimer()
    callbacks = [
        # First: a non-finite epoch stops the run before it is recorded or checkpointed.
        StopOnNonFiniteLoss(config.learning_rate),
        # Before the checkpoint: an epoch is recorded before it counts as finished, so an
        # interruption in between replays (and re-records) it instead of losing its row.
        EpochHistory(os.path.join(output_dir, rundir.HISTORY_FILE)),
        AtomicBackupAndRestore(os.path.join(output_dir, rundir.BACKUP_DIR), delete_checkpoint=False),
        timer,
    ]
    if precise is not None:
        callbacks.append(precise)
    if BLOCK_AT_VARIABLE in os.environ:
        callbacks.append(BlockMidEpoch())
    if importlib.util.find_spec("tensorboard") is not None:  # tf.summary needs it at run time
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, rundir.LOGS_DIR)))
    progress = CurrentEpoch()
    callbacks.append(progress)
    start = time.perf_counter()
    try:
        model.fit(
            pipelines["train"], validation_data=pipelines["test"], epochs=config.epochs,
            initial_epoch=rundir.finished_epochs(output_dir), callbacks=callbacks,
            verbose=verbose, shuffle=False,  # the pipeline shuffles
        )
        raise_if_interrupted()
    except Interrupted as interruption:
        raise interruption.at(
            f"at epoch {progress.epoch or 1} of {config.epochs} ({rundir.finished_epochs(output_dir)} "
            f"finished in {output_dir}); rerun the same command to resume"
        ) from None
    return timer, time.perf_counter() - start


def report(config, data, model, results, timer, wall_time, plan, precise=None,
           moving_average_results=None):
    """Write `curves.png` and `metrics.json` (the run is then finished), drop the checkpoint.

    With precise BatchNorm statistics (`precise`), `test_*` are the saved model's (precise)
    and `ema_test_*` the same model's with the moving averages the last estimation replaced
    (None when this process trained no epoch: a run resumed only to save)."""
    output_dir = config.output_dir
    history_path = os.path.join(output_dir, rundir.HISTORY_FILE)
    curves_path = os.path.join(output_dir, rundir.CURVES_FILE)
    plot_curves({config.model: rundir.read_history(history_path)}, curves_path,
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
        "weights": config.weights,
        "freeze_batch_norm": config.freeze_batch_norm,
        "recipe": config.recipe,
        "test_accuracy": float(results["accuracy"]),
        "test_loss": float(results["loss"]),
        **{f"test_{name}": float(results[name])
           for name in SEGMENTATION_METRICS if name in results},
        **_precise_metrics(precise, results, moving_average_results),
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


def _precise_metrics(precise, results, moving_average_results):
    """metrics.json's `precise_bn` (the last estimation's batches and samples, every
    estimation's seconds; None when off or when no BatchNorm layer learns statistics) and
    `ema_test_*` (None when this process trained no epoch: a run resumed only to save)."""
    done = [] if precise is None else precise.estimations
    if precise is None or (done and not done[-1]["layers"]):
        return {"precise_bn": None}
    metrics = {"precise_bn": {
        "batches": done[-1]["batches"] if done else None,
        "samples": done[-1]["samples"] if done else None,
        "seconds": sum(record["seconds"] for record in done), "estimations": len(done),
    }}
    for name in ("accuracy", "loss", *SEGMENTATION_METRICS):
        if name in results:
            metrics[f"ema_test_{name}"] = (
                None if moving_average_results is None else float(moving_average_results[name])
            )
    return metrics


def build_model(spec, data, image_size, width_ratio=None, encoder=None, *, weights=None,
                freeze_batch_norm=False):
    """The registered model sized for the data: its channels, classes and `image_size`; with
    `weights`, started from them for fine-tuning (`keras_modern_cnn.weights.build_pretrained`:
    the head replaced when the classes differ, BatchNorm frozen with `freeze_batch_norm`)."""
    kwargs = dict(input_shape=input_shape(image_size, data.channels))
    if width_ratio is not None:
        kwargs["width_ratio"] = width_ratio
    if encoder is not None:
        kwargs["encoder"] = encoder
    if weights is not None:
        from keras_modern_cnn.weights.loading import build_pretrained

        return build_pretrained(spec.name, weights, classes=data.num_classes,
                                freeze_batch_norm=freeze_batch_norm, **kwargs)
    return spec.builder(classes=data.num_classes, **kwargs)


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


