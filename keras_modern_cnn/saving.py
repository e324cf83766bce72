"""`.keras` files that load on every backend, whichever one wrote them."""

import json
import os
import tempfile
import zipfile

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
        directory = os.path.dirname(os.path.abspath(archive_path))
        descriptor, staged = tempfile.mkstemp(suffix=".keras.tmp", dir=directory)
        os.close(descriptor)
        try:
            with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as rewritten:
                for item in archive.infolist():
                    data = archive.read(item.filename)
                    if item.filename == "config.json":
                        data = json.dumps(config).encode()
                    rewritten.writestr(item, data)
            with open(staged, "rb") as stream:
                os.fsync(stream.fileno())
            os.replace(staged, archive_path)
        except BaseException:
            os.unlink(staged)
            raise
    return archive_path


def save_model(model, path):
    """`model.save(path)` made atomic and backend-portable.

    The archive is written beside `path` under a temporary name, made portable
    (`make_backend_portable`), flushed to disk and renamed into place, so a crash at any
    instant leaves either the previous file or the complete new one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, staged = tempfile.mkstemp(suffix=".keras", dir=directory)
    os.close(descriptor)
    try:
        model.save(staged)
        make_backend_portable(staged)
        with open(staged, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(staged, path)
    except BaseException:
        if os.path.exists(staged):
            os.unlink(staged)
        raise
    return path
