"""Stage features: a classifier's intermediate stage outputs as a multi-output model.

As timm's `features_only` / `out_indices` / `feature_info` (Wightman, timm) and KerasHub's
`pyramid_outputs`: every registered classifier declares its stages, ((layer name,
reduction), ...) from input to output, where a stage is the last layer at its resolution
(before the next downsampling) and the reduction is the product of the strides before it
(for "valid"-padded families such as AlexNet the side is then only about input / reduction).

    backbone = keras_modern_cnn.get_model("resnet50", features_only=True, out_indices=(1, 2, 3, 4))
    backbone.feature_info   # (FeatureInfo(name='conv2_block3_out', channels=256, reduction=4), ...)
"""

import collections

import keras

from keras_modern_cnn import torch_graph
from keras_modern_cnn.blocks import channel_axis
from keras_modern_cnn.validation import check_out_indices

FeatureInfo = collections.namedtuple("FeatureInfo", ["name", "channels", "reduction"])
FeatureInfo.__doc__ = "One stage output: its layer name, channel count and reduction (stride)."


def channels_of(tensor):
    """The channel count of an image tensor under the current `image_data_format`."""
    return tensor.shape[channel_axis()]


def feature_model(model, stages, out_indices=None):
    """The functional model from `model`'s inputs to the stage outputs `out_indices`.

    Args:
        model: a functional model holding the layers named in `stages` (its head, if any,
            is dropped: only the layers the chosen stages depend on are kept).
        stages: ((layer name, reduction), ...), input to output (`ModelSpec.stages`).
        out_indices: indices into `stages` (negative from the last); default all.

    Returns:
        A functional `keras.Model` named `model.name` sharing `model`'s layers (so layer names
        and weights are the classifier's), with a `feature_info` attribute: a tuple of
        `FeatureInfo` per output. The attribute is not saved with the model.
    """
    indices = check_out_indices(
        tuple(range(len(stages))) if out_indices is None else out_indices, len(stages)
    )
    outputs, info = [], []
    for index in indices:
        layer_name, reduction = stages[index]
        tensor = model.get_layer(layer_name).output
        outputs.append(tensor)
        info.append(FeatureInfo(layer_name, int(channels_of(tensor)), reduction))
    features = torch_graph.install(keras.Model(model_inputs(model), outputs, name=model.name))
    features.feature_info = tuple(info)
    return features


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy the weights of every layer of `target` from the layer of the same name in `source`.

    Loads a classifier's weights into its feature model (or a U-Net built on it as an encoder):
    `copy_weights_by_name(classifier, get_model(name, features_only=True))`. The head
    (`predictions`, whose classes differ) and layers of `target` with no namesake in `source`
    keep their weights; the names copied are returned. Other shapes must agree (same variant
    and `width_ratio`).
    """
    copied = []
    for layer in target.layers:
        if not layer.weights or layer.name == "predictions":
            continue
        try:
            source_layer = source.get_layer(layer.name)
        except ValueError:
            continue
        source_shapes = [tuple(w.shape) for w in source_layer.weights]
        target_shapes = [tuple(w.shape) for w in layer.weights]
        if source_shapes != target_shapes:
            raise ValueError(
                f"Layer {layer.name!r} has weights of different shapes in `source` and "
                f"`target` (another variant or width_ratio?). Received: source shapes="
                f"{source_shapes}, target shapes={target_shapes}"
            )
        layer.set_weights(source_layer.get_weights())
        copied.append(layer.name)
    return copied


def model_inputs(model):
    """`model`'s input tensor, or its list of inputs when it has several."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs
