"""Forward FLOPs per example of a Keras model, counted from its layers' configs and shapes.

Convention: only the multiply-adds of Conv (1D/2D/3D, transposed, depthwise, separable) and
Dense layers are counted, each multiply-add as 2 FLOPs; biases, normalisation, activations,
pooling and additions are left out (small next to the convolutions). A training step costs about
3x the forward FLOPs (forward, plus gradients with respect to activations and to weights):
Kaplan et al., "Scaling Laws for Neural Language Models" (2020), section 2.1.

These are the multiply-adds that the ResNet paper (He et al. 2016, arXiv:1512.03385) calls
"FLOPs" and model zoos list as GMACs (3.8-4.1 G for ResNet-50, by variant):
keras.applications.ResNet50 at 224x224 has 3.86 G, so `flops(...)` gives 7.7e9.
"""

import math

import keras

from keras_modern_cnn._compat import nodes_by_depth

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSED = (
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose,
)


def flops(model: keras.Model) -> int:
    """Forward FLOPs for one example: 2 x the multiply-adds of Conv and Dense layers.

    Args:
        model: a built functional or Sequential `keras.Model` with static shapes (every
            dimension but the batch known), e.g. `get_model("resnet50")`.
    Returns:
        int. Multiply by the batch size for a batch, and by about 3 for a training step.
    """
    graph = nodes_by_depth(model) if isinstance(model, keras.Model) else None
    if graph is None:
        raise ValueError(
            "`model` must be a built functional or Sequential keras.Model (subclassed models "
            f"have no layer graph to count). Received: model={model!r}"
        )
    multiply_adds = sum(
        _multiply_adds(node, model)
        for nodes in graph.values()
        for node in nodes
        if not node.is_input
    )
    return 2 * multiply_adds


def _multiply_adds(node, model):
    layer = node.operation
    if isinstance(layer, keras.Model):  # a nested model: count its own graph
        return flops(layer) // 2
    counted = _CONVOLUTIONS + _DEPTHWISE + _SEPARABLE + _TRANSPOSED + (keras.layers.Dense,)
    if not isinstance(layer, counted):
        return 0
    input_shape = tuple(node.input_tensors[0].shape[1:])
    output_shape = tuple(node.outputs[0].shape[1:])
    if None in input_shape or None in output_shape:
        raise ValueError(
            f"FLOPs need static shapes, but layer {layer.name!r} sees input {input_shape} and "
            f"output {output_shape} (None: unknown). Build the model with an `input_shape` "
            f"giving every dimension. Received: model={model.name!r}"
        )
    if isinstance(layer, keras.layers.Dense):
        return math.prod(input_shape) * layer.units
    if layer.data_format == "channels_first":
        input_channels, input_space = input_shape[0], input_shape[1:]
        output_space = output_shape[1:]
    else:
        input_channels, input_space = input_shape[-1], input_shape[:-1]
        output_space = output_shape[:-1]
    kernel = math.prod(layer.kernel_size)
    if isinstance(layer, _DEPTHWISE):
        return math.prod(output_space) * kernel * input_channels * layer.depth_multiplier
    if isinstance(layer, _SEPARABLE):
        depthwise_channels = input_channels * layer.depth_multiplier
        return math.prod(output_space) * depthwise_channels * (kernel + layer.filters)
    if isinstance(layer, _TRANSPOSED):  # every input position scatters a full kernel
        return math.prod(input_space) * kernel * input_channels * layer.filters
    return math.prod(output_space) * kernel * (input_channels // layer.groups) * layer.filters
