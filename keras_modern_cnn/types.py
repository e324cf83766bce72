"""Type aliases of the public API's arguments (for editors and type checkers).

    def ResNet50(include_top: bool = True, weights: Weights = None, ...,
                 pooling: Pooling = None, classifier_activation: Activation = "softmax") -> keras.Model
"""

import os
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Union

if TYPE_CHECKING:
    from keras_modern_cnn.weights.presets import Preset

# An input shape without the batch axis: (height, width, channels) channels-last; None for a
# side the model accepts at any size.
Shape = tuple[Optional[int], ...]
# `weights=`: None (random initialization), a preset name or `Preset`, a weights file or an
# "hf://" reference.
Weights = Union[str, os.PathLike, "Preset", None]
# `pooling=` with `include_top=False`.
Pooling = Literal[None, "avg", "max"]
# `classifier_activation=`: a Keras activation name, a callable, or None for logits.
Activation = Union[str, Callable[..., Any], None]
# A Keras tensor (`keras.Input(...)`, a layer's output) or a backend tensor.
Tensor = Any
# `dtype=` of every builder (KerasHub's spelling): a Keras dtype policy name ("float32",
# "bfloat16", "mixed_bfloat16", ...) or a `keras.DTypePolicy`; None keeps the global policy.
DType = Any
