"""Export a model for serving or sharing, and load an exported artefact in its own runtime.

A thin layer over Keras (`model.export`, `model.save`, `model.save_weights`) that adds what
deployment needs: validated arguments; BatchNorm folded into the layer before it for the
inference formats (`keras_modern_cnn.utils.fold_batch_norm`); int8 post-training quantization;
and writes that never destroy what is already on disk (the export goes to a temporary sibling
first and replaces the target only once complete; a SavedModel directory records itself in a
`.kmc-manifest.json`, and `overwrite` replaces no directory without one: see
`keras_modern_cnn.ownership`).

| format | file | exported natively from (Keras's exporter) | runtime of `load_served` |
|---|---|---|---|
| saved_model | directory | tensorflow, jax (jax2tf) | `tf.saved_model.load` |
| onnx | `.onnx` | tensorflow (tf2onnx), torch (torch.onnx) | onnxruntime |
| litert | `.tflite` | tensorflow (tf.lite converter) | `ai_edge_litert.interpreter.Interpreter` |
| openvino | `.xml` + `.bin` | tensorflow | openvino |
| keras | `.keras` | any | Keras |
| weights | `.weights.h5` | any | Keras (`load_weights`) |

Every format exports from every backend: where Keras has no exporter for the current backend,
the model (already folded or quantized) is written as a `.keras` file, which loads on every
backend (`keras_modern_cnn.saving`), and exported by TensorFlow in a subprocess (TensorFlow is
a dependency of the package; a subprocess, because TensorFlow and the current backend do not
share a process safely). The artefact is the one the TensorFlow backend would write.

The ONNX and OpenVINO exporters and runtimes are optional packages: `pip install
"keras-modern-cnn[export]"`.
"""

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any, Optional, Union

import keras
import numpy as np

from keras_modern_cnn import ownership
from keras_modern_cnn.choices import FORMATS, INFERENCE_FORMATS, QUANTIZABLE_FORMATS
from keras_modern_cnn.files import (
    DiskFullError,
    ensure_space,
    free_bytes,
    fsync_directory,
    is_out_of_space,
    native_stderr_held,
    variables_bytes,
)
from keras_modern_cnn.rundir import LEGACY_RUN
from keras_modern_cnn.saving import save_model
from keras_modern_cnn.utils.fold import fold_batch_norm as fold_model
from keras_modern_cnn.validation import check_choice

QUANTIZATIONS = (None, "int8")
_SUFFIXES = {"keras": ".keras", "weights": ".weights.h5", "onnx": ".onnx", "litert": ".tflite",
             "openvino": ".xml"}
# The backends Keras exports each format from natively, with the optional module it needs
# there. Keras also lists ONNX (jax2onnx) and OpenVINO from JAX, but both fail on the zoo:
# jax2onnx 0.17 writes max pooling as a 4-D MaxPool that onnxruntime rejects, and OpenVINO
# cannot convert the XlaCallModule op of the jax2tf graph Keras hands it; those formats go
# through TensorFlow instead. SavedModel from torch would need torch_xla.
_NATIVE_EXPORTERS = {
    "saved_model": {"tensorflow": None, "jax": None},
    "onnx": {"tensorflow": "tf2onnx", "torch": None},
    "litert": {"tensorflow": None},
    "openvino": {"tensorflow": "openvino"},
}
# Run by `_export_through_tensorflow`: load the `.keras` file and export it on TensorFlow.
_TENSORFLOW_EXPORT_SCRIPT = """
import sys
import keras, numpy as np
import keras_modern_cnn
from keras_modern_cnn.export import _write
model_file, path, format, quantize, representative = sys.argv[1:]
model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
representative = np.load(representative) if representative else None
_write(path, format, model, quantize or None, representative)
"""


