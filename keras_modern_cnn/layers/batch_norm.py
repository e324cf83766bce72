"""Batch normalization as formulated in Dive into Deep Learning, section 8.5.

Reference: Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift", ICML 2015 (arXiv:1502.03167); batch renormalization:
Ioffe, "Batch Renormalization: Towards Reducing Minibatch Dependence in Batch-Normalized
Models", NeurIPS 2017 (arXiv:1702.03275).
"""

import math
from collections.abc import Callable
from typing import Any, Optional

import keras
from keras import constraints, initializers, ops, regularizers

from keras_modern_cnn.layers.fast_call import TorchFastCall
from keras_modern_cnn.validation import check_bool, check_number

RENORM_CLIPPING_KEYS = ("rmax", "rmin", "dmax")
# On the torch backend, normalise with PyTorch's own kernels where they compute what the
# portable path does (`keras_modern_cnn.layers.torch_batch_norm`); False forces the portable path.
USE_TORCH_KERNELS = True


def _check_renorm_clipping(renorm_clipping, renorm):
    """`renorm_clipping` as Keras reads it: a dict of optional "rmax", "rmin", "dmax" floats."""
    if renorm_clipping is None:
        return {} if renorm else None
    received = f"Received: renorm_clipping={renorm_clipping!r}"
    if not renorm:
        raise ValueError(f"`renorm_clipping` applies only with `renorm=True`. {received}")
    if not isinstance(renorm_clipping, dict):
        raise ValueError(f"`renorm_clipping` must be a dict. {received}")
    invalid = sorted(set(renorm_clipping) - set(RENORM_CLIPPING_KEYS), key=str)
    if invalid:
        raise ValueError(
            f"Received invalid keys for `renorm_clipping`: {invalid}; supported keys are "
            f"{', '.join(repr(k) for k in RENORM_CLIPPING_KEYS)}. {received}"
        )
    clipping = {
        key: float(check_number(f"renorm_clipping['{key}']", value))
        for key, value in renorm_clipping.items()
    }
    if clipping.get("rmax", math.inf) < clipping.get("rmin", -math.inf):
        raise ValueError(f"rmax should be greater than rmin in `renorm_clipping`. {received}")
    if clipping.get("dmax", 0.0) < 0:
        raise ValueError(f"dmax should be non-negative in `renorm_clipping`. {received}")
    return clipping


def _statistics_dtype(dtype):
    """float64 inputs keep float64 statistics (as Keras); every other dtype uses float32."""
    return "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"


