"""A direct `layer.call` for the package's layers on the torch backend, where Keras's
`Layer.__call__` would only wrap it.

Keras runs PyTorch eagerly, so every layer of every step goes through `Layer.__call__`: input
conversion, a `CallSpec` built with `inspect.Signature.bind`, training-flag resolution through
the call context, mask propagation, autocast and name scopes, then `torch.nn.Module.__call__`
and `Operation.__call__` with traceback filtering. On the 2-core CPU that is 150-450 us per
layer (a ReLU's own work on a small tensor: ~10 us); DenseNet-121 has 429 layers. For a built
layer called eagerly on plain float tensors with nothing of that to do, those steps change
nothing, and `TorchFastCall` calls `layer.call` directly; every other call (symbolic tensors,
masks, mixed dtypes or an autocast scope, an unresolved `training`, remat, quantization,
activity regularizers, torch module hooks, other backends) goes through Keras's `__call__`.

This leans on Keras 3.15 internals, read through `keras_modern_cnn._compat` (the call-context
arguments, the remat mode, tensor masks, the autocast scope, `_called`; tests/test_compat.py
pins each), and tests/test_fast_call.py holds the outputs and gradients of the direct call
equal to `Layer.__call__`'s.
"""

import keras

from keras_modern_cnn import _compat
from keras_modern_cnn.layers import torch_kernels

_TORCH = keras.backend.backend() == "torch"
if _TORCH:
    import torch

    _TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64,
                     "bfloat16": torch.bfloat16, "float16": torch.float16}
    _MISSING = object()


def _plain_tensors(value, dtype):
    """Whether `value` is a torch tensor of `dtype` without a Keras mask, or a list or tuple of
    them (merge layers)."""
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(_plain_tensors(item, dtype) for item in value)
    return (
        isinstance(value, torch.Tensor)
        and value.dtype is dtype
        and _compat.keras_mask(value) is None
    )


def call_kwargs(layer, args, kwargs):
    """The keyword arguments `Layer.__call__` would pass to `layer.call` when all it would do is
    call it; None when it has more to do."""
    if not (_TORCH and torch_kernels.enabled() and layer.built and len(args) == 1):
        return None
    dtype = _TORCH_DTYPES.get(layer.compute_dtype)
    if dtype is None or layer.variable_dtype != layer.compute_dtype:
        return None
    context_args, accepted = _compat.call_context_arguments(layer)
    passed = {}
    for name, value in kwargs.items():
        if name in context_args:
            if value is None:
                return None  # Keras would read it from the outer call's context
            if accepted.get(name, False):
                passed[name] = value  # Keras strips those `call` does not take
        elif name == "mask" and value is None:
            passed[name] = value
        else:
            return None
    if any(accepted.get(name, False) and name not in passed for name in context_args):
        return None
    if not (
        _plain_tensors(args[0], dtype)
        and _compat.autocast_scope() is None
        and not _compat.remat_mode(layer)
        and getattr(layer, "quantization_mode", None) is None
        and layer.activity_regularizer is None
        and not (layer._forward_hooks or layer._forward_pre_hooks)
    ):
        return None
    return passed


class TorchFastCall:
    """Mixin (before the Keras layer class): `__call__` is `call` where `call_kwargs` allows."""

    def __call__(self, *args, **kwargs):
        if _TORCH:
            passed = call_kwargs(self, args, kwargs)
            if passed is not None:
                _compat.mark_called(self)
                return self.call(args[0], **passed)
        return super().__call__(*args, **kwargs)
