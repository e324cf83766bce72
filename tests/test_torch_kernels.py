"""`keras_modern_cnn.layers.Conv2D`, `MaxPooling2D`, `AveragePooling2D` (issue 31).

On TensorFlow and JAX they are Keras's layers; on torch, channels-last calls run PyTorch's
kernels on zero-copy views, and Keras's path (`torch_kernels.disabled()`) is the reference the
fast path is held equal to: outputs and gradients, layer by layer and through whole tiny models.
"""

import keras
import numpy as np
import pytest

from keras_modern_cnn import _compat, layers
from keras_modern_cnn.layers import BatchNorm
from keras_modern_cnn.layers import torch_kernels

ON_TORCH = keras.backend.backend() == "torch"
torch_only = pytest.mark.skipif(
    not ON_TORCH, reason="the PyTorch kernels run on the torch backend only; on TensorFlow and "
    "JAX the layers are Keras's (test_layers_compute_what_keras_layers_compute)"
)

CONVOLUTIONS = [
    # (layer kwargs, input shape): "same" symmetric and asymmetric (stride 2 on an even side),
    # "valid", non-square kernels and strides, dilation, groups, bias, a fused activation.
    (dict(filters=4, kernel_size=3, padding="same"), (2, 7, 7, 3)),
    (dict(filters=4, kernel_size=3, strides=2, padding="same", use_bias=False), (2, 8, 8, 3)),
    (dict(filters=4, kernel_size=(3, 1), strides=(2, 1), activation="relu"), (2, 9, 6, 3)),
    (dict(filters=4, kernel_size=3, padding="same", dilation_rate=2), (2, 9, 9, 3)),
    (dict(filters=6, kernel_size=3, padding="same", groups=2, use_bias=False), (2, 5, 5, 4)),
    (dict(filters=5, kernel_size=1), (2, 4, 4, 6)),
    (dict(filters=4, kernel_size=7, strides=2, padding="valid"), (2, 13, 13, 3)),
]
POOLINGS = [
    (layers.MaxPooling2D, dict(pool_size=3, strides=2, padding="same"), (2, 9, 9, 3)),
    (layers.MaxPooling2D, dict(pool_size=3, strides=2, padding="same"), (2, 8, 8, 3)),  # asymmetric
    (layers.MaxPooling2D, dict(pool_size=2), (2, 8, 8, 3)),
    (layers.AveragePooling2D, dict(pool_size=2, strides=2), (2, 8, 8, 3)),
    (layers.AveragePooling2D, dict(pool_size=3, strides=1, padding="same"), (2, 6, 6, 3)),
]
KERAS_TWINS = {
    layers.Conv2D: keras.layers.Conv2D,
    layers.MaxPooling2D: keras.layers.MaxPooling2D,
    layers.AveragePooling2D: keras.layers.AveragePooling2D,
    layers.Activation: keras.layers.Activation,
}
CASES = [(layers.Conv2D, kwargs, shape) for kwargs, shape in CONVOLUTIONS] + POOLINGS
TWIN_CASES = CASES + [(layers.Activation, dict(activation="relu"), (2, 3, 3, 2))]


def case_id(case):
    cls, kwargs, shape = case
    return f"{cls.__name__}-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def random(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def outputs_and_gradients(layer, x, upstream):
    """Outputs and the gradients of sum(outputs * upstream) for the input and every weight."""
    import torch

    inputs = torch.tensor(x, requires_grad=True)
    outputs = layer(inputs)
    weights = [v.value for v in layer.trainable_variables]
    gradients = torch.autograd.grad((outputs * torch.tensor(upstream)).sum(), [inputs, *weights])
    return [outputs.detach().numpy(), *(g.numpy() for g in gradients)]


