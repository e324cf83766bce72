"""PyTorch's convolution and pooling kernels on zero-copy views of channels-last tensors.

Keras 3.15 runs a channels-last `Conv2D` on torch as: permute the NHWC input to NCHW and make it
contiguous (a copy), copy it again into PyTorch's channels_last memory format, permute the HWIO
kernel to OIHW and copy it into channels_last with torch's general strided copy, convolve, and
permute back; pooling makes the NCHW copy and hands on an NCHW-strided view, which the next
convolution copies again. For ResNet50 that is ~700 copies per training step, 30 % of it.

An NHWC-contiguous tensor *is* an NCHW tensor in PyTorch's channels_last memory format, so here
`x.permute(0, 3, 1, 2)` feeds the kernels with no copy, and their channels_last outputs permute
back to NHWC-contiguous tensors with no copy. The kernel keeps Keras's HWIO shape and values
(files stay portable), but `store_kernel_for_torch` stores it in memory in the order O, H, W, I:
its OIHW permutation is then PyTorch's channels_last weight, a view, and the weight gradient
comes back in the parameter's own strides (no copy either way). A kernel stored otherwise (a
layer built with the kernels off, a LoRA sum) is converted by one 2-D transpose: in memory an
HWIO kernel is the matrix `(H*W*I, O)` and the weight its transpose, which torch runs ~5x faster
than the general 4-D copy; the gradient goes back the same way (`_KernelToTorch`), and in
inference the converted weight is cached until the variable changes.

The functions take and return torch tensors in Keras's layouts; `keras_modern_cnn.layers.Conv2D`
and the pooling layers call them on the torch backend (tests/test_torch_kernels.py holds them
equal to Keras's path). Reference: PyTorch's channels_last memory format tutorial,
https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html
"""

import torch
import torch.nn.functional as F

from keras_modern_cnn import _compat


