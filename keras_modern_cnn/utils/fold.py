"""Fold inference-mode batch normalization into the linear layer before it.

In inference mode BatchNorm is the per-channel affine map `y = s * (x - mean) + beta` with
`s = gamma / sqrt(moving_variance + epsilon)`. When `x = W u + b` comes from a convolution or
a dense layer that feeds nothing else, the pair is one linear layer with kernel `W * s` (scaled
along the output channels) and bias `s * (b - mean) + beta`: one multiply-add per element
less. Reference: Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018 (arXiv:1712.05877), section 3.2.

The graph is read from the model's public functional config and rebuilt with
`keras.models.clone_model`, so the original model is never modified.
"""

import keras
import numpy as np

from keras_modern_cnn import torch_graph
from keras_modern_cnn.layers import BatchNorm

_BATCH_NORMS = (BatchNorm, keras.layers.BatchNormalization)
_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_FOLDABLE = _CONVOLUTIONS + (keras.layers.Dense, keras.layers.DepthwiseConv2D)


def _tensor_references(structure):
    """Every `[layer_name, node_index, tensor_index]` named in a serialized call structure."""
    if isinstance(structure, dict):
        if structure.get("class_name") == "__keras_tensor__":
            return [tuple(structure["config"]["keras_history"])]
        return [ref for value in structure.values() for ref in _tensor_references(value)]
    if isinstance(structure, (list, tuple)):
        return [ref for value in structure for ref in _tensor_references(value)]
    return []


def _channel_axis(layer, rank):
    """The output channel axis of a foldable layer, counted from 0."""
    if isinstance(layer, keras.layers.Dense) or layer.data_format == "channels_last":
        return rank - 1
    return 1


def _functional_config(model):
    """The functional config of `model` (layers and their calls), or None for other models."""
    if not isinstance(model, keras.Model):
        return None
    try:
        config = model.get_config()
    except NotImplementedError:
        return None
    if not isinstance(config, dict) or not {"layers", "output_layers"} <= config.keys():
        return None
    return config


def _fold_pairs(model, config):
    """{producer layer name: batch-norm layer name} for every pair that folds exactly."""
    consumers = {}
    for reference in _tensor_references(config["output_layers"]):
        consumers[reference] = consumers.get(reference, 0) + 1
    calls = {}
    for entry in config["layers"]:
        calls[entry["config"]["name"]] = entry["inbound_nodes"]
        for reference in _tensor_references(entry["inbound_nodes"]):
            consumers[reference] = consumers.get(reference, 0) + 1

    pairs = {}
    for layer in model.layers:
        nodes = calls.get(layer.name, [])
        if not isinstance(layer, _BATCH_NORMS) or len(nodes) != 1:
            continue
        references = _tensor_references(nodes[0])
        if len(references) != 1 or nodes[0].get("kwargs", {}).get("training"):
            continue
        producer_name, node_index, tensor_index = references[0]
        producer = model.get_layer(producer_name)
        if (
            not isinstance(producer, _FOLDABLE)
            or len(calls.get(producer_name, [])) != 1
            or consumers[(producer_name, node_index, tensor_index)] != 1
            or producer.activation is not keras.activations.linear
            or producer.quantization_mode is not None
            or producer.name in pairs
        ):
            continue
        rank = len(producer.output.shape)
        if layer.axis % rank != _channel_axis(producer, rank):
            continue
        pairs[producer.name] = layer.name
    return pairs


def _folded_weights(producer, batch_norm):
    """The kernel and bias of `producer` followed by `batch_norm` in inference mode (float64)."""
    scale = 1.0 / np.sqrt(np.asarray(batch_norm.moving_variance, "float64") + batch_norm.epsilon)
    if batch_norm.gamma is not None:
        scale = scale * np.asarray(batch_norm.gamma, "float64")
    kernel = np.asarray(producer.kernel, "float64")
    bias = np.zeros(scale.shape) if producer.bias is None else np.asarray(producer.bias, "float64")
    bias = (bias - np.asarray(batch_norm.moving_mean, "float64")) * scale
    if batch_norm.beta is not None:
        bias = bias + np.asarray(batch_norm.beta, "float64")
    if isinstance(producer, keras.layers.DepthwiseConv2D):
        # Kernel (height, width, in_channels, multiplier); output channel i * multiplier + m.
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale  # the output channels are the kernel's last axis
    return kernel, bias


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """An inference copy of `model` with each foldable BatchNorm merged into the layer before it.

    A BatchNorm (`keras_modern_cnn.layers.BatchNorm` or `keras.layers.BatchNormalization`)
    folds when its only input is the output of a `Conv1D`/`Conv2D`/`Conv3D`, `Dense` or
    `DepthwiseConv2D` with a linear activation that nothing else consumes, and it normalises
    that layer's channel axis (channels_last or channels_first). Those layers get the folded
    kernel and a bias (added where they had none); every other BatchNorm stays. The copy
    computes the original's inference-mode function (training-mode batch statistics are gone:
    use it to serve, not to train). `model` itself is left untouched.

        served = keras_modern_cnn.utils.fold_batch_norm(model)

    Args:
        model: a built functional or Sequential `keras.Model`.

    Returns:
        A new functional `keras.Model` with the same name, inputs and outputs.
    """
    if isinstance(model, keras.Sequential):
        if not model.built:
            raise ValueError(
                "`model` must be built (give the Sequential model an Input) before folding. "
                f"Received: model={model.name!r} (unbuilt Sequential)"
            )
        model = keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    config = _functional_config(model)
    if config is None:
        raise ValueError(
            "`model` must be a functional or Sequential keras.Model: folding reads the layer "
            "graph, which a subclassed model does not expose. "
            f"Received: model={model!r}"
        )
    pairs = _fold_pairs(model, config)
    folded_batch_norms = set(pairs.values())

    def clone_layer(layer):
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call_layer(layer, *args, **kwargs):
        if layer.name in folded_batch_norms:
            return args[0]  # the producer's output, already normalised by its folded kernel
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone_layer, call_function=call_layer)
    for layer in folded.layers:
        if not layer.weights:
            continue
        original = model.get_layer(layer.name)
        if layer.name in pairs:
            batch_norm = model.get_layer(pairs[layer.name])
            kernel, bias = _folded_weights(original, batch_norm)
            layer.kernel.assign(kernel.astype(layer.kernel.dtype))
            layer.bias.assign(bias.astype(layer.bias.dtype))
        else:
            layer.set_weights(original.get_weights())
    return torch_graph.install(folded)
