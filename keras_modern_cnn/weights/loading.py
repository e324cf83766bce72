"""`weights=`: loading a preset, a local file or a Hugging Face reference into a built model.

What each kind of file is and how it loads:

| file | written by | loaded |
|---|---|---|
| `.keras`, `.weights.h5` | Keras 3 (this package, `kmc convert`, `kmc train`) | by Keras, the same architecture |
| `.h5`, `.hdf5` | Keras 2 / keras.applications | by layer name (the twins share keras.applications' names) |
| `.pth`, `.pt`, `.bin` | PyTorch (torchvision, timm) | converted (`keras_modern_cnn.weights.convert`), needs torch |
| `.safetensors` | safetensors (timm, the Hub) | converted, needs only safetensors |
"""

import os
from typing import Optional

import numpy as np

from keras_modern_cnn.weights import convert
from keras_modern_cnn.weights.download import HF_PREFIX, fetch, fetch_hub
from keras_modern_cnn.weights.presets import TORCH, Preset

KERAS_FILES = (".keras", ".weights.h5")
LEGACY_KERAS_FILES = (".h5", ".hdf5")
TORCH_FILES = (".pth", ".pt", ".bin", ".safetensors")
WEIGHT_FILES = KERAS_FILES + LEGACY_KERAS_FILES + TORCH_FILES


def is_hub_reference(weights) -> bool:
    return isinstance(weights, str) and weights.startswith(HF_PREFIX)


def is_pretrained_source(weights) -> bool:
    """Weights from another library (a preset, a PyTorch file, an `hf://` reference): trained
    on RGB images with their own preprocessing, unlike a Keras file of this package's runs."""
    if isinstance(weights, Preset) or is_hub_reference(weights):
        return True
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).lower().endswith(TORCH_FILES)


def load_weights(model, weights, *, family: Optional[str] = None, skip_head: bool = False):
    """Load `weights` into the built `model`; returns `model`.

    Args:
        model: a model of the zoo.
        weights: a `Preset` (`keras_modern_cnn.weights.get_preset`), a local file (see the
            module docstring) or an `hf://owner/repo[/file][@revision]` reference.
        family: the zoo family whose PyTorch layout a converted file follows ("resnet",
            "densenet", "vgg", "alexnet", "googlenet"); taken from the preset when omitted.
        skip_head: leave `predictions` as it is (a new head for fine-tuning); every other
            weight must still come from the file.
    """
    if isinstance(weights, Preset):
        if family is None:
            from keras_modern_cnn.registry import get_spec

            family = get_spec(weights.model).family
        include_top = _has_top(model)
        path = fetch(weights, include_top=include_top and not skip_head)
        return _load_file(model, path, family=family, skip_head=skip_head, label=weights.qualified_name)
    if is_hub_reference(weights):
        return _load_file(model, fetch_hub(weights), family=family, skip_head=skip_head, label=weights)
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such weights file. Received: weights={path!r}")
    return _load_file(model, path, family=family, skip_head=skip_head, label=path)


def _has_top(model):
    return any(layer.name == "predictions" for layer in model.layers)


def _load_file(model, path, *, family, skip_head, label):
    lowered = path.lower()
    if lowered.endswith(TORCH_FILES):
        if family is None:
            raise ValueError(
                "Converting a PyTorch file needs the zoo family its layout follows: pass "
                f"`family=` (one of {', '.join(sorted(convert.SOURCE_NAMES))}). Received: weights={label!r}"
            )
        convert.load_state_dict(model, convert.read_state_dict(path), family=family,
                                skip_head=skip_head, source=label)
    elif lowered.endswith(KERAS_FILES):
        _load_keras_file(model, path, skip_head=skip_head, label=label)
    elif lowered.endswith(LEGACY_KERAS_FILES):
        _load_legacy_h5(model, path, skip_head=skip_head, label=label)
    else:
        raise ValueError(
            f"Unknown weights file type: expected one of {', '.join(WEIGHT_FILES)}. "
            f"Received: weights={label!r}"
        )
    return model


def _load_keras_file(model, path, *, skip_head, label):
    """A Keras 3 file of the same architecture; with `skip_head`, all but `predictions`."""
    try:
        if not skip_head or not _has_top(model):
            model.load_weights(path)
        elif path.lower().endswith(".weights.h5"):
            model.load_weights(path, objects_to_skip=[model.get_layer("predictions")])
        else:
            _copy_all_but_head(model, path, label)
    except ValueError as error:
        raise ValueError(
            f"Could not load `weights` into {model.name!r}: the file does not match this "
            f"architecture (check `classes`, `include_top` and the variant). Received: "
            f"weights={label!r}. Cause: {' '.join(str(error).split())[:300]}"
        ) from None


def _copy_all_but_head(model, path, label):
    from keras_modern_cnn.features import copy_weights_by_name
    from keras_modern_cnn.saving import load_model

    source = load_model(path)
    copied = set(copy_weights_by_name(source, model))
    missing = [layer.name for layer in model.layers
               if layer.weights and layer.name != "predictions" and layer.name not in copied]
    if missing:
        raise ValueError(f"the file has no layer {missing[0]!r}")