def same_padding(size, kernel, stride, dilation=1):
    """`(before, after)` zero padding of Keras's "same" along one axis (more after if odd), as
    `keras.src.backend.torch.nn._compute_padding_length`."""
    effective = (kernel - 1) * dilation + 1
    if stride == 1:
        total = effective - 1
    else:
        total = max(0, (-(-size // stride) - 1) * stride + effective - size)
    return total // 2, total - total // 2


def _padding(inputs_nhwc, kernel_size, strides, padding, dilation):
    """`(inputs, torch_padding)`: symmetric "same" padding becomes the kernel's own padding
    argument; asymmetric padding is applied to the NHWC tensor (one copy, as in Keras)."""
    if padding == "valid":
        return inputs_nhwc, (0, 0)
    pads = [
        same_padding(inputs_nhwc.shape[1 + axis], kernel_size[axis], strides[axis], dilation[axis])
        for axis in range(2)
    ]
    if all(before == after for before, after in pads):
        return inputs_nhwc, tuple(before for before, _ in pads)
    (top, bottom), (left, right) = pads
    return F.pad(inputs_nhwc, (0, 0, left, right, top, bottom)), (0, 0)


class _KernelToTorch(torch.autograd.Function):
    """HWIO kernel -> OIHW weight in channels_last memory, by one 2-D transpose each way.

    Written as a Function because autograd's own backward of the same view chain ends in a 4-D
    strided gradient, which the parameter's gradient accumulation then copies with the slow
    general copy.
    """

    @staticmethod
    def forward(ctx, kernel):
        ctx.kernel_shape = kernel.shape
        return kernel_to_torch(kernel)

    @staticmethod
    def backward(ctx, grad):
        out_channels = grad.shape[0]
        # OIHW -> (O, H, W, I): a view when the gradient is channels_last, as the kernels give it.
        matrix = grad.permute(0, 2, 3, 1).reshape(out_channels, -1)
        return matrix.t().contiguous().view(ctx.kernel_shape)


def in_torch_layout(kernel):
    """Whether the HWIO `kernel` is stored O, H, W, I in memory (its OIHW view is channels_last)."""
    return kernel.permute(3, 2, 0, 1).is_contiguous(memory_format=torch.channels_last)


def store_kernel_for_torch(variable):
    """Re-store the parameter behind the Keras variable `variable` (a 4-D HWIO kernel) in memory
    order O, H, W, I: same shape, same values, other strides. Call it in `build`, before Keras
    tracks the layer's parameters (through `keras_modern_cnn._compat`: Keras 3.15 keeps it in
    `Variable._value`, and `assign` copies into it keeping its strides)."""
    value = _compat.torch_parameter(variable)
    if value is None or value.ndim != 4 or in_torch_layout(value):
        return
    with torch.no_grad():
        stored = value.detach().permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
    _compat.replace_torch_parameter(variable, torch.nn.Parameter(stored, requires_grad=value.requires_grad))


def kernel_to_torch(kernel):
    """The HWIO `kernel` as PyTorch's OIHW weight, stored channels_last (no autograd node of its
    own: use `torch_weight` where gradients flow)."""
    height, width, in_channels, out_channels = kernel.shape
    matrix = kernel.reshape(-1, out_channels).t().contiguous()
    return matrix.view(out_channels, height, width, in_channels).permute(0, 3, 1, 2)


class WeightCache:
    """A layer's converted weight, kept outside autograd while its source is unchanged."""

    __slots__ = ("source", "version", "weight")

    def __init__(self):
        self.source = self.version = self.weight = None


def torch_weight(kernel, cache):
    """PyTorch's OIHW channels_last weight for the HWIO `kernel`: a view when it is stored for
    torch, else `kernel_to_torch(kernel)`, differentiable, and outside autograd reused from
    `cache` (a `WeightCache`) while `kernel` is the same tensor, unchanged since (its version
    counter)."""
    if in_torch_layout(kernel):
        return kernel.permute(3, 2, 0, 1)
    if torch.is_grad_enabled() and kernel.requires_grad:
        return _KernelToTorch.apply(kernel)
    if cache is None or torch.compiler.is_compiling():
        return kernel_to_torch(kernel)
    if cache.source is kernel and cache.version == kernel._version:
        return cache.weight
    cache.weight = kernel_to_torch(kernel)
    cache.source, cache.version = kernel, kernel._version
    return cache.weight


def conv2d(inputs, kernel, bias, *, strides, padding, dilation_rate, cache):
    """Keras's channels-last `Conv2D` convolution (bias included) on torch tensors: NHWC
    `inputs`, HWIO `kernel`; returns NHWC (contiguous when `inputs` is)."""
    groups = inputs.shape[-1] // kernel.shape[2]
    inputs, torch_padding = _padding(inputs, kernel.shape[:2], strides, padding, dilation_rate)
    outputs = F.conv2d(
        inputs.permute(0, 3, 1, 2), torch_weight(kernel, cache), bias, stride=strides,
        padding=torch_padding, dilation=dilation_rate, groups=groups,
    )
    return outputs.permute(0, 2, 3, 1)


def pooling_applies(inputs, pool_size, strides, padding):
    """Whether `pool2d` computes what Keras's torch pooling does: "valid", or "same" padding
    that is symmetric (Keras pads asymmetric "same" with replicated edges, a copy either way)."""
    if padding == "valid":
        return True
    return all(
        before == after
        for before, after in (
            same_padding(inputs.shape[1 + axis], pool_size[axis], strides[axis])
            for axis in range(2)
        )
    )


def pool2d(inputs, *, mode, pool_size, strides, padding):
    """Keras's channels-last max or average pooling ("average" excludes the padding from the
    count, as Keras) on an NHWC torch tensor, where `pooling_applies`."""
    _, torch_padding = _padding(inputs, pool_size, strides, padding, (1, 1))
    x = inputs.permute(0, 3, 1, 2)
    if mode == "max":
        outputs = F.max_pool2d(x, pool_size, strides, torch_padding)
    else:
        outputs = F.avg_pool2d(x, pool_size, strides, torch_padding, count_include_pad=False)
    return outputs.permute(0, 2, 3, 1)