def _as(value, dtype):
    return value if keras.backend.standardize_dtype(value.dtype) == dtype else ops.cast(value, dtype)


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class BatchNorm(TorchFastCall, keras.layers.Layer):
    """Per-channel batch normalization: `BN(x) = gamma * (x - mu_B) / sigma_B + beta`.

    Statistics are taken per channel (`axis`) over every other axis: the batch for dense
    inputs, batch, height and width for convolutional ones. Arguments, weights and behaviour
    follow `keras.layers.BatchNormalization` (its own test suite passes against this layer,
    tests/test_batch_norm_keras_suite.py); only the defaults differ (d2l's momentum and epsilon).

    - `training=True` (and `trainable=True`, `frozen=False`) normalises with the minibatch mean
      and biased variance and updates `moving = momentum * moving + (1 - momentum) * batch`.
    - `training=False`/`None`, `trainable=False` (the Keras 3 fine-tuning convention) or
      `frozen=True` normalises with the moving statistics and updates nothing.

    Dtypes: statistics and the normalisation run in float32 under every dtype policy (float64
    for float64 inputs); outputs come out in the layer's compute dtype and the variables in
    its variable dtype (float16 under "float16", float32 under "mixed_float16"), as in Keras.
    Integer inputs are normalised as floats.

    Masks (from `keras.layers.Masking` or `mask=`, one dimension less than the inputs): masked
    positions are left out of the batch statistics; the mask is passed on unchanged.

    Edge cases: a training call on an empty batch (a zero-sized static dimension) returns the
    empty output and leaves the moving statistics unchanged (Keras's layer turns them into NaN);
    rank-1 inputs are rejected when building. A NaN or Inf in a channel of a training batch makes
    that channel's outputs NaN and its moving statistics non-finite, as Keras's layer does
    (where Keras keeps an Inf moving mean, ours may hold NaN); in inference only the non-finite
    elements themselves are affected.

    One `keras.ops` path on every backend: two-pass statistics (`batch_moments`, accurate far
    from zero, on PyTorch too, where Keras's one-pass `ops.moments` turns a channel of large
    constant activations into NaN), then one multiply-add. A TensorFlow path through
    the fused `FusedBatchNormV3` kernel was tried and dropped: it was no faster in whole
    networks (convolutions dominate) and one BN-LeNet run with it ended with unusable weights,
    which was never explained; one implementation on both backends is easier to trust.

    Args:
        axis: the channel axis (an int, negative counts from the end). -1 for channels-last.
        momentum: weight of the old moving statistics, in [0, 1). Default 0.9 as in d2l
            (`keras.layers.BatchNormalization` uses 0.99; keras.applications twins pass it).
        epsilon: added to the variance before the square root, > 0. Default 1e-5 as in d2l.
        center: learn the offset `beta`.
        scale: learn the scale `gamma`.
        beta_initializer: as in Keras, as are `gamma_initializer`,
            `moving_mean_initializer`, `moving_variance_initializer` (moving variance starts
            at 1), `beta_regularizer`, `gamma_regularizer`, `beta_constraint` and
            `gamma_constraint`.
        synchronized: statistics of the global batch under data parallelism, as single-device
            training on that batch. TensorFlow: aggregated across `tf.distribute` replicas
            (ignored for masked calls, as in Keras). JAX: the jit-compiled step of
            `keras.distribution.DataParallel` already reduces a sharded batch globally, so the
            statistics are the default computation's (Keras's own layer refuses the argument on
            JAX). PyTorch: Keras has no data-parallel training; the statistics are this
            process's batch, and a call inside a multi-process `torch.distributed` group is an
            error rather than silently local statistics. The setting is saved, so a model
            trained with it loads and runs on every backend.
        renorm: batch renormalization (Ioffe 2017): in training, the normalised batch is
            corrected by `r = sigma_B / sigma`, `d = (mu_B - mu) / sigma` (constants for the
            gradient) from the moving `renorm_mean`/`renorm_stddev`, so training sees the
            statistics inference will use; adds `moving_stddev`, `renorm_mean`,
            `renorm_stddev`. Inference is unchanged.
        renorm_clipping: with `renorm`, a dict of optional "rmax", "rmin", "dmax": `r` is
            clipped to [rmin, rmax] and `d` to [-dmax, dmax] (missing: unclipped).
        renorm_momentum: momentum of `renorm_mean`/`renorm_stddev`, in [0, 1).
        frozen: keep the layer in inference behaviour with fixed statistics, `gamma` and
            `beta` whatever `training` and `trainable` say (torchvision's `FrozenBatchNorm2d`);
            survives `model.trainable = True`. See `keras_modern_cnn.layers.freeze_batch_norm`.
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        renorm: bool = False,
        renorm_clipping: Optional[dict[str, float]] = None,
        renorm_momentum: float = 0.99,
        frozen: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(
                "`axis` must be a single integer (the channel axis). "
                f"Received: axis={axis!r}"
            )
        self.axis = axis
        self.momentum = float(check_number("momentum", momentum, low=0.0, high=1.0, high_open=True))
        self.epsilon = float(check_number("epsilon", epsilon, low=0.0, low_open=True))
        self.center = check_bool("center", center)
        self.scale = check_bool("scale", scale)
        self.synchronized = check_bool("synchronized", synchronized)
        self.renorm = check_bool("renorm", renorm)
        self.renorm_clipping = _check_renorm_clipping(renorm_clipping, self.renorm)
        self.renorm_momentum = float(
            check_number("renorm_momentum", renorm_momentum, low=0.0, high=1.0, high_open=True)
        )
        self._frozen = check_bool("frozen", frozen)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = self.beta = None
        # Precise statistics (`keras_modern_cnn.layers.precise_bn`): while set, every call
        # normalises with batch statistics (portable path) and hands this function each batch's
        # (mean, variance) instead of updating the moving statistics.
        self._statistics_sink: Optional[Callable[[Any, Any], Any]] = None

    @property
    def frozen(self):
        """Inference behaviour with fixed statistics and affine weights (settable)."""
        return self._frozen

    @frozen.setter
    def frozen(self, value):
        self._frozen = check_bool("frozen", value)
        self._sync_affine_trainability()

    @property
    def trainable(self):
        return keras.layers.Layer.trainable.fget(self)

    @trainable.setter
    def trainable(self, value):
        # `model.trainable = True` reaches every layer; a frozen layer keeps gamma/beta fixed.
        keras.layers.Layer.trainable.fset(self, value)
        self._sync_affine_trainability()

    def _sync_affine_trainability(self):
        for weight in (getattr(self, "gamma", None), getattr(self, "beta", None)):
            if weight is not None:
                weight.trainable = self.trainable and not self._frozen

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(
                "BatchNorm expects inputs of rank 2 or more (batch and channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis` is out of range for inputs of rank {rank}. "
                f"Received: axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        self.axis = self.axis % rank
        if self.axis == 0:
            raise ValueError(
                "`axis` must be a channel axis, not the batch axis 0. "
                f"Received: axis={self.axis}"
            )
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                "The channel dimension must be known when BatchNorm is built. "
                f"Received: input_shape={tuple(input_shape)}, axis={self.axis}"
            )
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
        self._sync_affine_trainability()
        self.moving_mean = self._add_statistic("moving_mean", shape, self.moving_mean_initializer)
        self.moving_variance = self._add_statistic(
            "moving_variance", shape, self.moving_variance_initializer
        )
        if self.renorm:
            # As Keras: inference tracks the moving stddev (the variance is derived from it);
            # training corrects towards renorm_mean/renorm_stddev. Both stddevs start at
            # sqrt(moving_variance_initializer).
            stddev_initializer = _SquareRootInitializer(self.moving_variance_initializer)
            self.moving_stddev = self._add_statistic("moving_stddev", shape, stddev_initializer)
            self.renorm_mean = self._add_statistic(
                "renorm_mean", shape, self.moving_mean_initializer
            )
            self.renorm_stddev = self._add_statistic("renorm_stddev", shape, stddev_initializer)
        self._reduction_axes = tuple(i for i in range(rank) if i != self.axis)
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self.axis: channels})

    def _add_statistic(self, name, shape, initializer):
        return self.add_weight(
            shape=shape, name=name, initializer=initializer, trainable=False, autocast=False
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None, mask=None):
        outputs, mean, variance = self.normalize(inputs, training=training, mask=mask)
        if self._takes_batch_statistics(inputs, training):
            self.update_moving_statistics(mean, variance)
        return outputs

    def uses_batch_statistics(self, training):
        """Whether a call with this `training` flag normalises with (and updates) batch statistics."""
        if self._statistics_sink is not None:
            return True
        return bool(training) and self.trainable and not self._frozen

    def _takes_batch_statistics(self, inputs, training):
        # An empty batch has no statistics: it is normalised with the moving ones.
        return self.uses_batch_statistics(training) and 0 not in inputs.shape

    def normalize(self, inputs, training=None, mask=None):
        """`(outputs, mean, variance)` of a call, without touching the moving statistics.

        A pure function of the inputs and weights, so it can run under rematerialisation
        (`keras.remat`), where a state update would be replayed in the backward pass; the
        caller then passes `mean` and `variance` to `update_moving_statistics`.
        """
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask must have one dimension less than the inputs. "
                f"Received: mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}"
            )
        dtype = _statistics_dtype(inputs.dtype)
        with_batch_statistics = self._takes_batch_statistics(inputs, training)
        if with_batch_statistics and self.synchronized and keras.backend.backend() == "torch":
            _refuse_torch_process_group(self.name)
        if self._torch_kernels_apply(inputs, mask):
            from keras_modern_cnn.layers import torch_batch_norm

            return torch_batch_norm.normalize(
                inputs, self.axis, self.epsilon,
                *(None if w is None else w.value for w in (self.gamma, self.beta)),
                self.moving_mean.value, self.moving_variance.value, with_batch_statistics,
            )
        x = _as(inputs, dtype)
        if with_batch_statistics:
            mean, variance = self._moments(x, mask)
        else:
            mean, variance = _as(self.moving_mean, dtype), _as(self.moving_variance, dtype)
        # Fold normalisation, renorm correction, scale and offset into one multiply-add.
        multiplier = ops.rsqrt(variance + self.epsilon)
        offset = -mean * multiplier
        if with_batch_statistics and self.renorm:
            r, d = self._renorm_correction(mean, variance, dtype)
            multiplier, offset = multiplier * r, offset * r + d
        if self.gamma is not None:
            gamma = _as(self.gamma, dtype)
            multiplier, offset = multiplier * gamma, offset * gamma
        if self.beta is not None:
            offset = offset + _as(self.beta, dtype)
        broadcast_shape = [1] * len(x.shape)
        broadcast_shape[self.axis] = x.shape[self.axis]
        outputs = x * ops.reshape(multiplier, broadcast_shape) + ops.reshape(
            offset, broadcast_shape
        )
        return _as(outputs, self.compute_dtype), mean, variance

    def _torch_kernels_apply(self, inputs, mask):
        return (
            USE_TORCH_KERNELS
            and keras.backend.backend() == "torch"
            and mask is None
            and not self.renorm
            and self._statistics_sink is None
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
            and self.compute_dtype == "float32"
        )

    def update_moving_statistics(self, mean, variance):
        """`moving = momentum * moving + (1 - momentum) * batch` for the mean and the variance.

        With `renorm`, as Keras: the same update of `renorm_mean`/`renorm_stddev` with
        `renorm_momentum`, and of `moving_stddev`, from which `moving_variance` is derived.
        """
        if self._statistics_sink is not None:
            self._statistics_sink(mean, variance)
            return
        self._blend(self.moving_mean, mean, self.momentum)
        if not self.renorm:
            self._blend(self.moving_variance, variance, self.momentum)
            return
        stddev = ops.sqrt(variance + self.epsilon)
        self._blend(self.renorm_mean, mean, self.renorm_momentum)
        self._blend(self.renorm_stddev, stddev, self.renorm_momentum)
        moving_stddev = self._blend(self.moving_stddev, stddev, self.momentum)
        self.moving_variance.assign(
            _as(ops.relu(ops.square(moving_stddev) - self.epsilon), self.moving_variance.dtype)
        )

    @staticmethod
    def _blend(variable, value, momentum):
        """`variable = momentum * variable + (1 - momentum) * value`, computed in `value`'s dtype."""
        blended = _as(variable, value.dtype) * momentum + value * (1.0 - momentum)
        variable.assign(_as(blended, variable.dtype))
        return blended

    def _renorm_correction(self, mean, variance, dtype):
        """Ioffe 2017's `(r, d)`, clipped as `renorm_clipping` says, constants for autodiff."""
        renorm_stddev = ops.maximum(_as(self.renorm_stddev, dtype), math.sqrt(self.epsilon))
        r = ops.sqrt(variance + self.epsilon) / renorm_stddev
        d = (mean - _as(self.renorm_mean, dtype)) / renorm_stddev
        clipping = self.renorm_clipping
        if "rmin" in clipping:
            r = ops.maximum(r, clipping["rmin"])
        if "rmax" in clipping:
            r = ops.minimum(r, clipping["rmax"])
        if "dmax" in clipping:
            d = ops.clip(d, -clipping["dmax"], clipping["dmax"])
        return ops.stop_gradient(r), ops.stop_gradient(d)

    def _moments(self, x, mask):
        """Per-channel mean and biased variance of `x` (only its unmasked positions):
        `batch_moments`, aggregated across `tf.distribute` replicas when `synchronized`."""
        return batch_moments(x, self._reduction_axes, self.axis, mask, self.synchronized)

    def get_config(self):
        config = {
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": None if self.renorm_clipping is None else dict(self.renorm_clipping),
            "renorm_momentum": self.renorm_momentum,
            "frozen": self._frozen,
        }
        return {**super().get_config(), **config}


