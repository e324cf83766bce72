"""KerasTuner hypermodels for every family (installed as `keras_modern_cnn.tuning`).

    from keras_modern_cnn.tuning import HyperResNet, make_tuner
    tuner = make_tuner(HyperResNet(input_shape=(32, 32, 3), classes=10), "random", max_trials=10)
    tuner.search(x_train, y_train, validation_data=(x_test, y_test), epochs=5)

The hypermodels are plain `keras_tuner.HyperModel`s: KerasTuner's own tuners take them too.
"""

from keras_modern_cnn.tuning import hypermodels, search
from keras_modern_cnn.tuning.hypermodels import *  # noqa: F403
from keras_modern_cnn.tuning.search import *  # noqa: F403

__all__ = hypermodels.__all__ + search.__all__
