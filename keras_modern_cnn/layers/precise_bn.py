"""Precise BatchNorm statistics: population mean and variance over N batches, compiled.

During training a BatchNorm layer's moving statistics are an exponential moving average (EMA)
of batch statistics taken while the weights move: after a short, high-learning-rate run they
describe weights of several hundred steps ago, and the accuracy measured with them is not the
model's. Precise BN (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021, arXiv:2105.07576,
Sec. 3; fvcore's `precise_bn.update_bn_stats`, pycls) re-estimates them for the weights as they
are, from N training batches, with equal weight per example instead of an EMA.

What is computed, per BatchNorm layer that learns statistics (`statistics_layers`): the model
runs forward on each batch with every such layer normalising by its batch statistics, as in
training, and every other layer in inference (Dropout off, frozen BatchNorm layers on their
fixed statistics); the layer's per-channel batch mean `mu_b` and biased variance `var_b` are
taken in float32 (float64 for float64 inputs) whatever the dtype policy, then pooled in float64:

    mean     = sum_b n_b * mu_b / n
    variance = sum_b n_b * (var_b + (mu_b - mean)**2) / n          (n = sum_b n_b)

the mean and biased variance of every value the layer saw (law of total variance, merged batch
by batch with Chan et al.'s update, so no E[x^2] - E[x]^2 cancellation). Equal batches: the mean
of the batch means, and the mean of the batch variances plus the variance of the batch means:
fvcore's `_PopulationVarianceEstimator` (the paper's appendix), not its average of batch
variances, which leaves out the spread of the batch means. `n_b` is the batch's number of
examples: batches must share one spatial size (masks, where a layer gets one, are honoured
within a batch; sample weights are not consulted).

The forward passes are compiled as the backend compiles `predict`: one `jax.jit` of
`model.stateless_call` (weights passed in, not baked in, so it compiles once per input shape),
one `tf.function` (XLA when the model was compiled with it), PyTorch under `torch.no_grad`.
Data-parallel: under `keras.distribution` each batch is sharded as `fit` shards it and the
jit-compiled moments are those of the global batch; under a `tf.distribute` strategy each
replica's moments are gathered and pooled on the host (exact, whatever the split).
"""

import dataclasses
import itertools
import threading
from typing import Any, Optional

import keras
import numpy as np

from keras_modern_cnn import _compat
from keras_modern_cnn.layers.batch_norm import BatchNorm, batch_moments
from keras_modern_cnn.validation import check_positive_int

_RECORDS = threading.local()  # the (mean, variance) of the trace running in this thread


def statistics_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The BatchNorm layers of `model` whose statistics training updates, in model order.

    `keras_modern_cnn.layers.BatchNorm` neither frozen nor `trainable=False`, and
    `keras.layers.BatchNormalization` with `trainable=True`; frozen layers (`frozen=True`,
    `freeze_batch_norm`, `trainable=False`, a frozen parent model) are left out and untouched.
    """
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"`model` must be a Keras model or layer. Received: model={model!r}")
    return [
        layer for layer in _compat.all_layers(model, include_self=True)
        if (isinstance(layer, BatchNorm) and layer.trainable and not layer.frozen)
        or (isinstance(layer, keras.layers.BatchNormalization) and layer.trainable)
    ]


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Pooled statistics of one estimation.

    Attributes:
        layers: the layers estimated, in model order.
        means, variances: float64 arrays per layer (None for a layer the model never called).
        samples: examples seen (the global batch sizes summed).
        batches: batches seen.
    """

    layers: tuple
    means: tuple
    variances: tuple
    samples: int
    batches: int

    def assign(self):
        """Make each layer's moving statistics these (and, with renorm, its moving stddev)."""
        for layer, mean, variance in zip(self.layers, self.means, self.variances):
            if mean is not None:
                assign_statistics(layer, mean, variance)


def moving_statistics(layers):
    """`[(moving_mean, moving_variance)]` of `layers` as numpy arrays (a copy to put back)."""
    return [
        (keras.ops.convert_to_numpy(layer.moving_mean), keras.ops.convert_to_numpy(layer.moving_variance))
        for layer in layers
    ]


def assign_statistics(layer, mean, variance):
    """Set `layer`'s moving mean and variance (and its moving stddev under renorm)."""
    layer.moving_mean.assign(np.asarray(mean).astype(layer.moving_mean.dtype))
    layer.moving_variance.assign(np.asarray(variance).astype(layer.moving_variance.dtype))
    if getattr(layer, "renorm", False):  # inference reads moving_variance; training the stddev
        layer.moving_stddev.assign(
            np.sqrt(np.asarray(variance, "float64") + layer.epsilon).astype(layer.moving_stddev.dtype)
        )