def batch_moments(x, axes, channel_axis, mask=None, synchronized=False):
    """Per-channel mean and biased variance of `x` over `axes`, in two passes (the mean, then
    the mean squared deviation from it), so float32 stays accurate far from zero.

    TensorFlow and JAX: Keras's `ops.moments` (two passes there). PyTorch: `torch.var_mean`,
    as Keras's torch `moments` takes `E[x^2] - E[x]^2`, which cancels to a negative variance
    (then NaN outputs) for large, nearly constant activations, e.g. a channel of 3e4 under
    `mixed_float16`. `synchronized`: across `tf.distribute` replicas (TensorFlow only; see
    `BatchNorm`). Masked (one dimension less than `x`): two passes over the selected positions,
    as Keras (a fully masked channel gives mean and variance 0).
    """
    if mask is not None:
        return _masked_moments(x, mask, axes, channel_axis)
    backend = keras.config.backend()
    if backend == "torch":
        from keras_modern_cnn.layers import torch_batch_norm

        return torch_batch_norm.moments(x, axes)
    return ops.moments(x, axes=axes, synchronized=synchronized and backend == "tensorflow")


def _masked_moments(x, mask, axes, channel_axis):
    selected = ops.broadcast_to(ops.expand_dims(ops.cast(mask, "bool"), -1), ops.shape(x))
    count = ops.sum(ops.cast(selected, x.dtype), axis=axes)
    count = count + keras.config.epsilon()
    mean = ops.sum(ops.where(selected, x, 0.0), axis=axes) / count
    broadcast_shape = [1] * len(x.shape)
    broadcast_shape[channel_axis] = x.shape[channel_axis]
    deviation = ops.where(selected, x - ops.reshape(mean, broadcast_shape), 0.0)
    variance = ops.sum(ops.square(deviation), axis=axes) / count
    return mean, variance


class _SquareRootInitializer:
    """`sqrt` of another initializer's values: the initial stddev of renorm's statistics."""

    def __init__(self, initializer):
        self.initializer = initializer

    def __call__(self, shape, dtype=None):
        return ops.sqrt(self.initializer(shape, dtype=dtype))


def _refuse_torch_process_group(name):
    """Statistics across `torch.distributed` processes are not implemented: refuse, not mislead."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized() and (
        torch.distributed.get_world_size() > 1
    ):
        raise NotImplementedError(
            f"BatchNorm {name!r} has synchronized=True, but statistics across the "
            f"{torch.distributed.get_world_size()} processes of a torch.distributed group are "
            "not implemented (Keras offers no data-parallel training on PyTorch): train data-"
            "parallel on JAX (keras.distribution) or TensorFlow (tf.distribute)."
        )
