"""Copying weights between architectural twins (e.g. from `keras.applications`)."""

from typing import TYPE_CHECKING

from keras_modern_cnn._compat import all_layers

if TYPE_CHECKING:
    import keras


def _layers_with_weights(model):
    return [layer for layer in all_layers(model) if layer.weights]


def transfer_weights(source: "keras.Model", target: "keras.Model") -> None:
    """Copy every weight of `source` into `target`, layer by layer in creation order.

    The two models must be twins: the same sequence of weighted layers with the same weight
    shapes (our `BatchNorm` stores gamma, beta, moving mean, moving variance in the order of
    `keras.layers.BatchNormalization`, so keras.applications weights load directly):

        reference = keras.applications.ResNet50(weights="imagenet")
        model = keras_modern_cnn.ResNet50()
        keras_modern_cnn.utils.transfer_weights(reference, model)

    Raises a ValueError naming the first pair of layers that do not match.
    """
    source_layers, target_layers = _layers_with_weights(source), _layers_with_weights(target)
    if len(source_layers) != len(target_layers):
        raise ValueError(
            "`source` and `target` are not twins: they have different numbers of layers with "
            f"weights. Received: source={source.name!r} ({len(source_layers)} weighted layers), "
            f"target={target.name!r} ({len(target_layers)} weighted layers)"
        )
    for source_layer, target_layer in zip(source_layers, target_layers):
        source_shapes = [tuple(w.shape) for w in source_layer.weights]
        target_shapes = [tuple(w.shape) for w in target_layer.weights]
        if source_shapes != target_shapes:
            raise ValueError(
                "`source` and `target` are not twins: weight shapes differ at layer "
                f"{source_layer.name!r} -> {target_layer.name!r}. "
                f"Received: source shapes={source_shapes}, target shapes={target_shapes}"
            )
        for source_weight, target_weight in zip(source_layer.weights, target_layer.weights):
            target_weight.assign(source_weight.value)
    return target