class StatisticsEstimator:
    """Estimates the population statistics of `model`'s BatchNorm layers, compiled once.

    Keep one per model (`keras_modern_cnn.callbacks.PreciseBatchNorm` does): the compiled
    forward pass is reused while the set of learning layers and variables stays the same.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self._compiled: dict = {}

    def estimate(self, data: Any, steps: Optional[int] = None) -> Statistics:
        """Pooled statistics over the first `steps` batches of `data` (all when None or when
        `data` has fewer). `data` yields batches: the model's inputs, or tuples `(x, y[, w])`."""
        model = self.model
        layers = statistics_layers(model)
        # Running (samples, mean, variance) per layer, float64 (Chan et al.'s pairwise update).
        pooled: list = [[0, None, None] for _ in layers]
        samples = batches = 0
        if not layers:
            return Statistics((), (), (), 0, 0)
        if steps is not None:
            steps = check_positive_int("steps", steps)
        batches_of = self._step(layers)(data, steps)
        try:
            for records, size in batches_of:
                samples += size
                batches += 1
                for index, calls in records.items():
                    for mean, variance in calls:
                        _merge(pooled[int(index)], _host(mean), _host(variance), size)
        finally:
            batches_of.close()  # the layers leave their collecting mode, even on an error
        return Statistics(
            tuple(layers), tuple(p[1] for p in pooled), tuple(p[2] for p in pooled), samples, batches
        )

    def _step(self, layers):
        """`run(data, steps)` yielding `(records, batch size)` per batch, compiled for `layers`."""
        model = self.model
        backend = keras.config.backend()
        key = (tuple(id(layer) for layer in layers),
               tuple(id(v) for v in model.trainable_variables),
               tuple(id(v) for v in model.non_trainable_variables))
        if key not in self._compiled:
            self._compiled = {key: _COMPILERS[backend](model, layers)}
        return self._compiled[key]


def _merge(state, mean, variance, size):
    """Fold one batch's `(mean, variance)` over `size` examples into `state` [n, mean, var]."""
    count, pooled_mean, pooled_variance = state
    if count == 0:
        state[:] = [size, mean, variance]
        return
    total = count + size
    delta = mean - pooled_mean
    fraction = size / total
    state[:] = [
        total,
        pooled_mean + delta * fraction,
        pooled_variance * (1 - fraction) + variance * fraction + delta**2 * fraction * (1 - fraction),
    ]


def _host(value):
    """A float64 numpy array of a backend tensor (of a replicated global JAX array too)."""
    if hasattr(value, "is_fully_addressable") and not value.is_fully_addressable:
        value = value.addressable_data(0)  # the statistics are replicated on every device
    return np.asarray(keras.ops.convert_to_numpy(value), dtype="float64")


def _record(index, mean, variance):
    _RECORDS.calls.setdefault(str(index), []).append((mean, variance))


class _Collecting:
    """Within the block, `layers` normalise with batch statistics and report them to
    `_record` instead of updating their moving statistics; everything else is unchanged."""

    def __init__(self, layers):
        self.layers = layers
        self._restores = []

    def __enter__(self):
        for index, layer in enumerate(self.layers):
            sink = (lambda mean, variance, index=index: _record(index, mean, variance))
            if isinstance(layer, BatchNorm):
                layer._statistics_sink = sink
                self._restores.append(lambda layer=layer: setattr(layer, "_statistics_sink", None))
            else:
                scope = _compat.replaced_call(layer, _keras_collecting_call(layer, sink))
                scope.__enter__()
                self._restores.append(lambda scope=scope: scope.__exit__(None, None, None))
        return self

    def __exit__(self, *exc):
        for restore in reversed(self._restores):
            restore()
        self._restores = []


def _keras_collecting_call(layer, sink):
    """`keras.layers.BatchNormalization.call` normalising with batch statistics (its renorm
    correction aside) and reporting them to `sink` instead of updating the moving ones."""

    def call(inputs, training=None, mask=None):
        dtype = "float64" if keras.backend.standardize_dtype(inputs.dtype) == "float64" else "float32"
        x = keras.ops.cast(inputs, dtype)
        axis = layer.axis % len(x.shape)
        axes = tuple(i for i in range(len(x.shape)) if i != axis)
        mean, variance = batch_moments(x, axes, axis, mask)
        sink(mean, variance)
        outputs = keras.ops.batch_normalization(
            x, mean, variance, axis=axis,
            offset=None if layer.beta is None else keras.ops.cast(layer.beta, dtype),
            scale=None if layer.gamma is None else keras.ops.cast(layer.gamma, dtype),
            epsilon=layer.epsilon,
        )
        return keras.ops.cast(outputs, layer.compute_dtype)

    return call


