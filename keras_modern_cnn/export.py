"""Export a model for serving or sharing: SavedModel, `.keras`, weights-only, ONNX.

A thin layer over Keras (`model.export`, `model.save`, `model.save_weights`) that adds what
deployment needs: validated arguments, and writes that never destroy what is already on disk
(the export goes to a temporary sibling first and replaces the target only once complete).
SavedModel export works from TensorFlow and from JAX (Keras converts through jax2tf).
"""

import importlib.util
import os
import shutil
import tempfile

import keras

FORMATS = ("saved_model", "keras", "weights", "onnx")


def _check_target(path, format, overwrite):
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`path` must be a file or directory path. Received: path={path!r}")
    path = os.fspath(path)
    if format == "keras" and not path.endswith(".keras"):
        raise ValueError(f"A `.keras` export needs a path ending in '.keras'. Received: path={path!r}")
    if format == "weights" and not path.endswith(".weights.h5"):
        raise ValueError(
            f"A weights export needs a path ending in '.weights.h5'. Received: path={path!r}"
        )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path!r} already exists; pass overwrite=True (`--overwrite`) to replace it. "
            f"Received: path={path!r}"
        )
    return path


def _write(path, format, model):
    if format == "saved_model":
        backend_options = {}
        if keras.backend.backend() == "jax":
            # Serving needs no gradients; tracing them through jax2tf fails for dynamic
            # spatial dimensions and doubles the export time.
            backend_options["jax2tf_kwargs"] = {"with_gradient": False}
        model.export(path, format="tf_saved_model", verbose=False, **backend_options)
    elif format == "keras":
        model.save(path)
    elif format == "weights":
        model.save_weights(path)
    else:
        # Keras exports ONNX through tf2onnx (TensorFlow) or jax2onnx (JAX), optional packages.
        exporter = {"tensorflow": "tf2onnx", "jax": "jax2onnx"}.get(keras.backend.backend())
        if exporter is None or importlib.util.find_spec(exporter) is None:
            raise ValueError(
                f"ONNX export is unavailable here: on the {keras.backend.backend()} backend Keras "
                f"needs the optional package {exporter!r} (`pip install {exporter}`). Export a "
                "SavedModel instead, or install it. Received: format='onnx'"
            )
        # An explicit signature: Keras otherwise refuses models that were never called.
        signature = [keras.InputSpec(shape=tensor.shape, dtype=tensor.dtype) for tensor in model.inputs]
        model.export(path, format="onnx", verbose=False, input_signature=signature)


def export(model, path, format="saved_model", *, overwrite=False):
    """Export `model` to `path` in `format`; returns the path written.

    Args:
        model: a built `keras.Model`.
        path: target directory (SavedModel) or file (`.keras`, `.weights.h5`, `.onnx`).
        format: "saved_model" (endpoint `serve` and signature `serving_default`, input named
            after the model's input layer, e.g. "resnet50_input"; the batch dimension is
            dynamic, spatial dimensions are as the model was built: build with
            `input_shape=(None, None, C)` for size-agnostic serving where the architecture
            allows it),
            "keras", "weights" or "onnx" (when Keras's ONNX exporter is installed).
        overwrite: replace an existing `path`; without it an existing path is an error.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={format!r}")
    path = _check_target(path, format, overwrite)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging_dir = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        staged = os.path.join(staging_dir, os.path.basename(path))
        _write(staged, format, model)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return path