def test_merge_layers_compute_what_keras_layers_compute():
    x, y = random((2, 3, 3, 2)), random((2, 3, 3, 2), seed=1)
    for ours, theirs in ((layers.Add(name="merge"), keras.layers.Add(name="merge")),
                         (layers.Concatenate(name="merge"), keras.layers.Concatenate(name="merge"))):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours([x, y])),
                                      keras.ops.convert_to_numpy(theirs([x, y])))
        assert ours.get_config() == theirs.get_config()
        assert keras.saving.get_registered_name(type(ours)) == (
            f"keras_modern_cnn>{type(theirs).__name__}")


def test_layers_compute_what_keras_layers_compute():
    """Same config, weights and outputs as Keras's layer on every backend (on torch through the
    PyTorch kernels), registered under the package's name. (One test over every case: each
    test item costs a Keras session reset.)"""
    for cls, kwargs, shape in TWIN_CASES:
        ours, theirs = cls(name="layer", **kwargs), KERAS_TWINS[cls](name="layer", **kwargs)
        x = random(shape)
        ours.build(shape)
        theirs.build(shape)
        for source, target in zip(ours.weights, theirs.weights):
            source.assign(random(source.shape, seed=1))
            target.assign(source.value)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)),
            rtol=1e-6, atol=1e-6, err_msg=case_id((cls, kwargs, shape)),
        )
        assert ours.get_config() == theirs.get_config()
        assert keras.saving.get_registered_name(cls) == f"keras_modern_cnn>{cls.__name__}"
        assert isinstance(ours, KERAS_TWINS[cls])


@torch_only
def test_torch_kernels_equal_keras_path_outputs_and_gradients():
    """Outputs and the gradients of the input and every weight, for each case (one test item)."""
    for cls, kwargs, shape in CASES:
        layer = cls(**kwargs)
        layer.build(shape)
        for weight in layer.weights:
            weight.assign(random(weight.shape, seed=1))
        x = random(shape)
        upstream = random(layer.compute_output_shape(shape), seed=2)
        fast = outputs_and_gradients(layer, x, upstream)
        with torch_kernels.disabled():
            reference = outputs_and_gradients(layer, x, upstream)
        assert len(fast) == len(reference) == 1 + 1 + len(layer.trainable_variables)
        for got, expected in zip(fast, reference):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max(),
                                       err_msg=case_id((cls, kwargs, shape)))


def copies(profile):
    """`aten::copy_` events of a profile, except those PyTorch's convolution backward makes
    itself (it makes them for torchvision's channels_last models too)."""

    def inside_convolution_backward(event):
        while event is not None:
            if event.name == "aten::convolution_backward":
                return True
            event = event.cpu_parent
        return False

    return [e for e in profile.events()
            if e.name == "aten::copy_" and not inside_convolution_backward(e)]


@torch_only
def test_torch_conv_makes_no_copy_and_keeps_keras_weights():
    """The point of the path: channels_last views in and out, and a kernel stored for torch, so
    no copy forward or backward outside PyTorch's own convolution backward (Keras's path copies
    the input twice per call), while the variable keeps Keras's shape and values and is the
    parameter the layer registers (`_compat.torch_parameter`)."""
    import torch

    layer = layers.Conv2D(8, 3, padding="same")
    layer.build((2, 6, 6, 4))
    kernel = layer.kernel.value
    assert tuple(kernel.shape) == (3, 3, 4, 8) and kernel is _compat.torch_parameter(layer.kernel)
    assert any(parameter is kernel for parameter in layer.parameters())
    assert kernel.permute(3, 2, 0, 1).is_contiguous(memory_format=torch.channels_last)
    values = random((3, 3, 4, 8), seed=3)
    layer.kernel.assign(values)  # as loading weights does: the values, in the same strides
    np.testing.assert_array_equal(layer.kernel.numpy(), values)
    assert layer.kernel.value is kernel

    inputs = torch.tensor(random((2, 6, 6, 4)), requires_grad=True)
    upstream = torch.tensor(random((2, 6, 6, 8), seed=1))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        outputs = layer(inputs)
        (outputs * upstream).sum().backward()
    assert outputs.is_contiguous() and len(copies(profile)) == 0
    assert kernel.grad.stride() == kernel.stride()
    with torch_kernels.disabled(), torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU]
    ) as profile:
        (layer(inputs) * upstream).sum().backward()
    assert len(copies(profile)) >= 2


