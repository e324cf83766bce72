"""Fine-tuning tools for models built with `BatchNorm`: freezing and recalibration.

`freeze_batch_norm` is torchvision's `FrozenBatchNorm2d` / timm's `freeze_batch_norm_2d`;
`recalibrate_batch_norm` is torch's `swa_utils.update_bn` (Izmailov et al. 2018, "Averaging
Weights Leads to Wider Optima and Better Generalization", arXiv:1803.05407) computed as precise
BN (`keras_modern_cnn.layers.precise_bn`): the exact pooled variance in place of an average of
batch variances, compiled on every backend.
"""

from typing import Any, Optional

import keras

from keras_modern_cnn._compat import all_layers
from keras_modern_cnn.layers.batch_norm import BatchNorm
from keras_modern_cnn.layers.precise_bn import estimate_statistics, statistics_layers
from keras_modern_cnn.validation import check_bool, check_positive_int


def batch_norm_layers(model: keras.layers.Layer) -> list[BatchNorm]:
    """Every `BatchNorm` inside `model`, nested models and layers included."""
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"`model` must be a Keras model or layer. Received: model={model!r}")
    found = [layer for layer in all_layers(model, include_self=True) if isinstance(layer, BatchNorm)]
    if not found:
        raise ValueError(
            f"`model` contains no keras_modern_cnn BatchNorm layer (models built under "
            "`batch_norm_implementation('keras')` hold keras.layers.BatchNormalization; freeze "
            f"those with `trainable=False`). Received: model={model.name!r}"
        )
    return found


def freeze_batch_norm(model: keras.layers.Layer, frozen: bool = True) -> list[BatchNorm]:
    """Set `frozen` on every BatchNorm of `model`; returns those layers.

    A frozen BatchNorm normalises with its moving statistics and keeps them, `gamma` and
    `beta` fixed whatever `training` says, while the rest of the model trains; unlike
    `trainable=False` it survives `model.trainable = True` (keras #9214, #20285). Compile
    (again) after freezing, as after any change of `trainable`.
    """
    frozen = check_bool("frozen", frozen)
    layers = batch_norm_layers(model)
    for layer in layers:
        layer.frozen = frozen
    return layers


def recalibrate_batch_norm(
    model: keras.Model, dataset: Any, steps: Optional[int] = None
) -> int:
    """Re-estimate the moving statistics of every BatchNorm of `model` that learns them.

    Precise BN (`keras_modern_cnn.layers.precise_bn`, the code path of
    `keras_modern_cnn.callbacks.PreciseBatchNorm`): runs `model` forward on `steps` batches
    (the whole of `dataset` when None), compiled as `predict` is, with its weights unchanged
    and every learning BatchNorm normalising with batch statistics (as in training; other
    layers such as Dropout stay in inference), then sets each layer's moving mean and variance
    to the exact mean and (biased) variance of all the values it saw, pooled across batches in
    float64 — not a momentum average. For after weight averaging, pruning, a change of input
    resolution, or a short run whose moving averages lag its weights. Covers
    `keras_modern_cnn.layers.BatchNorm` and `keras.layers.BatchNormalization`; frozen layers
    (`frozen=True`, `trainable=False`) keep theirs. Batches weigh by their number of examples,
    so every batch must share one spatial size; masks are honoured within a batch.

    Args:
        model: a Keras model containing BatchNorm layers.
        dataset: an iterable of batches (a `tf.data.Dataset`, a generator, a list), each the
            model's inputs or a tuple whose first element is.
        steps: number of batches to use, >= 1, or None for all of them.

    Returns:
        The number of samples the statistics were computed from.
    """
    if steps is not None:
        steps = check_positive_int("steps", steps)
    if not statistics_layers(model):
        raise ValueError(
            "`model` contains no BatchNorm layer that learns statistics (all are frozen or "
            f"`trainable=False`, or there are none). Received: model={model.name!r}"
        )
    statistics = estimate_statistics(model, dataset, steps)
    if not statistics.batches or (steps is not None and statistics.batches < steps):
        raise ValueError(
            f"`dataset` ran out after {statistics.batches} batches; recalibration needs at "
            f"least one and `steps` of them. Received: steps={steps}"
        )
    statistics.assign()
    return statistics.samples
