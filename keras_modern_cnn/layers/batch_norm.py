"""Batch normalization as formulated in Dive into Deep Learning, section 8.5.

Reference: Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift", ICML 2015 (arXiv:1502.03167).
"""

import keras
from keras import constraints, initializers, ops, regularizers

from keras_modern_cnn.validation import check_bool, check_number


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class BatchNorm(keras.layers.Layer):
    """Per-channel batch normalization: `BN(x) = gamma * (x - mu_B) / sigma_B + beta`.

    Statistics are taken per channel (`axis`) over every other axis: the batch for dense
    inputs, batch, height and width for convolutional ones.

    - `training=True` (and `trainable=True`) normalises with the minibatch mean and biased
      variance and updates `moving = momentum * moving + (1 - momentum) * batch`.
    - `training=False`/`None`, or `trainable=False` (the Keras 3 fine-tuning convention),
      normalises with the moving statistics and updates nothing.

    Statistics are always computed in float32: float16/bfloat16 inputs give outputs of the
    same dtype while the variables stay float32.

    One `keras.ops` path on every backend: one pass over the data for the statistics (shifted
    so float32 stays accurate far from zero), then one multiply-add. A TensorFlow path through
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
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer: initializers (moving variance starts at 1).
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: as in Keras.
        synchronized: aggregate statistics across replicas under `tf.distribute`
            (TensorFlow backend only).
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.9,
        epsilon=1e-5,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized=False,
        **kwargs,
    ):
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
        if self.synchronized and keras.config.backend() != "tensorflow":
            raise ValueError(
                "`synchronized=True` aggregates statistics through tf.distribute and needs the "
                f"TensorFlow backend; the current backend is {keras.config.backend()!r}. On JAX, "
                "use keras.distribution.DataParallel, whose jit-compiled step already computes "
                "statistics over the global batch. Received: synchronized=True"
            )
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

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
        self.gamma = (
            self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )
            if self.center
            else None
        )
        self.moving_mean = self.add_weight(
            shape=shape,
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        self._reduction_axes = tuple(i for i in range(rank) if i != self.axis)
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={self.axis: channels})

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None):
        outputs, mean, variance = self.normalize(inputs, training=training)
        if self.uses_batch_statistics(training):
            self.update_moving_statistics(mean, variance)
        return outputs

    def uses_batch_statistics(self, training):
        """Whether a call with this `training` flag normalises with (and updates) batch statistics."""
        return bool(training) and self.trainable

    def normalize(self, inputs, training=None):
        """`(outputs, mean, variance)` of a call, without touching the moving statistics.

        A pure function of the inputs and weights, so it can run under rematerialisation
        (`keras.remat`), where a state update would be replayed in the backward pass; the
        caller then passes `mean` and `variance` to `update_moving_statistics`.
        """
        x = inputs
        if keras.backend.standardize_dtype(x.dtype) != "float32":
            x = ops.cast(x, "float32")
        if self.uses_batch_statistics(training):
            mean, variance = self._moments(x)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        # Fold normalisation, scale and offset into one multiply-add per element.
        multiplier = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            multiplier = multiplier * self.gamma
        offset = -mean * multiplier
        if self.beta is not None:
            offset = offset + self.beta
        broadcast_shape = [1] * len(x.shape)
        broadcast_shape[self.axis] = x.shape[self.axis]
        outputs = x * ops.reshape(multiplier, broadcast_shape) + ops.reshape(
            offset, broadcast_shape
        )
        return ops.cast(outputs, inputs.dtype), mean, variance

    def update_moving_statistics(self, mean, variance):
        """`moving = momentum * moving + (1 - momentum) * batch` for the mean and the variance."""
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )

    def _moments(self, x):
        """Per-channel mean and biased variance, in one pass over `x`.

        Uses the shifted-data identity `Var[x] = E[(x - s)^2] - E[x - s]^2` with `s` one sample
        of each channel, which keeps float32 accurate for data far from zero (the plain
        `E[x^2] - E[x]^2` loses everything when |mean| >> std). `s` is a constant for autodiff,
        so gradients are exact.
        """
        if self.synchronized:
            return ops.moments(x, axes=self._reduction_axes, synchronized=True)
        first = [0] * len(x.shape)
        sizes = list(x.shape)
        for axis in self._reduction_axes:
            sizes[axis] = 1
        sizes[self.axis] = x.shape[self.axis]
        shift = ops.stop_gradient(ops.slice(x, first, sizes))
        shifted = x - shift
        shifted_mean = ops.mean(shifted, axis=self._reduction_axes)
        shifted_square_mean = ops.mean(ops.square(shifted), axis=self._reduction_axes)
        variance = ops.maximum(shifted_square_mean - ops.square(shifted_mean), 0.0)
        mean = shifted_mean + ops.reshape(shift, (-1,))
        return mean, variance

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
        }
        return {**super().get_config(), **config}
