"""`keras_modern_cnn.layers.fast_call`: the package's layers call `call` directly on torch where
Keras's `Layer.__call__` would only wrap it (issue 31).

It leans on Keras 3.15 internals (pinned in tests/test_compat.py); here the direct call is held
equal to `Layer.__call__` (outputs, gradients, moving statistics), with every case it must leave
to Keras shown to reach Keras.
"""

import keras
import numpy as np
import pytest

from keras_modern_cnn import layers
from keras_modern_cnn.layers import BatchNorm, fast_call

ON_TORCH = keras.backend.backend() == "torch"
torch_only = pytest.mark.skipif(
    not ON_TORCH, reason="the direct call exists on the torch backend only (elsewhere the layers "
    "are Keras's: tests/test_torch_kernels.py)"
)


def random(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def tiny_network():
    """Every layer with the direct call, as the zoo composes them."""
    x = inputs = keras.Input((9, 9, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = layers.Activation("relu")(BatchNorm()(x))
    x = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    y = layers.Conv2D(8, 1, use_bias=False)(x)
    x = layers.Add()([x, BatchNorm()(y)])
    x = layers.Concatenate()([x, layers.Conv2D(4, 3, padding="same")(x)])
    x = layers.AveragePooling2D(2)(layers.Activation("relu")(x))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


DIRECT = (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D, BatchNorm,
          layers.Activation, layers.Add, layers.Concatenate)


@torch_only
def test_model_calls_reach_call_directly_and_equal_keras_call(monkeypatch):
    """In training and in inference, no layer of the package goes through `Layer.__call__`, and
    outputs, gradients and moving statistics equal those of Keras's `__call__`."""
    import torch

    model = tiny_network()
    x = random((2, 9, 9, 3))
    statistics = [v.numpy() for v in model.non_trainable_variables]
    through_keras = []
    keras_call = keras.layers.Layer.__call__

    def counting_call(self, *args, **kwargs):
        through_keras.append(type(self))
        return keras_call(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__call__", counting_call)

    def run():
        for variable, value in zip(model.non_trainable_variables, statistics):
            variable.assign(value)
        outputs = model(x, training=True)
        weights = [v.value for v in model.trainable_variables]
        gradients = torch.autograd.grad((outputs**2).sum(), weights)
        moved = [v.numpy() for v in model.non_trainable_variables]
        return [outputs.detach().numpy(), model(x, training=False).detach().numpy(),
                model.predict_on_batch(x), *(g.numpy() for g in gradients), *moved]

    direct = run()
    assert not [cls for cls in through_keras if issubclass(cls, DIRECT)], through_keras
    monkeypatch.setattr(fast_call, "call_kwargs", lambda *args: None)
    through_keras.clear()
    reference = run()
    assert {cls for cls in through_keras if issubclass(cls, DIRECT)} == set(DIRECT)
    for got, expected in zip(direct, reference):
        np.testing.assert_array_equal(got, expected)


@torch_only
def test_calls_with_more_to_do_go_through_keras():
    """Symbolic inputs, masks, an unresolved `training`, an autocast scope, another dtype,
    remat, activity regularizers and module hooks: Keras's `__call__`."""
    import torch
    from keras.src.backend import AutocastScope

    x = torch.tensor(random((2, 4, 4, 3)))
    bn, relu = BatchNorm(), layers.Activation("relu")
    bn.build(x.shape)
    relu.build(x.shape)
    assert fast_call.call_kwargs(bn, (x,), {"training": True}) == {"training": True}
    assert fast_call.call_kwargs(relu, (x,), {"training": True}) == {}
    assert fast_call.call_kwargs(bn, (x,), {}) is None  # training from the outer call's context
    assert fast_call.call_kwargs(bn, (x,), {"training": None}) is None
    assert fast_call.call_kwargs(bn, (keras.Input((4, 4, 3)),), {"training": True}) is None
    assert fast_call.call_kwargs(relu, (x.double(),), {}) is None
    assert fast_call.call_kwargs(relu, (x,), {"other": 1}) is None
    masked = torch.tensor(random((2, 4, 4, 3)))
    masked._keras_mask = torch.ones((2, 4, 4), dtype=torch.bool)
    assert fast_call.call_kwargs(bn, (masked,), {"training": True}) is None
    with AutocastScope("float16"):
        assert fast_call.call_kwargs(relu, (x,), {}) is None
    handle = relu.register_forward_hook(lambda *args: None)
    assert fast_call.call_kwargs(relu, (x,), {}) is None
    handle.remove()
    assert fast_call.call_kwargs(layers.Activation("relu", activity_regularizer="l2"), (x,),
                                 {}) is None
    with keras.RematScope(mode="full"):
        rematerialized = layers.Activation("relu")
    rematerialized.build(x.shape)
    assert fast_call.call_kwargs(rematerialized, (x,), {}) is None
    unbuilt = layers.Conv2D(2, 1)
    assert fast_call.call_kwargs(unbuilt, (x,), {}) is None
    unbuilt(x)  # Keras's __call__ builds it
    assert fast_call.call_kwargs(unbuilt, (x,), {}) == {}


@torch_only
def test_training_flag_from_an_outer_call_still_reaches_batch_norm():
    """A layer calling BatchNorm without `training` inside a training call: Keras resolves it
    from the call context, so the statistics move, as with Keras's `__call__`."""

    class Wrapper(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.bn = BatchNorm()

        def call(self, inputs):
            return self.bn(inputs)

    wrapper = Wrapper()
    x = random((4, 3)) * 3.0 + 5.0
    wrapper(x, training=True)
    assert np.abs(wrapper.bn.moving_mean.numpy()).max() > 0.1