@torch_only
def test_kernels_stored_otherwise_are_transposed_and_cached_in_inference():
    """A layer built with the kernels off keeps an HWIO-contiguous kernel: the fast path then
    transposes it, and in inference reuses the result until the weights change."""
    import torch

    with torch_kernels.disabled():
        layer = layers.Conv2D(4, 3)
        layer.build((1, 5, 5, 2))
    assert layer.kernel.value.is_contiguous()
    x = torch.tensor(random((1, 5, 5, 2)))
    with torch.no_grad():
        first = layer(x)
        cached = layer._torch_weight_cache.weight
        np.testing.assert_array_equal(layer(x).numpy(), first.numpy())
        assert layer._torch_weight_cache.weight is cached
        layer.kernel.assign(layer.kernel.value * 2.0)  # in place: the version counter moves
        np.testing.assert_allclose(layer(x).numpy(), 2.0 * first.numpy() - layer.bias.numpy(),
                                   rtol=1e-6, atol=1e-6)
        assert layer._torch_weight_cache.weight is not cached
    upstream = random((1, 3, 3, 4), seed=2)
    fast = outputs_and_gradients(layer, random((1, 5, 5, 2)), upstream)
    with torch_kernels.disabled():
        reference = outputs_and_gradients(layer, random((1, 5, 5, 2)), upstream)
    for got, expected in zip(fast, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert layer.kernel.value.grad is None or layer.kernel.value.grad.is_contiguous()


def tiny_network():
    """The zoo's patterns in a few layers: a padded strided stem, max pooling, a residual
    bottleneck (ResNet), a dense concatenation and an average-pooled transition (DenseNet)."""
    x = inputs = keras.Input((17, 17, 3))
    x = keras.layers.ZeroPadding2D(3)(x)
    x = layers.Conv2D(8, 7, strides=2)(x)
    x = keras.layers.Activation("relu")(BatchNorm()(x))
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    y = layers.Conv2D(4, 1, use_bias=False)(x)
    y = keras.layers.Activation("relu")(BatchNorm()(y))
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Concatenate()([x, layers.Conv2D(4, 3, padding="same", groups=2)(x)])
    x = layers.AveragePooling2D(2)(layers.Conv2D(6, 1)(x))
    x = layers.Conv2D(5, 3, strides=2, padding="same")(x)  # asymmetric "same"
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


@torch_only
def test_tiny_network_trains_equal_with_and_without_torch_kernels():
    """Training-mode outputs, every weight's gradient, and inference outputs (after the moving
    statistics moved) equal to Keras's path, in float64 so that the comparison sees the
    computation rather than float32 round-off in two summation orders."""
    import torch

    keras.config.set_dtype_policy("float64")
    model = tiny_network()
    x = random((2, 17, 17, 3)).astype("float64")
    statistics = [v.numpy() for v in model.non_trainable_variables]

    def run():
        for variable, value in zip(model.non_trainable_variables, statistics):
            variable.assign(value)  # the training call below moves the moving statistics
        outputs = model(x, training=True)
        weights = [v.value for v in model.trainable_variables]
        gradients = torch.autograd.grad((outputs**2).sum(), weights)
        return [outputs.detach().numpy(), model(x, training=False).detach().numpy(),
                *(g.numpy() for g in gradients)]

    fast = run()
    with torch_kernels.disabled():
        reference = run()
    assert len(reference) == 2 + len(model.trainable_variables)
    # Measured against the largest value: the conv bias before a BatchNorm has true gradient 0.
    scale = max(np.abs(g).max() for g in reference)
    for got, expected in zip(fast, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11 * scale)
