"""Losses the zoo trains with, identical on every backend."""

import keras

from keras_modern_cnn._compat import loss_function_arguments


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class SparseCategoricalCrossentropy(keras.losses.SparseCategoricalCrossentropy):
    """`keras.losses.SparseCategoricalCrossentropy` that also trains per-pixel outputs on torch.

    Keras 3.15's torch backend moves the class axis of a rank > 2 probability tensor to
    position 1 as a strided view, and torch's `nll_loss` backward rejects it ("grad_input must
    be contiguous"), so a softmax U-Net could not train there. On torch this loss hands Keras a
    contiguous class-first tensor; on TensorFlow and JAX it is Keras's loss unchanged. Same
    arguments and values as Keras's.
    """

    def call(self, y_true, y_pred):
        arguments = loss_function_arguments(self)
        if keras.backend.backend() == "torch" and len(y_pred.shape) > 2 and arguments["axis"] == -1:
            class_first = keras.ops.moveaxis(y_pred, -1, 1).contiguous()
            return self.fn(y_true, class_first, **{**arguments, "axis": 1})
        return super().call(y_true, y_pred)
