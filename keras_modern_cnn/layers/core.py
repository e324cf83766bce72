"""`Activation`, `Add` and `Concatenate`: Keras's layers, called directly on the torch backend.

The zoo's most frequent layers after convolutions and BatchNorm (DenseNet-121: 121 ReLUs and
58 concatenations of its 429 layers). Their work on torch is one PyTorch operator, which Keras's
`Layer.__call__` costs many times over; `fast_call.TorchFastCall` calls `call` directly where
`__call__` would only wrap it. Everything else, and TensorFlow and JAX, is Keras's layer.
"""

import keras

from keras_modern_cnn.layers.fast_call import TorchFastCall


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class Activation(TorchFastCall, keras.layers.Activation):
    """`keras.layers.Activation`, called directly on torch (`fast_call`)."""


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class Add(TorchFastCall, keras.layers.Add):
    """`keras.layers.Add`, called directly on torch (`fast_call`)."""


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class Concatenate(TorchFastCall, keras.layers.Concatenate):
    """`keras.layers.Concatenate`, called directly on torch (`fast_call`)."""
