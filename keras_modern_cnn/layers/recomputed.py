"""RecomputedConcatNormConv: the memory-efficient DenseNet's recomputed first half of a layer.

Reference: Pleiss et al., "Memory-Efficient Implementation of DenseNets" (arXiv:1707.06990).
"""

import keras
from keras import ops

from keras_modern_cnn.layers.batch_norm import BatchNorm


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class RecomputedConcatNormConv(keras.layers.Layer):
    """Concatenate, BatchNorm, ReLU, convolution; recomputed in the backward pass when training.

    The first half of a dense layer in a memory-efficient DenseNet (Pleiss et al. 2017,
    arXiv:1707.06990). The plain model stores, for every layer, the concatenation of all
    earlier feature maps plus its normalised and rectified copies, which grows quadratically
    with depth. Here the layer takes the earlier feature maps as a list, and under
    `training=True` runs through `keras.remat`, so only its inputs (which the block keeps
    anyway) and its output survive until the backward pass. (On JAX, XLA:CPU merges the
    recomputation back into the forward pass, so the saving needs TensorFlow or an accelerator;
    see BENCHMARKS.md.)

    The BatchNorm's moving statistics are updated once, outside the recomputed function: the
    batch statistics are outputs of that function rather than a state update inside it, which
    would run a second time in TensorFlow's recomputation.

    Args:
        batch_norm: a `keras_modern_cnn.layers.BatchNorm` (its name is kept, so weights keep
            the plain model's names).
        conv: the convolution that follows the ReLU (a `keras.layers.Conv2D`).
        axis: the channel axis of the concatenation.
    """

    def __init__(self, batch_norm, conv, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(batch_norm, BatchNorm):
            raise ValueError(
                "`batch_norm` must be a keras_modern_cnn.layers.BatchNorm (its statistics are "
                "computed inside the recomputed function). "
                f"Received: batch_norm={batch_norm!r}"
            )
        self.batch_norm = batch_norm
        self.conv = conv
        self.axis = axis

    def _concatenated_shape(self, input_shape):
        concatenated = list(input_shape[0])
        concatenated[self.axis] = sum(shape[self.axis] for shape in input_shape)
        return tuple(concatenated)

    def build(self, input_shape):
        for layer in (self.batch_norm, self.conv):
            if not layer.built:  # sublayers deserialised from a saved model come built
                layer.build(self._concatenated_shape(input_shape))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self._concatenated_shape(input_shape))

    def call(self, inputs, training=None):
        with_statistics = self.batch_norm.uses_batch_statistics(training)

        def concat_norm_relu_conv(*pieces):
            x = ops.concatenate(pieces, axis=self.axis)
            y, mean, variance = self.batch_norm.normalize(x, training=training)
            outputs = self.conv(ops.relu(y))
            return (outputs, mean, variance) if with_statistics else outputs

        function = keras.remat(concat_norm_relu_conv) if training else concat_norm_relu_conv
        results = function(*inputs)
        if not with_statistics:
            return results
        outputs, mean, variance = results
        self.batch_norm.update_moving_statistics(mean, variance)
        return outputs

    def get_config(self):
        return {
            **super().get_config(),
            "batch_norm": keras.saving.serialize_keras_object(self.batch_norm),
            "conv": keras.saving.serialize_keras_object(self.conv),
            "axis": self.axis,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["batch_norm"] = keras.saving.deserialize_keras_object(config["batch_norm"])
        config["conv"] = keras.saving.deserialize_keras_object(config["conv"])
        return cls(**config)