def _check_target(path, format, overwrite, source=None):
    """The export target, checked before anything is built or written (`check_export_target`)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`path` must be a file or directory path. Received: path={path!r}")
    path = os.fspath(path)
    suffix = _SUFFIXES.get(format)
    if suffix is not None and not path.endswith(suffix):
        raise ValueError(
            f"A {format} export needs a path ending in '{suffix}'. Received: path={path!r}"
        )
    for target in _written_paths(path, format):
        check_export_target(target, directory=format == "saved_model", overwrite=overwrite,
                            source=source, argument="path")
    return path


def check_export_target(target, *, directory, overwrite, source=None, argument="path"):
    """What an export may replace: never the current folder or one above it, the model it
    exports (`source`) or the folder holding it, a run directory, tuning project or other kmc
    folder, nor anything a run recorded as its own; an existing SavedModel directory only if
    `kmc export` wrote it (its manifest says so) and `overwrite`; an existing file only with
    `overwrite`. Raises a one-line error naming the target and the reason.
    """
    resolved = os.path.realpath(target)

    def refuse(reason, error=ValueError):
        raise error(f"Cannot export to {target}: {reason}. Received: {argument}={os.fspath(target)!r}")

    here = os.path.realpath(os.getcwd())
    if resolved == here or here.startswith(resolved.rstrip(os.sep) + os.sep):
        refuse("it is the current folder or a folder above it")
    if source is not None:
        model_file = os.path.realpath(source)
        if resolved == model_file:
            refuse("it is the model being exported")
        if model_file.startswith(resolved.rstrip(os.sep) + os.sep):
            refuse("it holds the model being exported")
    kind = ownership.directory_kind(resolved)
    if kind not in (None, "export"):
        refuse(f"it is a {kind} folder of kmc; export to a new path")
    parent = os.path.dirname(resolved)
    parent_manifest = ownership.read_manifest(parent, LEGACY_RUN)
    if parent_manifest is not None and parent_manifest.entries.get(os.path.basename(resolved)) == "own":
        refuse(f"it belongs to the {parent_manifest.kind} in {os.path.dirname(target) or '.'}")
    if not os.path.lexists(target):
        return
    if not overwrite:
        refuse("it already exists; pass overwrite=True (`--overwrite`) to replace it",
               FileExistsError)
    if os.path.isdir(target) and not os.path.islink(target):
        if not directory:
            refuse("it is a folder, and this format writes a file")
        if kind != "export":
            refuse("it is a folder kmc export did not write (kmc never deletes one it did not "
                   "create as an export); choose a new path")
    elif directory:
        refuse("it is a file, and a SavedModel is a folder")


def _written_paths(path, format):
    """Every path an export to `path` writes (OpenVINO writes its weights beside the `.xml`)."""
    if format == "openvino":
        return [path, path[: -len(".xml")] + ".bin"]
    return [path]


def exports_natively(format):
    """Whether Keras exports `format` from the current backend; otherwise `export` goes through
    TensorFlow in a subprocess (see the module docstring)."""
    exporters = _NATIVE_EXPORTERS.get(format)
    return exporters is None or keras.backend.backend() in exporters


def _check_exporter(format):
    """Fail up front, naming the package, when the exporter `format` needs is not installed."""
    exporters = _NATIVE_EXPORTERS.get(format)
    if exporters is None:
        return
    backend = keras.backend.backend() if exports_natively(format) else "tensorflow"
    module = exporters[backend]
    if module is not None and importlib.util.find_spec(module) is None:
        raise ValueError(
            f"{format} export on the {backend} backend needs the optional package {module!r}: "
            f"`pip install \"keras-modern-cnn[export]\"`. Received: format={format!r}"
        )


def _export_through_tensorflow(path, format, model, quantize, representative_data):
    """`_write` on the TensorFlow backend, in a subprocess, from a `.keras` copy of `model`."""
    with tempfile.TemporaryDirectory(prefix=".export-tf-", dir=os.path.dirname(path)) as scratch:
        model_file = save_model(model, os.path.join(scratch, "model.keras"))
        representative = ""
        if representative_data is not None:
            representative = os.path.join(scratch, "representative.npy")
            np.save(representative, np.asarray(representative_data, "float32"))
        environment = dict(os.environ, KERAS_BACKEND="tensorflow")
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        result = subprocess.run(
            [sys.executable, "-c", _TENSORFLOW_EXPORT_SCRIPT, model_file, path, format,
             quantize or "", representative],
            capture_output=True, text=True, env=environment,
        )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ChildProcessError(
            f"{format} export through TensorFlow (from the {keras.backend.backend()} backend) "
            f"failed: {last_line}"
        )


def _signature(model):
    # An explicit signature: Keras otherwise refuses models that were never called.
    return [keras.InputSpec(shape=tensor.shape, dtype=tensor.dtype) for tensor in model.inputs]


def _representative_dataset(images):
    """The LiteRT converter's calibration generator: one example at a time, float32."""
    def generate():
        for image in images:
            yield [np.asarray(image, "float32")[None]]
    return generate


def _write(path, format, model, quantize, representative_data):
    if not exports_natively(format):
        _export_through_tensorflow(path, format, model, quantize, representative_data)
    elif format == "saved_model":
        backend_options = {}
        if keras.backend.backend() == "jax":
            # Serving needs no gradients; tracing them through jax2tf fails for dynamic
            # spatial dimensions and doubles the export time.
            backend_options["jax2tf_kwargs"] = {"with_gradient": False}
        model.export(path, format="tf_saved_model", verbose=False, **backend_options)
    elif format == "keras":
        save_model(model, path)
    elif format == "weights":
        model.save_weights(path)
    elif format == "litert":
        import tensorflow as tf

        options = {}
        if quantize == "int8":
            options = dict(
                optimizations=[tf.lite.Optimize.DEFAULT],
                representative_dataset=_representative_dataset(representative_data),
                target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            )
        # The converter's C++ lines ("fully_quantize: 0, inference_type: 6, ...") report
        # nothing to act on; they are shown if the conversion fails.
        with native_stderr_held(), _tensorflow_logs_at("WARNING"):  # "Assets written to ..."
            model.export(path, format="litert", verbose=False, input_signature=_signature(model),
                         **options)
    else:
        with warnings.catch_warnings():
            # torch.onnx's tracer warns about every Python-level shape computation in Keras.
            warnings.simplefilter("ignore")
            model.export(path, format=format, verbose=False, input_signature=_signature(model))


