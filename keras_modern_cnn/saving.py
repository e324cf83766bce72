"""`.keras` files that load on every backend, whichever one wrote them."""

import json
import os
import zipfile

from keras_modern_cnn import rundir

TORCH_OPTIMIZER_MODULES = "keras.src.backend.torch.optimizers."


def make_backend_portable(archive_path):
    """Rewrite a `.keras` archive written on torch so that it loads on TensorFlow and JAX too.

    On torch, Keras 3.15 builds optimizers as torch-specific subclasses (`torch_sgd.SGD`, ...)
    and records their module in `config.json`; loading such a file compiled on TensorFlow
    imports torch after TensorFlow, which crashes the process. The subclasses add no state,
    so the archive names the public `keras.optimizers` class instead (the file is replaced
    atomically; archives from other backends are left as they are). Returns `archive_path`.
    """
    with zipfile.ZipFile(archive_path) as archive:
        config = json.loads(archive.read("config.json"))
        optimizer = (config.get("compile_config") or {}).get("optimizer")
        if not (isinstance(optimizer, dict)
                and str(optimizer.get("module", "")).startswith(TORCH_OPTIMIZER_MODULES)):
            return archive_path
        optimizer["module"] = "keras.optimizers"
        entries = [(item, archive.read(item.filename)) for item in archive.infolist()]

    def rewrite(temporary):
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as rewritten:
            for item, data in entries:
                if item.filename == "config.json":
                    data = json.dumps(config).encode()
                rewritten.writestr(item, data)

    rundir.atomic_write(archive_path, rewrite)
    return archive_path


def save_model(model, path):
    """`model.save(path)` made atomic (`rundir.atomic_write`) and backend-portable.

    A crash at any instant leaves either the previous file or the complete new one.
    """

    def write(temporary):
        model.save(temporary)
        make_backend_portable(temporary)

    return rundir.atomic_write(path, write)
