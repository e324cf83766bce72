"""PyTorch state dicts (torchvision's and timm's layouts) into the zoo's builders.

Each family maps its Keras layer names to the PyTorch module that holds the same weights,
explicitly (`SOURCE_NAMES`), as torchvision and timm name them; tensors are then transposed
into Keras's layouts (convolutions (O, I, kh, kw) -> (kh, kw, I, O), dense (out, in) -> (in,
out), and the first dense layer after a flatten reordered from PyTorch's channels-height-width
to Keras's height-width-channels). Everything is checked before anything is assigned: every
Keras weight gets a tensor of its shape and every tensor of the file is used (BatchNorm's
`num_batches_tracked`, GoogLeNet's auxiliary heads and, without the top, the head are the only
ones left out), else a ValueError names the first tensor that does not fit. The arrays are
NumPy: conversion runs on every Keras backend, and a `.safetensors` file needs no PyTorch.
"""

import os
import re
from collections.abc import Callable
from typing import Any, Optional

import numpy as np


# Keras layers fed from the head's tensors: left out with `include_top=False` or `skip_head`.
HEAD_LAYERS = ("fc1", "fc2", "predictions")
# PyTorch-only state: BatchNorm's step counter, GoogLeNet's auxiliary classifiers.
IGNORED_KEYS = re.compile(r"(.*\.num_batches_tracked|aux[12]\..*)")
# torchvision's DenseNet files predate its module names: `norm.1` for `norm1` (torchvision
# renames them the same way in `densenet._load_state_dict`).
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def read_state_dict(path: "str | os.PathLike") -> dict[str, np.ndarray]:
    """The tensors of a PyTorch checkpoint as NumPy arrays, by name.

    `.safetensors` files are read with `safetensors` (no PyTorch needed); `.pth`, `.pt` and
    `.bin` files with `torch.load(weights_only=True)` (no code in the file runs). A checkpoint
    wrapping its weights (`{"state_dict": ...}`, `{"model": ...}`) and DataParallel's `module.`
    prefixes are unwrapped.
    """
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ValueError(
                "Reading a .safetensors file needs the `safetensors` package: pip install "
                f"\"keras-modern-cnn[weights]\". Received: weights={path!r}"
            ) from None
        tensors = load_file(path)
    else:
        try:
            import torch
        except ImportError:
            raise ValueError(
                "Reading a PyTorch .pth/.pt/.bin file needs `torch` (pip install torch); a "
                ".safetensors file needs only `safetensors`. Received: weights={path!r}"
            ) from None
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors, a truncated zip, a foreign file
            raise ValueError(
                f"Cannot read the PyTorch checkpoint ({type(error).__name__}: "
                f"{str(error)[:200]}). Received: weights={path!r}"
            ) from None
        for key in ("state_dict", "model"):
            if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
        if not isinstance(checkpoint, dict):
            raise ValueError(
                f"The checkpoint holds a {type(checkpoint).__name__}, not a state dict. "
                f"Received: weights={path!r}"
            )
        tensors = {
            key: value.detach().cpu().float().numpy() if value.is_floating_point()
            else value.cpu().numpy()
            for key, value in checkpoint.items() if isinstance(value, torch.Tensor)
        }
    if tensors and all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    return {_OLD_DENSENET_KEY.sub(r"\1\2", key): value for key, value in tensors.items()}


def all_layers(model):
    """Every layer of `model`, nested ones included (Keras is imported on first use only)."""
    from keras_modern_cnn._compat import all_layers as layers

    return layers(model)


# --- Keras layer name -> PyTorch module name, per family ----------------------------------

def _resnet(name, model):
    """torchvision's and timm's ResNet (v1 and v1.5: basic and bottleneck blocks)."""
    if name in ("conv1_conv", "conv1_bn"):
        return {"conv1_conv": "conv1", "conv1_bn": "bn1"}[name]
    if name == "predictions":
        return "fc"
    match = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_(conv|bn)", name)
    if match is None:
        return None
    stage, block, index, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
    if index == "0":
        return f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
    return f"{prefix}.{kind}{index}"


def _densenet(name, model):
    """torchvision's and timm's DenseNet-BC."""
    fixed = {"conv1_conv": "features.conv0", "conv1_bn": "features.norm0", "bn": "features.norm5",
             "predictions": "classifier"}
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"conv(\d)_block(\d+)_(0_bn|1_conv|1_bn|2_conv)", name)
    if match is not None:
        stage, layer, part = match.groups()
        module = {"0_bn": "norm1", "1_conv": "conv1", "1_bn": "norm2", "2_conv": "conv2"}[part]
        return f"features.denseblock{int(stage) - 1}.denselayer{layer}.{module}"
    match = re.fullmatch(r"pool(\d)_(bn|conv)", name)
    if match is not None:
        stage, kind = match.groups()
        return f"features.transition{int(stage) - 1}.{'norm' if kind == 'bn' else 'conv'}"
    return None


