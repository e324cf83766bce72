"""DenseNet: densely connected convolutional networks.

References: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
(arXiv:1608.06993); Dive into Deep Learning 8.7 (the seeds).

Dense blocks concatenate each (BN, ReLU, conv) output to their input along channels;
transition layers (BN, ReLU, 1x1 conv, 2x2 average pool) compress channels (default: halve).
DenseNet-BC adds a 1x1 bottleneck of 4 * growth_rate channels before every 3x3 convolution.

`memory_efficient=True` follows Pleiss et al., "Memory-Efficient Implementation of DenseNets"
(arXiv:1707.06990) as torchvision's `memory_efficient` does: the concatenation, BN and ReLU
in front of each layer's first convolution are recomputed in the backward pass instead of kept.
"""

import keras
from keras import ops

from keras_modern_cnn.blocks import (
    batch_norm,
    channel_axis,
    current_batch_norm_implementation,
    make_batch_norm,
    pooled_classifier,
)
from keras_modern_cnn.layers import BatchNorm
from keras_modern_cnn.registry import register_model
from keras_modern_cnn.validation import (
    check_application_args,
    check_bool,
    check_int_sequence,
    check_number,
    check_positive_int,
    check_width_ratio,
    image_input,
    load_weights_if_given,
    scaled_channels,
)

__all__ = ["DenseNet", "DenseNetD2L", "DenseNet121", "DenseNet169", "DenseNet201", "DenseNet264"]

MIN_INPUT_SIZE = 29  # torchvision documents 29 for its DenseNets; the seeds use 96.


def bottleneck_conv(growth_rate, *, conv_bias, name):
    """The DenseNet-B 1x1 convolution to 4 * growth_rate channels of layer `name`."""
    return keras.layers.Conv2D(4 * growth_rate, 1, use_bias=conv_bias, name=f"{name}_1_conv")


def growth_conv(growth_rate, *, conv_bias, name):
    """The 3x3 convolution adding growth_rate channels: the output of dense layer `name`."""
    return keras.layers.Conv2D(
        growth_rate, 3, padding="same", use_bias=conv_bias, name=f"{name}_2_conv"
    )


def conv_block(x, growth_rate, *, bottleneck, conv_bias, bn, name):
    """BN, ReLU, (1x1 bottleneck, BN, ReLU,) 3x3 conv; output concatenated to the input."""
    y = batch_norm(x, name=f"{name}_0_bn", **bn)
    y = keras.layers.Activation("relu", name=f"{name}_0_relu")(y)
    if bottleneck:
        y = bottleneck_conv(growth_rate, conv_bias=conv_bias, name=name)(y)
        y = batch_norm(y, name=f"{name}_1_bn", **bn)
        y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = growth_conv(growth_rate, conv_bias=conv_bias, name=name)(y)
    return keras.layers.Concatenate(axis=channel_axis(), name=f"{name}_concat")([x, y])


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


def memory_efficient_dense_block(x, depth, growth_rate, *, bottleneck, conv_bias, bn, name):
    """`depth` dense layers whose concatenation/BN/ReLU is recomputed; one concatenation at the end.

    Same weights (names and order) and function as `depth` calls of `conv_block`.
    """
    features = [x]
    for index in range(depth):
        layer_name = f"{name}_block{index + 1}"
        first_conv = (bottleneck_conv if bottleneck else growth_conv)(
            growth_rate, conv_bias=conv_bias, name=layer_name
        )
        y = RecomputedConcatNormConv(
            make_batch_norm(name=f"{layer_name}_0_bn", **bn),
            first_conv,
            axis=channel_axis(),
            name=f"{layer_name}_recomputed",
        )(features)
        if bottleneck:
            y = batch_norm(y, name=f"{layer_name}_1_bn", **bn)
            y = keras.layers.Activation("relu", name=f"{layer_name}_1_relu")(y)
            y = growth_conv(growth_rate, conv_bias=conv_bias, name=layer_name)(y)
        features.append(y)
    return keras.layers.Concatenate(axis=channel_axis(), name=f"{name}_block{depth}_concat")(
        features
    )


