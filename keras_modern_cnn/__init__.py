"""keras-modern-cnn: the 'Modern CNNs' of Dive into Deep Learning as Keras 3 applications.

    import keras_modern_cnn as kmc
    model = kmc.get_model("bn_lenet")          # or kmc.BNLeNet(), kmc.DenseNet(growth_rate=32)

The package loads Keras, the zoo and its custom layers on first use of any name below (or at
import when Keras is already imported), so `kmc --help` and `kmc list` start without a backend.
Loading registers the custom layers: `keras.saving.load_model` then reloads every model.
"""

import importlib
import importlib.util
import sys

from keras_modern_cnn.version import __version__


def _load():
    """Import the public API (Keras, the zoo, the custom layers) into this namespace."""
    api = importlib.import_module("keras_modern_cnn._api")
    globals().update({name: getattr(api, name) for name in api.__all__})
    return api


def __getattr__(name):
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # a sub-module: only that
    api = _load()
    if name not in api.__all__:
        raise AttributeError(f"module 'keras_modern_cnn' has no attribute {name!r}")
    return getattr(api, name)


def __dir__():
    return sorted(set(globals()) | set(_load().__all__))


if "keras" in sys.modules:
    _load()
