"""keras.applications' `preprocess_input` and `decode_predictions`, for every preset.

`preprocess_input(x, preset)` applies a preset's preprocessing (scale, channel order, mean and
std) to raw images and returns a new float32 array: the caller's array is never written to
(keras.applications writes over a float array in place, keras-team/keras #11591).
`decode_predictions(preds)` names the top classes: ImageNet's 1000 (shipped with the package,
`imagenet_classes.json`), or the class names a `kmc train` run recorded.
"""

import functools
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from keras_modern_cnn.validation import check_positive_int
from keras_modern_cnn.weights.presets import resolve_preprocessing

CLASSES_PATH = pathlib.Path(__file__).with_name("imagenet_classes.json")


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The 1000 ImageNet-1k classes in the order every preset's head uses: (WordNet id, name)."""
    return tuple(tuple(entry) for entry in json.loads(CLASSES_PATH.read_text())["classes"])


def preprocess_input(x: Any, preset: Any, data_format: Optional[str] = None) -> Any:
    """Raw images (values 0-255, RGB) as the weights of `preset` expect them.

    Args:
        x: a batch (4D) or one image (3D), NumPy array or backend tensor; not modified.
        preset: a preprocessing mode ("torch", "caffe", "tf", as keras.applications names
            them), a model with presets ("resnet50": its `imagenet` preset), "MODEL.PRESET"
            ("resnet50_tv.IMAGENET1K_V2"), a `Preset` or a `Preprocessing`.
        data_format: "channels_last" or "channels_first" (default: Keras's setting).

    Returns:
        float32 values `((x * scale)[channel order] - mean) / std`, a NumPy array for a NumPy
        input, else a tensor. Resizing is the caller's (`include_preprocessing=True` puts it,
        with this, inside the model).
    """
    import keras

    spec = resolve_preprocessing(preset)
    data_format = keras.config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )
    numpy_input = isinstance(x, np.ndarray) or not keras.ops.is_tensor(x)
    ops = np if numpy_input else keras.ops
    x = np.asarray(x, "float32") if numpy_input else keras.ops.cast(x, "float32")
    if len(x.shape) not in (3, 4):
        raise ValueError(
            f"`x` must be one image (3D) or a batch (4D). Received: x with shape {tuple(x.shape)}"
        )
    axis = -1 if data_format == "channels_last" else len(x.shape) - 3
    channels = x.shape[axis]
    if channels not in (1, 3):
        raise ValueError(
            f"`x` must have 1 or 3 channels on axis {axis} ({data_format}). "
            f"Received: x with shape {tuple(x.shape)}"
        )
    shape = [1] * len(x.shape)
    shape[axis] = 3 if channels == 3 else 1
    mean, std = np.asarray(spec.mean, "float32"), np.asarray(spec.std, "float32")
    if channels == 1:  # a grayscale image: the channels' averages
        mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
    x = x * np.float32(spec.scale)  # a new array: the caller's is never written to
    if spec.channel_order == "bgr" and channels == 3:
        x = ops.flip(x, axis=axis)
    return (x - mean.reshape(shape)) / std.reshape(shape)


def decode_predictions(
    preds: Any, top: int = 5, class_names: Union[None, Sequence[str], str, os.PathLike] = None
) -> list[list[tuple[str, str, float]]]:
    """The `top` classes of each prediction, best first, as `(class id, name, score)`.

    Args:
        preds: a batch of scores, shape (samples, classes) (NumPy or backend tensor).
        top: how many classes per sample.
        class_names: None for ImageNet's 1000 classes (id: the WordNet id, as keras.applications
            gives); a sequence of names (id: the class index); or a `kmc train` run: its
            directory, its `run.json` or the `model.keras` beside it (id: the class index).
    """
    import keras

    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    top = check_positive_int("top", top)
    if class_names is None:
        ids, names = zip(*imagenet_classes())
    else:
        names = tuple(_class_names(class_names))
        ids = tuple(str(index) for index in range(len(names)))
    if preds.ndim != 2 or preds.shape[1] != len(names):
        raise ValueError(
            f"`decode_predictions` expects a batch of predictions of shape (samples, "
            f"{len(names)}). Received: preds with shape {preds.shape}"
        )
    results = []
    for scores in preds:
        best = np.argsort(-scores, kind="stable")[:top]
        results.append([(ids[i], names[i], float(scores[i])) for i in best])
    return results


def _class_names(source):
    if isinstance(source, (str, os.PathLike)):
        from keras_modern_cnn.config import RUN_FILE, read_run_file

        path = os.fspath(source)
        if os.path.isdir(path):
            path = os.path.join(path, RUN_FILE)
        elif not path.endswith(".json"):
            path = os.path.join(os.path.dirname(path), RUN_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"No run file (run.json) to read class names from. Received: class_names={os.fspath(source)!r}"
            )
        _, data_info = read_run_file(path)
        if not data_info.get("class_names"):
            raise ValueError(f"{path} records no class names. Received: class_names={os.fspath(source)!r}")
        return data_info["class_names"]
    if isinstance(source, Sequence) and all(isinstance(name, str) for name in source) and source:
        return source
    raise ValueError(
        "`class_names` must be None (ImageNet), a sequence of names, or a run directory, "
        f"run.json or model file. Received: class_names={source!r}"
    )
