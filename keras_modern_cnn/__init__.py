"""keras-modern-cnn: the 'Modern CNNs' of Dive into Deep Learning as Keras 3 applications.

    import keras_modern_cnn as kmc
    model = kmc.get_model("bn_lenet")          # or kmc.BNLeNet(), kmc.DenseNet(growth_rate=32)

The package loads Keras, the zoo and its custom layers on first use of any name below, or as
soon as Keras is imported (at once if it already is), so `kmc --help` and `kmc list` start
without a backend while `keras.saving.load_model` always finds the custom layers.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types

from keras_modern_cnn.version import __version__

# Public names of the API that are also the names of sub-modules: the name means the public
# object (`kmc.export(model, path)`), whatever was imported first. tests/test_package.py
# checks this set against `_api.__all__`, so a new clash cannot go unnoticed.
PUBLIC_OVER_SUBMODULE = frozenset({"export"})


def _load():
    """Import the public API (Keras, the zoo, the custom layers) into this namespace."""
    api = importlib.import_module("keras_modern_cnn._api")
    globals().update({name: getattr(api, name) for name in api.__all__})
    return api


def __getattr__(name):
    if name not in PUBLIC_OVER_SUBMODULE and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # a sub-module: only that
    api = _load()
    if name not in api.__all__:
        raise AttributeError(f"module 'keras_modern_cnn' has no attribute {name!r}")
    return getattr(api, name)


def __dir__():
    return sorted(set(globals()) | set(_load().__all__))


class _Package(types.ModuleType):
    """This package's module type: importing a sub-module named like a public object (the
    `export` module, imported by `from keras_modern_cnn.export import load_served` or by
    Keras's import hook below) does not rebind the public name to the module, as importlib
    otherwise does; the sub-module stays in `sys.modules` for `from ... import ...`."""

    def __setattr__(self, name, value):
        if name in PUBLIC_OVER_SUBMODULE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


# The modules whose classes `keras.saving.load_model` must find registered. They import only
# Keras and `validation`, so importing them never cycles back into a half-imported module.
SERIALIZABLE_MODULES = ("keras_modern_cnn.layers", "keras_modern_cnn.losses", "keras_modern_cnn.metrics")


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `keras` is first imported, imports `SERIALIZABLE_MODULES`
    right after it, so the custom layers are registered before any `load_model` can need them.
    (Not the whole API: Keras may be imported half-way through one of this package's modules.)
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            execute_keras = spec.loader.exec_module

            def exec_module(module):
                execute_keras(module)
                for name in SERIALIZABLE_MODULES:
                    importlib.import_module(name)

            spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _load()
else:
    sys.meta_path.insert(0, _RegisterAfterKeras())
