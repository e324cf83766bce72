"""DropPath: stochastic depth, dropping a residual branch per example while training.

Reference: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016 (arXiv:1603.09382),
per-example as in timm's `DropPath` (Wightman, timm).
"""

import keras

from keras_modern_cnn.validation import check_number


@keras.saving.register_keras_serializable(package="keras_modern_cnn")
class DropPath(keras.layers.Layer):
    """Zero the whole input of an example with probability `rate` in training, else scale it
    by 1 / (1 - rate); the identity at inference. Placed on a residual branch before the add
    (or on a dense layer's new features), it drops that block for the example.

    Args:
        rate: drop probability in [0, 1).
        seed: optional integer seed of the layer's random generator.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(check_number("rate", rate, low=0.0, high=1.0, high_open=True))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (keras.ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        uniform = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = keras.ops.cast(uniform < keep, inputs.dtype)
        return inputs * mask / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