def _vgg(name, model):
    """torchvision's VGG (`features.i`, `classifier.0/3/6`) and timm's (`pre_logits.fc1/fc2`
    as convolutions, `head.fc`); `features` counts every conv, BN, ReLU and pool."""
    heads = {"torchvision": ("classifier.0", "classifier.3", "classifier.6"),
             "timm": ("pre_logits.fc1", "pre_logits.fc2", "head.fc")}[model.layout]
    if name in HEAD_LAYERS:
        return heads[HEAD_LAYERS.index(name)]
    return model.vgg_indices.get(name)


def _vgg_indices(keras_model):
    names = {layer.name for layer in all_layers(keras_model)}
    convs = sorted(
        (tuple(map(int, match.groups())), name)
        for name in names
        if (match := re.fullmatch(r"block(\d+)_conv(\d+)", name))
    )
    indices, index, last_block = {}, 0, None
    for (block, _), name in convs:
        if last_block is not None and block != last_block:
            index += 1  # the pool closing the previous block
        last_block = block
        indices[name] = f"features.{index}"
        index += 1
        if f"{name}_bn" in names:
            indices[f"{name}_bn"] = f"features.{index}"
            index += 1
        index += 1  # ReLU
    return indices


def _alexnet(name, model):
    """torchvision's AlexNet (`features.0/3/6/8/10`, `classifier.1/4/6`)."""
    return {
        "conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
        "conv5": "features.10", "fc1": "classifier.1", "fc2": "classifier.4",
        "predictions": "classifier.6",
    }.get(name)


def _googlenet(name, model):
    """torchvision's GoogLeNet (`BasicConv2d` = conv + bn; `inception3a.branch1` ...)."""
    stem = {"conv1": "conv1", "conv2_reduce": "conv2", "conv2": "conv3"}
    match = re.fullmatch(r"(conv1|conv2_reduce|conv2)(_bn)?", name)
    if match is not None:
        return f"{stem[match.group(1)]}.{'bn' if match.group(2) else 'conv'}"
    if name == "predictions":
        return "fc"
    match = re.fullmatch(r"inception(\d[a-e])_(1x1|3x3_reduce|3x3|5x5_reduce|5x5|pool_proj)(_bn)?", name)
    if match is None:
        return None
    block, path, bn = match.groups()
    branch = {"1x1": "branch1", "3x3_reduce": "branch2.0", "3x3": "branch2.1",
              "5x5_reduce": "branch3.0", "5x5": "branch3.1", "pool_proj": "branch4.1"}[path]
    return f"inception{block}.{branch}.{'bn' if bn else 'conv'}"


SOURCE_NAMES: dict[str, Callable[[str, Any], Optional[str]]] = {
    "resnet": _resnet, "densenet": _densenet, "vgg": _vgg, "alexnet": _alexnet,
    "googlenet": _googlenet,
}


class _Source:
    """What a mapping function may consult: the state dict's layout and VGG's feature indices."""

    def __init__(self, keras_model, keys, family):
        self.layout = "timm" if any(key.startswith("pre_logits.") for key in keys) else "torchvision"
        self.vgg_indices = _vgg_indices(keras_model) if family == "vgg" else {}


# --- tensors ------------------------------------------------------------------------------

def _leaf_kind(layer):
    import keras

    if isinstance(layer, keras.layers.Conv2D):
        return "conv"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    if hasattr(layer, "moving_mean") and hasattr(layer, "moving_variance"):
        return "batch_norm"  # keras_modern_cnn.layers.BatchNorm or keras.layers.BatchNormalization
    return None


def _flattened_shape(keras_model, dense):
    """(height, width, channels) of the feature map a dense layer reads through `flatten`, or
    None when it does not read one."""
    from keras_modern_cnn.validation import spatial_and_channels

    try:
        flatten = keras_model.get_layer("flatten")
    except ValueError:
        return None
    if dense.input is not flatten.output:
        return None
    (height, width), channels = spatial_and_channels(tuple(flatten.input.shape[1:]))
    return height, width, channels


def _dense_kernel(array, flattened):
    """A PyTorch dense weight (out, in) (or timm's convolution form (out, C, kh, kw)) as a
    Keras kernel (in, out); `flattened` reorders inputs from (C, H, W) to (H, W, C)."""
    out = array.shape[0]
    if flattened is not None:
        height, width, channels = flattened
        if array.size != out * height * width * channels:
            return array  # the shape check reports it
        return array.reshape(out, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, out)
    return array.reshape(out, -1).T


