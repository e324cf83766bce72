"""torchvision and timm model definitions for the conversion tests, importable beside a CPU torch.

PyPI's torchvision 0.28.0 wheel is a CUDA build: beside the CPU torch `make` installs
(.ci/constraints.txt), its compiled operators do not load, and `import torchvision` fails while
registering the fake kernel of `torchvision::nms` ("operator torchvision::nms does not exist").
timm imports torchvision, so it fails too. The model definitions the tests use are pure Python
and need no compiled operator; defining the schemas of the two operators torchvision registers
kernels for at import (`nms`, `qnms`, as its C++ library would) with `torch.library` lets the
import go through. Where torchvision's own library does load (a matching CPU build, or a GPU
machine), the operators exist and nothing is defined. Detection ops then stay unusable: these
tests never call them.

The one place the tests (and benchmarks/torch_native.py, weights.py) import torchvision or timm:
`torchvision()` and `timm()` below.
"""

import functools
import importlib

# The schemas of torchvision/csrc/ops/{nms,quantized/qnms}.cpp (torchvision 0.28).
_OPERATOR_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARIES = []  # keep the torch.library.Library objects (their schemas) alive


@functools.lru_cache(maxsize=None)
def _define_missing_operators():
    """Define `torchvision::nms`/`qnms` when torchvision's compiled library cannot provide them."""
    import glob
    import importlib.util
    import os

    import torch

    if _operator_exists("torchvision::nms"):
        return  # torchvision (or an earlier call) registered them
    spec = importlib.util.find_spec("torchvision")
    for library in glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so")):
        try:
            torch.ops.load_library(library)  # what torchvision's import tries first
        except OSError:
            pass  # the CUDA build beside a CPU torch
    if _operator_exists("torchvision::nms"):
        return
    library = torch.library.Library("torchvision", "DEF")
    for schema in _OPERATOR_SCHEMAS.values():
        library.define(schema)
    _LIBRARIES.append(library)


def _operator_exists(name):
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(name, "")
        return True
    except RuntimeError:
        return False


def torchvision():
    """`torchvision.models`, importable beside a CPU torch (see the module docstring)."""
    _define_missing_operators()
    return importlib.import_module("torchvision.models")


def timm():
    """`timm`, which imports torchvision (see the module docstring)."""
    _define_missing_operators()
    return importlib.import_module("timm")
