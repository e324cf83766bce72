"""`Conv2D`, `MaxPooling2D` and `AveragePooling2D`: Keras's layers, with PyTorch's kernels on
zero-copy views on the torch backend.

On TensorFlow and JAX these are `keras.layers.Conv2D`, `MaxPooling2D` and `AveragePooling2D`
unchanged (the same arguments, weights, `get_config` and computation). On torch, a
channels-last call runs PyTorch's kernels on channels_last views of the NHWC tensors instead of
Keras's permute-and-copy path (`keras_modern_cnn.layers.torch_conv`); Keras's path stays the
reference, used for every other case and under `torch_kernels.disabled()`, and the tests hold
the two equal, outputs and gradients (tests/test_torch_kernels.py). The weights keep Keras's
layout, so a model saved on one backend loads and trains on the others. On torch the layers are
also called directly where Keras's `Layer.__call__` would only wrap `call`
(`keras_modern_cnn.layers.fast_call`).

Reference: Keras 3.15 `keras/src/backend/torch/nn.py` (`conv`, `max_pool`, `average_pool`);
PyTorch's channels_last memory format.
"""

import keras

from keras_modern_cnn.layers import torch_kernels
from keras_modern_cnn.layers.fast_call import TorchFastCall


def _torch_applies(inputs, data_format):
    """Whether a call on `inputs` takes the PyTorch kernels: torch backend, switch on, a
    channels-last rank-4 torch tensor on a real device (Keras infers shapes on "meta"), not
    while `torch.compile` traces (`jit_compile=True`): Keras's path is what compiles there
    (dynamo makes the sizes symbolic after a layer's code recompiles, and inductor 2.13 fails
    on the kernel's 2-D transpose with symbolic sizes)."""
    if not (keras.backend.backend() == "torch" and torch_kernels.enabled()):
        return False
    import torch

    return (
        data_format == "channels_last"
        and isinstance(inputs, torch.Tensor)
        and inputs.ndim == 4
        and inputs.device.type != "meta"
        and not torch.compiler.is_compiling()
    )


def _tensor(value):
    """The backend tensor of a variable (autocast as Keras casts it) or of a tensor."""
    return value.value if isinstance(value, keras.Variable) else value


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class Conv2D(TorchFastCall, keras.layers.Conv2D):
    """`keras.layers.Conv2D`; on torch, channels-last calls run `torch.nn.functional.conv2d`
    on zero-copy views, with the bias fused (see the module docstring)."""

    def build(self, input_shape):
        super().build(input_shape)
        if (keras.backend.backend() == "torch" and torch_kernels.enabled()
                and self.data_format == "channels_last"):
            from keras_modern_cnn.layers import torch_conv

            torch_conv.store_kernel_for_torch(self._kernel)

    def call(self, inputs):
        if not _torch_applies(inputs, self.data_format):
            return super().call(inputs)
        from keras_modern_cnn.layers import torch_conv

        if getattr(self, "_torch_weight_cache", None) is None:
            self._torch_weight_cache = torch_conv.WeightCache()
        outputs = torch_conv.conv2d(
            inputs, _tensor(self.kernel), None if self.bias is None else _tensor(self.bias),
            strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            cache=self._torch_weight_cache,
        )
        return outputs if self.activation is None else self.activation(outputs)


class _Pooling2D:
    """The torch path shared by the two pooling layers (`pool_mode` says which)."""

    def call(self, inputs):
        if _torch_applies(inputs, self.data_format):
            from keras_modern_cnn.layers import torch_conv

            if torch_conv.pooling_applies(inputs, self.pool_size, self.strides, self.padding):
                return torch_conv.pool2d(
                    inputs, mode=self.pool_mode, pool_size=self.pool_size, strides=self.strides,
                    padding=self.padding,
                )
        return super().call(inputs)


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class MaxPooling2D(TorchFastCall, _Pooling2D, keras.layers.MaxPooling2D):
    """`keras.layers.MaxPooling2D`; on torch, channels-last calls pool a zero-copy
    channels_last view (asymmetric "same" padding keeps Keras's path)."""


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class AveragePooling2D(TorchFastCall, _Pooling2D, keras.layers.AveragePooling2D):
    """`keras.layers.AveragePooling2D`; on torch, channels-last calls pool a zero-copy
    channels_last view, the padding left out of the count as in Keras (asymmetric "same"
    padding keeps Keras's path)."""