def _assignments(layer, kind, module, flattened):
    """(variable, source key, transform) for each weight of one Keras layer."""
    if kind == "batch_norm":
        pairs = [("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                 ("moving_variance", "running_var")]
        return [(getattr(layer, attribute), f"{module}.{key}", None)
                for attribute, key in pairs if getattr(layer, attribute, None) is not None]
    if kind == "conv":
        kernel = (layer.kernel, f"{module}.weight", lambda a: a.transpose(2, 3, 1, 0))
    else:
        kernel = (layer.kernel, f"{module}.weight", lambda a: _dense_kernel(a, flattened))
    bias = [(layer.bias, f"{module}.bias", None)] if layer.bias is not None else []
    return [kernel, *bias]


def _variable_name(keras_model, variable):
    return getattr(variable, "path", variable.name)


def match(keras_model, keys, *, family: str, skip_head: bool = False,
          source: str = "weights") -> list[tuple[Any, str, Any]]:
    """(Keras variable, source key, transform or None) for every weight of `keras_model` from
    a state dict with these `keys`, by name only; raises a ValueError naming the first layer,
    key or variable that has no counterpart (shapes are `plan`'s)."""
    keys = list(keys)
    if family not in SOURCE_NAMES:
        raise ValueError(
            f"There is no PyTorch layout for the {family} family; converters exist for "
            f"{', '.join(sorted(SOURCE_NAMES))}. Received: weights={source!r}"
        )
    mapping = SOURCE_NAMES[family]
    context = _Source(keras_model, keys, family)
    where = _where(keras_model, context, source)
    pairs, covered, available = [], set(), set(keys)
    for layer in all_layers(keras_model):
        kind = _leaf_kind(layer)
        if kind is None or (skip_head and layer.name == "predictions"):
            continue
        module = mapping(layer.name, context)
        if module is None:
            raise ValueError(
                f"Cannot load {where}: layer {layer.name!r} has no counterpart in the "
                f"{context.layout} layout of the {family} family (another variant?). "
                f"Received: weights={source!r}"
            )
        flattened = _flattened_shape(keras_model, layer) if kind == "dense" else None
        for variable, key, transform in _assignments(layer, kind, module, flattened):
            if key not in available:
                raise ValueError(
                    f"Cannot load {where}: the file has no tensor {key!r} for "
                    f"{_variable_name(keras_model, variable)} {tuple(variable.shape)} (another "
                    f"architecture or variant?). Received: weights={source!r}"
                )
            pairs.append((variable, key, transform))
            covered.add(id(variable))
    _check_every_variable_covered(keras_model, covered, skip_head, where, source)
    _check_every_key_used(keras_model, keys, {key for _, key, _ in pairs}, mapping, context,
                          skip_head, where, source)
    return pairs


def _where(keras_model, context, source):
    return f"{source!r} into {keras_model.name!r} ({context.layout} layout)"


def plan(keras_model, state_dict: dict[str, np.ndarray], *, family: str, skip_head: bool = False,
         source: str = "weights") -> list[tuple[Any, np.ndarray, str]]:
    """Every (Keras variable, array in its layout, source key) of loading `state_dict` into
    `keras_model` of `family`, checked by name (`match`) and shape; raises a ValueError naming
    the first misfit."""
    pairs = match(keras_model, state_dict, family=family, skip_head=skip_head, source=source)
    assignments = []
    for variable, key, transform in pairs:
        array = np.asarray(state_dict[key])
        converted = array if transform is None else transform(array)
        if tuple(converted.shape) != tuple(variable.shape):
            where = _where(keras_model, _Source(keras_model, state_dict, family), source)
            raise ValueError(
                f"Cannot load {where}: tensor {key!r} of shape {tuple(array.shape)} does not "
                f"fit {_variable_name(keras_model, variable)} {tuple(variable.shape)} (check "
                f"`classes`, `include_top`, `width_ratio` and the variant). "
                f"Received: weights={source!r}"
            )
        assignments.append((variable, converted, key))
    return assignments


def _check_every_variable_covered(keras_model, covered, skip_head, where, source):
    skipped = set()
    if skip_head:
        try:
            skipped = {id(v) for v in keras_model.get_layer("predictions").weights}
        except ValueError:
            pass
    for variable in keras_model.weights:
        if id(variable) in covered or id(variable) in skipped or "seed_generator" in variable.path:
            continue
        raise ValueError(
            f"Cannot load {where}: nothing in the file sets {variable.path} "
            f"{tuple(variable.shape)}. Received: weights={source!r}"
        )


def _check_every_key_used(keras_model, keys, used, mapping, context, skip_head, where, source):
    names = {layer.name for layer in all_layers(keras_model)}
    # The head's tensors stay unused without the top (`include_top=False`), or when the head
    # is replaced (`skip_head`).
    left_out = [layer for layer in HEAD_LAYERS
                if layer not in names or (skip_head and layer == "predictions")]
    head_modules = tuple(
        f"{module}." for layer in left_out if (module := mapping(layer, context)) is not None
    )
    for key in keys:
        if key in used or IGNORED_KEYS.fullmatch(key) or key.startswith(head_modules):
            continue
        raise ValueError(
            f"Cannot load {where}: the file's tensor {key!r} "
            f"fits no layer of the model (another architecture or variant?). "
            f"Received: weights={source!r}"
        )


def load_state_dict(keras_model, state_dict: dict[str, np.ndarray], *, family: str,
                    skip_head: bool = False, source: str = "weights") -> int:
    """Assign `state_dict` (PyTorch names, NumPy arrays) to `keras_model`; returns the number
    of tensors assigned. Nothing is assigned unless everything fits (`plan`)."""
    assignments = plan(keras_model, state_dict, family=family, skip_head=skip_head, source=source)
    for variable, array, _ in assignments:
        variable.assign(array.astype(variable.dtype))
    return len(assignments)
