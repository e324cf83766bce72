"""Fine-tuning tools for models built with `BatchNorm`: freezing and recalibration.

`freeze_batch_norm` is torchvision's `FrozenBatchNorm2d` / timm's `freeze_batch_norm_2d`;
`recalibrate_batch_norm` is torch's `swa_utils.update_bn` (Izmailov et al. 2018, "Averaging
Weights Leads to Wider Optima and Better Generalization", arXiv:1803.05407), with the exact
pooled variance in place of an average of batch variances.
"""

import itertools
from typing import Any, Optional

import keras
import numpy as np

from keras_modern_cnn._compat import all_layers
from keras_modern_cnn.layers.batch_norm import BatchNorm
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
    """Re-estimate the moving statistics of every non-frozen BatchNorm from `dataset`.

    Runs `model` forward on `steps` batches (the whole of `dataset` when None) with its weights
    unchanged and every BatchNorm normalising with batch statistics (as in training; other
    layers such as Dropout stay in inference), then sets each layer's moving mean and variance
    to the exact mean and (biased) variance of all the values it saw, pooled across batches in
    float64 — not a momentum average. For after weight averaging, pruning or a change of input
    resolution. Batch statistics are weighted by batch size, so every batch must share one
    spatial size; masks are not consulted. Runs eagerly (one call per batch).

    Args:
        model: a Keras model containing `keras_modern_cnn.layers.BatchNorm` layers.
        dataset: an iterable of batches (a `tf.data.Dataset`, a generator, a list), each the
            model's inputs or a tuple whose first element is.
        steps: number of batches to use, >= 1, or None for all of them.

    Returns:
        The number of samples the statistics were computed from.
    """
    layers = [layer for layer in batch_norm_layers(model) if not layer.frozen]
    if steps is not None:
        steps = check_positive_int("steps", steps)
    if isinstance(dataset, np.ndarray) or keras.ops.is_tensor(dataset):
        raise ValueError(
            "`dataset` must yield batches, not be one array (iterating an array yields single "
            "samples); pass e.g. `np.array_split(x, n)` or a batched tf.data.Dataset. "
            f"Received: dataset of shape {tuple(dataset.shape)}"
        )
    batches: list[list] = [[] for _ in layers]
    sizes = []
    try:
        for layer, records in zip(layers, batches):
            layer._statistics_sink = lambda mean, variance, records=records: records.append(
                (np.asarray(mean, "float64"), np.asarray(variance, "float64"))
            )
        for batch in itertools.islice(dataset, steps):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            inputs = keras.tree.map_structure(np.asarray, inputs)
            size = len(keras.tree.flatten(inputs)[0])
            if size:  # an empty batch has no statistics
                sizes.append(size)
                model(inputs, training=False)
    finally:
        for layer in layers:
            layer._statistics_sink = None
    if not sizes or (steps is not None and len(sizes) < steps):
        raise ValueError(
            f"`dataset` ran out after {len(sizes)} batches; recalibration needs at least one "
            f"and `steps` of them. Received: steps={steps}"
        )
    for layer, records in zip(layers, batches):
        mean, variance = _pooled_moments(records, sizes)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
        if layer.renorm:
            layer.moving_stddev.assign(
                np.sqrt(variance + layer.epsilon).astype(layer.moving_stddev.dtype)
            )
    return int(sum(sizes))


def _pooled_moments(records, sizes):
    """Mean and biased variance of the union of batches from their own moments (Chan et al.)."""
    count, mean, sum_of_squares = 0, 0.0, 0.0
    for (batch_mean, batch_variance), size in zip(records, sizes):
        total = count + size
        delta = batch_mean - mean
        mean = mean + delta * size / total
        sum_of_squares = sum_of_squares + batch_variance * size + delta**2 * count * size / total
        count = total
    return mean, sum_of_squares / count