@contextlib.contextmanager
def _tensorflow_logs_at(level):
    """TensorFlow's Python logger at `level` at least within the block (then as it was)."""
    import logging

    logger = logging.getLogger("tensorflow")
    previous = logger.level
    logger.setLevel(max(previous, getattr(logging, level)))
    try:
        yield
    finally:
        logger.setLevel(previous)


def inference_copy(model: keras.Model) -> keras.Model:
    """A copy of `model`'s architecture and weights without its compile state (an optimizer's
    variables would otherwise ride along in a `.keras` file: Adam's double its size)."""
    clone = keras.models.clone_model(model)  # Keras 3.15 clones the compile state too
    clone.set_weights(model.get_weights())
    return keras.Model(clone.inputs, clone.outputs, name=model.name)


def _model_to_write(model, fold, quantize):
    """The model to write: folded and/or Keras-quantized copies; `model` is never modified."""
    if fold:
        model = fold_model(model)
    if quantize is None:
        return model
    if not fold:
        model = inference_copy(model)
    with warnings.catch_warnings():
        # Keras warns once per layer type it leaves in float (convolutions, BatchNorm, ...).
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize(quantize)
    return model


def export(
    model: keras.Model, path: Union[str, os.PathLike], format: str = "saved_model", *,
    overwrite: bool = False, fold_batch_norm: Optional[bool] = None, quantize: Optional[str] = None,
    representative_data: Any = None, source: Union[str, os.PathLike, None] = None,
) -> str:
    """Export `model` to `path` in `format`; returns the path written.

    Args:
        model: a built `keras.Model`.
        path: target directory (SavedModel) or file (`.keras`, `.weights.h5`, `.onnx`,
            `.tflite`, `.xml` — OpenVINO writes the `.bin` weights beside it).
        format: "saved_model" (endpoint `serve` and signature `serving_default`, input named
            after the model's input layer, e.g. "resnet50_input"; the batch dimension is
            dynamic, spatial dimensions are as the model was built: build with
            `input_shape=(None, None, C)` for size-agnostic serving where the architecture
            allows it), "keras", "weights", "onnx", "litert" or
            "openvino". See the module docstring for backends and runtimes.
        overwrite: replace an existing `path`; without it an existing path is an error. A
            directory is replaced only if `export` wrote it (its `.kmc-manifest.json` says so);
            the current folder, a run directory or tuning project, and (with `source`) the
            model file and its folder are never export targets (`check_export_target`).
        fold_batch_norm: fold each BatchNorm that follows a convolution or dense layer into it
            (`keras_modern_cnn.utils.fold_batch_norm`). Default (None): on for the inference
            formats (saved_model, onnx, litert, openvino), off for keras and weights. A folded
            `.keras` file is an inference model; weights cannot be folded (they would no longer
            fit the architecture they are loaded into).
        quantize: None or "int8". For "litert", full-integer quantization (int8 weights and
            activations, float32 input and output) calibrated on `representative_data`; for
            "saved_model" and "keras", Keras's int8 weight quantization of the Dense layers
            (`keras.Model.quantize`, worthwhile for Dense-heavy models such as VGG and AlexNet).
        representative_data: for `quantize="int8"` with "litert": a float32 array of model
            inputs, shape (N, ...) (a few hundred training images), to calibrate activations.
        source: the `.keras` file `model` was loaded from (`kmc export`), never overwritten.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    check_choice("format", format, FORMATS)
    if fold_batch_norm is None:
        fold_batch_norm = format in INFERENCE_FORMATS
    elif not isinstance(fold_batch_norm, bool):
        raise ValueError(
            f"`fold_batch_norm` must be True, False or None. Received: fold_batch_norm={fold_batch_norm!r}"
        )
    if fold_batch_norm and format == "weights":
        raise ValueError(
            "A weights file cannot hold a folded model: it would no longer load into the "
            "original architecture. Received: format='weights', fold_batch_norm=True"
        )
    check_choice("quantize", quantize, QUANTIZATIONS)
    if quantize is not None and format not in QUANTIZABLE_FORMATS:
        raise ValueError(
            f"`quantize` applies to the {', '.join(QUANTIZABLE_FORMATS)} formats. "
            f"Received: quantize={quantize!r}, format={format!r}"
        )
    full_integer = quantize is not None and format == "litert"
    if full_integer:
        if representative_data is None or np.ndim(representative_data) != len(model.inputs[0].shape):
            raise ValueError(
                "Full-integer LiteRT quantization needs `representative_data`: an array of model "
                f"inputs of shape (N, {', '.join(map(str, model.inputs[0].shape[1:]))}). "
                f"Received: representative_data with shape {np.shape(representative_data)}"
            )
    elif representative_data is not None:
        raise ValueError(
            "`representative_data` calibrates full-integer LiteRT quantization only; use it with "
            f"format='litert', quantize='int8'. Received: format={format!r}, quantize={quantize!r}"
        )
    path = _check_target(path, format, overwrite, source)
    _check_exporter(format)
    model = _model_to_write(model, fold_batch_norm, None if full_integer else quantize)

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    ensure_space(path, variables_bytes(model.weights))  # TensorFlow's writers fail noisily
    _record_in_kmc_folder(path, format)
    staging_dir = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        staged = os.path.join(staging_dir, os.path.basename(path))
        try:
            _write(staged, format, model, quantize, representative_data)
        except Exception as error:
            if is_out_of_space(error):
                raise DiskFullError(path, free_bytes(parent)) from None
            raise
        if format == "saved_model":
            ownership.record(staged, "export", ownership.visible_entries(staged))
        for target in _written_paths(path, format):
            staged = os.path.join(staging_dir, os.path.basename(target))
            if os.path.isdir(target) and not os.path.islink(target):
                # The previous export steps aside (inside the hidden staging folder) until the
                # new one is in place: no moment without one of them.
                os.replace(target, os.path.join(staging_dir, ".previous"))
            os.replace(staged, target)
        fsync_directory(parent)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return os.fspath(path)


def _record_in_kmc_folder(path, format):
    """An export written into a kmc folder (beside a run's model) is recorded there as an
    output: the folder's `--overwrite` keeps it, and it is never in the way."""
    for target in _written_paths(path, format):
        parent = os.path.dirname(os.path.abspath(target))
        if ownership.read_manifest(parent) is not None:
            ownership.record(parent, "run", [os.path.basename(target)], role="output")


def artefact_size(path: Union[str, os.PathLike]) -> int:
    """Bytes on disk of an exported artefact (a directory's files, OpenVINO's `.xml` + `.bin`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(path) for name in names
        )
    format = "openvino" if path.endswith(".xml") else None
    return sum(os.path.getsize(p) for p in _written_paths(path, format))


def load_served(path: Union[str, os.PathLike]) -> Callable[[np.ndarray], np.ndarray]:
    """A `predict(images) -> numpy array` serving the artefact at `path` in its own runtime.

    The format follows from the path: a directory is a SavedModel (`tf.saved_model.load`),
    `.onnx` runs in onnxruntime, `.tflite` in the LiteRT interpreter, `.xml` in OpenVINO.
    Neither Keras nor this package is needed by the runtimes; this helper exists for tests,
    benchmarks and `kmc export`'s accuracy report. The README shows each runtime's own snippet.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        import tensorflow as tf

        served = tf.saved_model.load(path)
        return lambda images: served.serve(tf.constant(images)).numpy()
    if path.endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (name,) = [tensor.name for tensor in session.get_inputs()]
        return lambda images: session.run(None, {name: np.asarray(images, "float32")})[0]
    if path.endswith(".tflite"):
        return _litert_predict(path)
    if path.endswith(".xml"):
        import openvino

        # f32: the CPU plugin otherwise runs bfloat16 where the processor has it (AMX).
        compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return lambda images: compiled(np.asarray(images, "float32"))[0]
    raise ValueError(
        "`path` must be a SavedModel directory or a '.onnx', '.tflite' or '.xml' file. "
        f"Received: path={path!r}"
    )


def litert_interpreter(path):
    """The LiteRT interpreter of the `.tflite` file at `path`: `ai_edge_litert`'s (the `export`
    extra installs it), else TensorFlow's `tf.lite.Interpreter`, which TensorFlow 2.21 deprecates
    (its warning is hidden: the fallback is ours, not the caller's)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return tf.lite.Interpreter(model_path=path)
    return Interpreter(model_path=path)


def _litert_predict(path):
    interpreter = litert_interpreter(path)
    (input_detail,) = interpreter.get_input_details()
    output_index = interpreter.get_output_details()[0]["index"]
    allocated = [None]

    def predict(images):
        images = np.asarray(images, "float32")
        if allocated[0] != images.shape:
            interpreter.resize_tensor_input(input_detail["index"], images.shape)
            with native_stderr_held():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                interpreter.allocate_tensors()
            allocated[0] = images.shape
        interpreter.set_tensor(input_detail["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    return predict
