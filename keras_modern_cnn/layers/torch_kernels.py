"""The switch between the package's PyTorch convolution/pooling kernels and Keras's torch ops.

On the torch backend, `Conv2D`, `MaxPooling2D` and `AveragePooling2D` of
`keras_modern_cnn.layers` call PyTorch's kernels on zero-copy views where these compute what
Keras's path computes; elsewhere (TensorFlow, JAX, or a case they do not cover) the layers are
plain Keras. `disabled()` forces Keras's path, for tests holding the two equal and for
benchmarks measuring what the kernels buy (`BatchNorm` has its own switch,
`batch_norm.USE_TORCH_KERNELS`). This module imports no backend.
"""

import contextlib

_enabled = True


def enabled():
    """Whether the layers may use PyTorch's kernels (on the torch backend)."""
    return _enabled


@contextlib.contextmanager
def disabled():
    """Run every layer through its portable Keras path while the context is open."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous
