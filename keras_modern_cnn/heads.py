"""Swapping a classifier's head, and its pre-logits features (timm's `reset_classifier` and
`forward_head(pre_logits=True)`).

The head is the `predictions` layer every builder of the zoo ends with: a `Dense` (global
pooling or flattened dense layers before it) or, for U-Net, a 1x1 `Conv2D`. NiN has no such
layer (its class block is a NiN block with `classes` channels): rebuild it with `classes=`.
"""

import keras

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
    return keras.Model(model_inputs(model), layer.input, name=f"{model.name}_pre_logits")


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
    return keras.Model(model_inputs(model), head(layer.input), name=model.name)

