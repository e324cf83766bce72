"""Saving and loading `.keras` models: the one home every command and the tuner go through.

`save_model` writes atomically (`keras_modern_cnn.files.atomic_write`) a file that loads and
trains on every backend, whichever one wrote it; `load_model` loads one with the package's
custom layers registered, or says in one line why it cannot.
"""

import json
import os
import zipfile
from typing import TYPE_CHECKING, Union

from keras_modern_cnn._compat import TORCH_OPTIMIZER_MODULES
from keras_modern_cnn.files import atomic_write, block_point, variables_bytes

if TYPE_CHECKING:
    import keras

PathLike = Union[str, os.PathLike]


def make_backend_portable(archive_path: PathLike) -> PathLike:
    """Rewrite a `.keras` archive written on torch so that it loads on TensorFlow and JAX too.

    On torch, Keras 3.15 builds optimizers as torch-specific subclasses (`torch_sgd.SGD`, ...)
    and records their module in `config.json`; loading such a file compiled on TensorFlow
    imports torch after TensorFlow, which crashes the process. The subclasses add no state,
    so the archive names the public `keras.optimizers` class instead (the file is replaced
    atomically; archives from other backends are left as they are). Returns `archive_path`.
    """
    if not names_torch_optimizer(archive_path):
        return archive_path
    with zipfile.ZipFile(archive_path) as archive:
        config = json.loads(archive.read("config.json"))
        config["compile_config"]["optimizer"]["module"] = "keras.optimizers"
        entries = [(item, archive.read(item.filename)) for item in archive.infolist()]

    def rewrite(temporary):
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as rewritten:
            for item, data in entries:
                if item.filename == "config.json":
                    data = json.dumps(config).encode()
                rewritten.writestr(item, data)

    atomic_write(archive_path, rewrite)
    return archive_path


def save_model(model: "keras.Model", path: PathLike) -> str:
    """`model.save(path)` made atomic and backend-portable; returns `path`.

    A crash at any instant leaves either the previous file or the complete new one; a disk
    without room for it (checked first) is a one-line `files.DiskFullError`.
    """

    def write(temporary):
        model.save(temporary)
        make_backend_portable(temporary)
        block_point("model-save")

    optimizer = getattr(model, "optimizer", None)
    variables = list(model.weights) + list(getattr(optimizer, "variables", None) or [])
    return atomic_write(path, write, expected_bytes=variables_bytes(variables))


def names_torch_optimizer(archive_path: PathLike) -> bool:
    """True for a `.keras` archive whose compile state names a torch-only optimizer class
    (written by `model.save` on torch, not by `save_model`); False for anything else."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    optimizer = (config.get("compile_config") or {}).get("optimizer")
    return isinstance(optimizer, dict) and str(optimizer.get("module", "")).startswith(
        TORCH_OPTIMIZER_MODULES)


def load_model(path: PathLike) -> "keras.Model":
    """A `.keras` model (written by `kmc`, `save_model` or `model.save`), or a one-line error
    naming the file and what is wrong with it (missing, a folder, truncated, damaged, not a
    Keras model).

    A file written by `model.save` on torch names torch-only optimizer classes (README, known
    issues): on another backend it is loaded from a portable copy (`make_backend_portable`),
    so it trains there too; the file itself is left as it is.
    """
    import tempfile

    import keras

    import keras_modern_cnn
    from keras_modern_cnn import torch_graph

    keras_modern_cnn._load()  # registers the custom layers for safe loading
    check_model_file(path)
    try:
        if keras.backend.backend() != "torch" and names_torch_optimizer(path):
            with tempfile.TemporaryDirectory() as folder:
                portable = os.path.join(folder, "portable.keras")
                with open(path, "rb") as source, open(portable, "wb") as copy:
                    copy.write(source.read())
                return keras.saving.load_model(make_backend_portable(portable))
        model = keras.saving.load_model(path)
    except Exception as error:  # a foreign file, a missing custom object
        raise ValueError(
            f"Cannot load the model ({type(error).__name__}: {' '.join(str(error).split())[:200]}). "
            f"Received: model_file={str(path)!r}"
        ) from None
    return torch_graph.install(model)


def check_model_file(path: PathLike) -> None:
    """Fail in one line, saying what it is, unless `path` is a complete `.keras` archive."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"No such model file. Received: model_file={name!r}")
    if os.path.isdir(name):
        raise ValueError(
            f"{name} is a folder, not a .keras model file (kmc reads the model.keras a run "
            f"writes). Received: model_file={name!r}"
        )
    if name.endswith((".h5", ".hdf5")):  # Keras 2's format: Keras reads it itself
        return
    size = os.path.getsize(name)
    problem = None
    try:
        with zipfile.ZipFile(name) as archive:
            if "config.json" not in archive.namelist():
                problem = "a zip archive, but not a Keras model (it has no config.json)"
            else:
                damaged = archive.testzip()
                if damaged is not None:
                    problem = f"damaged: its member {damaged} fails its checksum"
    except (zipfile.BadZipFile, EOFError, OSError):
        problem = (f"not a complete .keras file: not a readable zip archive ({size} bytes; "
                   f"truncated by an interrupted copy or download?)")
    if problem:
        raise ValueError(f"{name} is {problem}. Received: model_file={name!r}")