def _begin_trace():
    _RECORDS.calls = {}


def _end_trace():
    calls, _RECORDS.calls = _RECORDS.calls, None
    return calls


def _inputs(batch):
    """The model inputs of a batch: `x` of `(x, y[, w])`, else the batch itself."""
    if isinstance(batch, (tuple, list)):
        return keras.utils.unpack_x_y_sample_weight(batch)[0]
    return batch


def _batch_size(inputs):
    return int(keras.tree.flatten(inputs)[0].shape[0])


def _to_numpy(batch):
    """Host arrays of a batch from tf.data or PyTorch; JAX arrays stay where they are."""
    import jax

    return keras.tree.map_structure(
        lambda t: t if t is None or isinstance(t, jax.Array) else np.asarray(t), batch
    )


def _check_data(data):
    if isinstance(data, np.ndarray) or keras.ops.is_tensor(data):
        raise ValueError(
            "`data` must yield batches, not be one array (iterating an array yields single "
            "samples); pass e.g. `np.array_split(x, n)` or a batched tf.data.Dataset. "
            f"Received: data of shape {tuple(data.shape)}"
        )


def _compile_jax(model, layers):
    import jax

    def forward(trainable, non_trainable, inputs):
        _begin_trace()
        model.stateless_call(trainable, non_trainable, inputs, training=False)
        return _end_trace()

    compiled = jax.jit(forward)

    def run(data, steps):
        _check_data(data)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        with _Collecting(layers):  # active while `compiled` traces (its first call per shape)
            for batch in itertools.islice(data, steps):
                inputs = _compat.distribute_batch(_to_numpy(_inputs(batch)))
                size = _batch_size(inputs)
                if size:
                    yield compiled(trainable, non_trainable, inputs), size

    return run


def _compile_tensorflow(model, layers):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    distributed = False
    if strategy is not None:
        with strategy.scope():
            distributed = tf.distribute.has_strategy()  # not the default strategy

    def forward(inputs):
        _begin_trace()  # per thread: tf.distribute traces each replica in its own
        model(inputs, training=False)
        return _end_trace(), tf.shape(keras.tree.flatten(inputs)[0])[0]

    if not distributed:
        jit_compile = getattr(model, "jit_compile", False) is True
        compiled = tf.function(forward, jit_compile=jit_compile, reduce_retracing=True)

        def run(data, steps):
            _check_data(data)
            with _Collecting(layers):
                for batch in itertools.islice(data, steps):
                    inputs = _inputs(batch)
                    if _batch_size(inputs):
                        calls, size = compiled(inputs)
                        yield calls, int(size)

        return run

    def gather(value):
        return strategy.gather(tf.expand_dims(value, 0), axis=0)

    @tf.function
    def replicated(inputs):
        calls, size = strategy.run(forward, args=(inputs,))
        return tf.nest.map_structure(gather, calls), gather(size)

    def run(data, steps):
        if not isinstance(data, tf.data.Dataset):
            raise ValueError(
                "Under a tf.distribute strategy the statistics are estimated from a "
                f"tf.data.Dataset. Received: data={type(data).__name__}"
            )
        with _Collecting(layers):
            for batch in itertools.islice(strategy.experimental_distribute_dataset(data), steps):
                calls, sizes = replicated(_inputs(batch))
                # Each replica's moments over its own share (of every worker): pooled as
                # batches of their own, which gives the global batch's exactly.
                for replica, size in enumerate(np.asarray(sizes).reshape(-1)):
                    if size:
                        yield {index: [(mean[replica], variance[replica]) for mean, variance in values]
                               for index, values in calls.items()}, int(size)

    return run


def _compile_torch(model, layers):
    import torch

    def run(data, steps):
        _check_data(data)
        with _Collecting(layers), torch.no_grad():
            for batch in itertools.islice(data, steps):
                inputs = keras.tree.map_structure(
                    lambda t: t if isinstance(t, torch.Tensor) else np.asarray(t), _inputs(batch)
                )
                if _batch_size(inputs):
                    _begin_trace()
                    model(inputs, training=False)
                    yield _end_trace(), _batch_size(inputs)

    return run


_COMPILERS = {"jax": _compile_jax, "tensorflow": _compile_tensorflow, "torch": _compile_torch}


def estimate_statistics(model: keras.Model, data: Any, steps: Optional[int] = None) -> Statistics:
    """Precise statistics of `model`'s learning BatchNorm layers over `steps` batches of `data`
    (all of them when None), without assigning them (`Statistics.assign` does)."""
    return StatisticsEstimator(model).estimate(data, steps)
