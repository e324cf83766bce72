"""Swapping a classifier's head, and its pre-logits features (timm's `reset_classifier`,
`forward_head(pre_logits=True)` and `num_features`).

Functions of the model rather than attributes or methods: the zoo's models are plain functional
`keras.Model`s, and an attribute set on one does not survive `save`/`load_model`, so each of
these reads the model's graph and works the same on a model just built and on one reloaded.

The head is the `predictions` layer every builder of the zoo ends with: a `Dense` (global
pooling or flattened dense layers before it) or, for U-Net, a 1x1 `Conv2D`. NiN has no such
layer (its class block is a NiN block with `classes` channels): rebuild it with `classes=`.
"""

import keras

from keras_modern_cnn import torch_graph
from keras_modern_cnn.features import model_inputs
from keras_modern_cnn.types import Activation
from keras_modern_cnn.validation import check_positive_int


def _predictions(model):
    try:
        layer = model.get_layer("predictions")
    except ValueError:
        layer = None
    dense = isinstance(layer, keras.layers.Dense)
    pointwise = isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)
    if not (dense or pointwise) or layer.output is not model.outputs[0]:
        raise ValueError(
            "`model` must end with the zoo's `predictions` layer (a Dense, or a 1x1 Conv2D "
            "for U-Net); NiN's class block is its head: rebuild it with `classes=`. "
            f"Received: model={model.name!r}"
        )
    return layer


def pre_logits(model: keras.Model) -> keras.Model:
    """The functional model from `model`'s inputs to the input of its `predictions` layer:
    the pooled (or flattened dense) features the classifier reads, as timm's pre-logits."""
    layer = _predictions(model)
    return torch_graph.install(
        keras.Model(model_inputs(model), layer.input, name=f"{model.name}_pre_logits")
    )


def num_features(model: keras.Model) -> int:
    """Width of the features the classifier reads: the input size of its `predictions` layer
    (timm's `model.num_features`). For a model without a top (`include_top=False`), the
    channels of its output. Works on reloaded models too (see the module docstring)."""
    from keras_modern_cnn.features import channels_of

    if any(layer.name == "predictions" for layer in model.layers):
        return int(_predictions(model).input.shape[-1])
    if len(model.outputs) != 1:
        raise ValueError(
            "`model` must have one output (a feature model's channels are its `feature_info`). "
            f"Received: model={model.name!r} with {len(model.outputs)} outputs"
        )
    output = model.outputs[0]
    return int(output.shape[-1] if len(output.shape) == 2 else channels_of(output))


def replace_head(
    model: keras.Model, classes: int, *, classifier_activation: Activation = "softmax"
) -> keras.Model:
    """A model sharing every layer of `model` but `predictions`, replaced by a new one with
    `classes` outputs (timm's `reset_classifier`); the new layer keeps the name `predictions`.

    Args:
        model: a classifier (or U-Net) of the zoo.
        classes: number of outputs of the new head.
        classifier_activation: its activation ("softmax" by default, None for logits).
    """
    layer = _predictions(model)
    classes = check_positive_int("classes", classes)
    if isinstance(layer, keras.layers.Dense):
        head = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")
    else:
        head = keras.layers.Conv2D(
            classes, 1, activation=classifier_activation, name="predictions"
        )
    return torch_graph.install(keras.Model(model_inputs(model), head(layer.input), name=model.name))



def reset_classifier(
    model: keras.Model, num_classes: int, *, classifier_activation: Activation = "softmax"
) -> keras.Model:
    """timm's `reset_classifier(num_classes)` for the zoo's functional models: `replace_head`
    (our name) with `num_classes` outputs, or, with `num_classes=0`, the model without its
    classifier (`pre_logits`), as timm's `reset_classifier(0)`. Returns a new model: a
    functional model cannot change in place."""
    if num_classes == 0 and not isinstance(num_classes, bool):
        return pre_logits(model)
    return replace_head(model, num_classes, classifier_activation=classifier_activation)