def _load_legacy_h5(model, path, *, skip_head, label):
    """A Keras 2 `.h5` weights file (keras.applications'), by layer and weight name."""
    import h5py

    where = f"{label!r} into {model.name!r}"
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        file_layers = {_text(name) for name in group.attrs.get("layer_names", [])}
        assignments = []
        for layer in convert.all_layers(model):
            if not layer.weights or (skip_head and layer.name == "predictions"):
                continue
            if convert._leaf_kind(layer) is None:
                continue  # a container: its own layers carry the weights
            if layer.name not in file_layers:
                raise ValueError(
                    f"Cannot load {where}: the file has no layer {layer.name!r} (another "
                    f"architecture or variant?). Received: weights={label!r}"
                )
            stored = {
                _text(name).split("/")[-1].split(":")[0]: group[layer.name][_text(name)]
                for name in group[layer.name].attrs.get("weight_names", [])
            }
            for variable in layer.weights:
                if variable.name not in stored:
                    raise ValueError(
                        f"Cannot load {where}: the file's layer {layer.name!r} has no "
                        f"{variable.name!r}. Received: weights={label!r}"
                    )
                array = np.asarray(stored[variable.name])
                if tuple(array.shape) != tuple(variable.shape):
                    raise ValueError(
                        f"Cannot load {where}: {layer.name}/{variable.name} is "
                        f"{tuple(array.shape)} in the file, {tuple(variable.shape)} in the model "
                        f"(check `classes`, `include_top`, `width_ratio`). Received: weights={label!r}"
                    )
                assignments.append((variable, array))
    for variable, array in assignments:
        variable.assign(array.astype(variable.dtype))


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def keras_file_preprocesses(path) -> bool:
    """Whether the `.keras` file at `path` holds a model with `ImagePreprocessing` inside (read
    from its `config.json`, without Keras)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return "ImagePreprocessing" in archive.read("config.json").decode("utf8")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def takes_raw_pixels(weights) -> bool:
    """Whether a model started from `weights` normalises its inputs itself: another library's
    weights (`is_pretrained_source`), or a `.keras` model with its preprocessing inside."""
    if is_pretrained_source(weights):
        return True
    return (isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".keras")
            and keras_file_preprocesses(weights))


def _continue_keras_model(spec, path, classes, builder_kwargs):
    """The model of a `.keras` file (architecture, preprocessing and all), its head replaced
    when `classes` differ; it must be a `spec` model for the run's images."""
    from keras_modern_cnn.heads import replace_head
    from keras_modern_cnn.saving import load_model
    from keras_modern_cnn.validation import spatial_and_channels

    model = load_model(path)
    if model.name != spec.name:
        raise ValueError(
            f"The file holds a {model.name!r} model, not {spec.name}: fine-tune it as "
            f"{model.name!r}. Received: weights={os.fspath(path)!r}"
        )
    _, expected = spatial_and_channels(tuple(builder_kwargs.get("input_shape") or model.input_shape[1:]))
    spatial, channels = spatial_and_channels(tuple(model.input_shape[1:]))
    size = builder_kwargs.get("input_shape") and spatial_and_channels(builder_kwargs["input_shape"])[0]
    if channels != expected or (size and None not in spatial and tuple(spatial) != tuple(size)):
        raise ValueError(
            f"The file's model takes {model.input_shape[1:]} inputs, not the run's "
            f"{builder_kwargs.get('input_shape')}: match `image_size` and the data's channels. "
            f"Received: weights={os.fspath(path)!r}"
        )
    if model.output_shape[-1] != classes:
        model = replace_head(model, classes)
    return model


def build_pretrained(name: str, weights, *, classes: int, freeze_batch_norm: bool = True,
                     **builder_kwargs):
    """The registered model `name` starting from `weights`, ready to fine-tune on `classes`.

    - Weights from another library (a preset, a PyTorch file, an `hf://` reference) come with
      their preprocessing inside the model (`include_preprocessing=True`: raw 0-255 pixels in;
      grayscale images repeated to RGB).
    - A `.keras` file continues its own model (architecture, preprocessing and input as saved).
    - The classifier head is loaded when its classes match and replaced by a new one when they
      differ (`keras_modern_cnn.replace_head`; timm's `num_classes=`); every other weight must
      come from `weights`.
    - `freeze_batch_norm`: every BatchNorm keeps the pretrained statistics, `gamma` and `beta`
      (`keras_modern_cnn.layers.freeze_batch_norm`), or (False) trains, whatever a `.keras`
      file recorded; a model without BatchNorm is unchanged.
    """
    from keras_modern_cnn.heads import replace_head
    from keras_modern_cnn.layers import BatchNorm, freeze_batch_norm as freeze
    from keras_modern_cnn.registry import get_spec
    from keras_modern_cnn.validation import check_bool, check_positive_int, resolve_weights

    spec = get_spec(name)
    classes = check_positive_int("classes", classes)
    check_bool("freeze_batch_norm", freeze_batch_norm)
    weights = resolve_weights(spec.name, weights)
    if weights is None:
        raise ValueError(f"`weights` must name the weights to start from. Received: weights={weights!r}")
    if isinstance(weights, Preset):
        builder_kwargs["include_preprocessing"] = True
    elif is_pretrained_source(weights):  # loaded below: the builder learns what is coming
        builder_kwargs["include_preprocessing"] = TORCH
    if isinstance(weights, Preset):
        model = spec.builder(weights=weights, classes=weights.classes, **builder_kwargs)
        if classes != weights.classes:
            model = replace_head(model, classes)
    elif isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".keras"):
        model = _continue_keras_model(spec, weights, classes, builder_kwargs)
    else:
        model = spec.builder(classes=classes, **builder_kwargs)
        try:
            load_weights(model, weights, family=spec.family)
        except ValueError:
            # The head's classes differ (else this raises again, naming the first misfit).
            load_weights(model, weights, family=spec.family, skip_head=True)
    if any(isinstance(layer, BatchNorm) for layer in convert.all_layers(model)):
        freeze(model, freeze_batch_norm)  # a `.keras` model may come frozen: set it either way
    return model
