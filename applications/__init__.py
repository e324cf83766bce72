"""The model zoo: one module per family, each registering its variants from its config table.

Installed as `keras_modern_cnn.applications`; every builder is also exported from the
package root (`keras_modern_cnn.BNLeNet`). Family modules are discovered: adding a family is
adding its module (and its golden row in tests/test_contract.py).
"""

import importlib
import pkgutil

FAMILY_MODULES = [
    importlib.import_module(f"{__name__}.{module.name}")
    for module in pkgutil.iter_modules(__path__)
    if not module.name.startswith("_")
]

__all__ = []
for _module in FAMILY_MODULES:
    globals().update({name: getattr(_module, name) for name in _module.__all__})
    __all__ += _module.__all__