def transition_block(x, compression, *, conv_bias, bn, name):
    """BN, ReLU, 1x1 conv to `compression` x channels, 2x2 average pool (halves the size)."""
    x = batch_norm(x, name=f"{name}_bn", **bn)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    channels = int(x.shape[channel_axis()] * compression)
    x = keras.layers.Conv2D(channels, 1, use_bias=conv_bias, name=f"{name}_conv")(x)
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(
    blocks=(4, 4, 4, 4),
    growth_rate=32,
    *,
    bottleneck=False,
    compression=0.5,
    stem_filters=64,
    conv_bias=True,
    bn_epsilon=1e-5,
    bn_momentum=0.9,
    width_ratio=1.0,
    memory_efficient=False,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="densenet",
):
    """DenseNet; the defaults are the seeds' d2l model (d2l 8.7).

    `DenseNet(growth_rate=32)` is the seeds' DenseNet for Fashion-MNIST: 64-channel 7x7/2
    stem and 3x3/2 max pool, four dense blocks of four (BN, ReLU, 3x3 conv) with growth 32,
    halving transitions between them, BN, ReLU, global average pooling, 10 classes, on
    96x96x1 inputs; convolutions carry a bias as in the seeds.

    Args:
        blocks: convolutions per dense block (d2l: 4-4-4-4; DenseNet-121: 6-12-24-16).
        growth_rate: channels each convolution adds (k).
        bottleneck: 1x1 convolution to 4k channels before each 3x3 (DenseNet-B).
        compression: channel factor of transition layers, in (0, 1] (DenseNet-C: 0.5).
        stem_filters: channels of the 7x7 stem convolution.
        conv_bias: convolutions carry a bias (d2l) or not (the paper, keras.applications).
        bn_epsilon, bn_momentum: of every BatchNorm (keras.applications: 1.001e-5, 0.99).
        width_ratio: multiplies the stem channels and the growth rate.
        memory_efficient: recompute each layer's concatenation, BN and ReLU in the backward
            pass (`RecomputedConcatNormConv`), so training memory grows linearly with depth
            instead of quadratically, for some extra compute. Same weights (names and order)
            and same function as the plain model; the layer graph differs (one
            `{layer}_recomputed` layer holds each `{layer}_0_bn` and the conv after it).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras.applications`.
    """
    blocks = check_int_sequence("blocks", blocks)
    growth_rate = check_positive_int("growth_rate", growth_rate)
    check_bool("bottleneck", bottleneck)
    compression = float(check_number("compression", compression, low=0.0, low_open=True, high=1.0))
    stem_filters = check_positive_int("stem_filters", stem_filters)
    check_bool("conv_bias", conv_bias)
    bn = dict(
        epsilon=float(check_number("bn_epsilon", bn_epsilon, low=0.0, low_open=True)),
        momentum=float(check_number("bn_momentum", bn_momentum, low=0.0, high=1.0, high_open=True)),
    )
    width_ratio = check_width_ratio(width_ratio)
    check_bool("memory_efficient", memory_efficient)
    if memory_efficient and current_batch_norm_implementation() != "keras_modern_cnn":
        raise ValueError(
            "`memory_efficient=True` recomputes keras_modern_cnn's BatchNorm in the backward pass "
            "and cannot be built inside batch_norm_implementation("
            f"{current_batch_norm_implementation()!r}). Received: memory_efficient=True"
        )
    check_application_args(
        include_top=include_top, weights=weights, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
    inputs, x = image_input(
        input_tensor=input_tensor, input_shape=input_shape, default_shape=(96, 96, 1),
        include_top=include_top, min_size=MIN_INPUT_SIZE, require_static=False, name=name,
    )
    growth = scaled_channels(growth_rate, width_ratio)
    x = keras.layers.ZeroPadding2D(3, name="zero_padding2d")(x)
    x = keras.layers.Conv2D(
        scaled_channels(stem_filters, width_ratio), 7, strides=2, use_bias=conv_bias,
        name="conv1_conv",
    )(x)
    x = batch_norm(x, name="conv1_bn", **bn)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="zero_padding2d_1")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for index, depth in enumerate(blocks):
        if memory_efficient:
            x = memory_efficient_dense_block(
                x, depth, growth, bottleneck=bottleneck, conv_bias=conv_bias, bn=bn,
                name=f"conv{index + 2}",
            )
        else:
            for conv in range(depth):
                x = conv_block(
                    x, growth, bottleneck=bottleneck, conv_bias=conv_bias, bn=bn,
                    name=f"conv{index + 2}_block{conv + 1}",
                )
        if index < len(blocks) - 1:
            x = transition_block(x, compression, conv_bias=conv_bias, bn=bn, name=f"pool{index + 2}")
    x = batch_norm(x, name="bn", **bn)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = pooled_classifier(
        x, include_top=include_top, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
    )
    model = keras.Model(inputs, x, name=name)
    return load_weights_if_given(model, weights)


def _variant(registry_name, function_name, blocks, reference):
    """A DenseNet-BC (k=32) with the keras.applications signature and numerics."""

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=registry_name,
        *,
        width_ratio=1.0,
        memory_efficient=False,
    ):
        return DenseNet(
            blocks, 32, bottleneck=True, compression=0.5, stem_filters=64, conv_bias=False,
            bn_epsilon=1.001e-5, bn_momentum=0.99, width_ratio=width_ratio,
            memory_efficient=memory_efficient,
            include_top=include_top, weights=weights, input_tensor=input_tensor,
            input_shape=input_shape if input_shape is not None or input_tensor is not None
            else ((224, 224, 3) if include_top else (None, None, 3)),
            pooling=pooling, classes=classes, classifier_activation=classifier_activation,
            name=name,
        )

    builder.__name__ = builder.__qualname__ = function_name
    builder.__doc__ = f"{function_name}: {reference}."
    return register_model(
        name=registry_name, family="densenet", default_input_shape=(224, 224, 3),
        reference=reference,
    )(builder)


DenseNet121 = _variant("densenet121", "DenseNet121", (6, 12, 24, 16), "twin of keras.applications.DenseNet121")
DenseNet169 = _variant("densenet169", "DenseNet169", (6, 12, 32, 32), "twin of keras.applications.DenseNet169")
DenseNet201 = _variant("densenet201", "DenseNet201", (6, 12, 48, 32), "twin of keras.applications.DenseNet201")
DenseNet264 = _variant("densenet264", "DenseNet264", (6, 12, 64, 48), "Huang et al. 2017 Table 1 DenseNet-264 (k=32), shipped by no library")


@register_model(
    name="densenet_d2l", family="densenet", default_input_shape=(96, 96, 1),
    reference="d2l 8.7 DenseNet (seeds: 64 stem, k=32, 4-4-4-4, Fashion-MNIST 96x96)",
)
def DenseNetD2L(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="densenet_d2l",
    *,
    width_ratio=1.0,
    memory_efficient=False,
):
    """The seeds' DenseNet, registered: `DenseNet(growth_rate=32)` with the standard signature."""
    return DenseNet(
        growth_rate=32, width_ratio=width_ratio, memory_efficient=memory_efficient,
        include_top=include_top, weights=weights,
        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name,
    )
