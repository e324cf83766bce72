"""Every argument check of the package, in one place, so messages read the same everywhere.

Style (as keras.applications): what was expected, argument names in backticks, then
`Received: arg=value`, and a hint where one exists. Checks run before any layer is built,
so bad input never surfaces as a backend traceback.
"""

import numbers
import os
import warnings

POOLING_CHOICES = (None, "avg", "max")


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """A real number inside [low, high] (or the open interval where asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        bounds = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"`{name}` must lie in {bounds}. Received: {name}={value!r}")
    return value


def check_positive_int(name, value, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(repr(c) for c in choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_output_path(name, value):
    """A path a command writes to: a non-empty string or `os.PathLike` without NUL bytes.
    Returns it as a string. Where it may point is `keras_modern_cnn.ownership`'s question."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text.strip() or "\0" in text:
        raise ValueError(f"`{name}` must be a non-empty path. Received: {name}={value!r}")
    return text


def check_folder_name(name, value):
    """One plain folder name inside an output directory (a tuning project's): not empty, not
    `.` or `..`, no path separator, not hidden. The one check of such names, everywhere."""
    if (not isinstance(value, str) or value.strip() in ("", ".", "..") or "/" in value
            or "\\" in value or "\0" in value or value.startswith(".")):
        raise ValueError(
            f"`{name}` must be one plain folder name (not empty, `.`, `..`, a path or a hidden "
            f"name). Received: {name}={value!r}"
        )
    return value


def check_int_sequence(name, value, *, minimum=1, length=None):
    """A non-empty tuple/list of integers >= `minimum` (stage depths, block sizes, ...)."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0
    ok = ok and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum for v in value
    )
    if ok and length is not None and len(value) != length:
        ok = False
    if not ok:
        what = f"{length} integers" if length else "a non-empty sequence of integers"
        raise ValueError(f"`{name}` must be {what}, each >= {minimum}. Received: {name}={value!r}")
    return tuple(int(v) for v in value)


def check_dropout_rate(dropout_rate, name="dropout_rate"):
    """A dropout-like probability in [0, 1)."""
    return float(check_number(name, dropout_rate, low=0.0, high=1.0, high_open=True))


def check_out_indices(out_indices, num_stages):
    """Stage indices for `features_only`: a non-empty sequence of distinct integers in
    [-num_stages, num_stages), negative counting from the last stage as in Python, or one
    integer n: the last n stages (timm's `out_indices=n`); returns them non-negative and in
    the order given."""
    if isinstance(out_indices, numbers.Integral) and not isinstance(out_indices, bool):
        if not 1 <= out_indices <= num_stages:
            raise ValueError(
                f"An integer `out_indices` selects the last n stages (timm's convention): n "
                f"must lie in [1, {num_stages}], this model's stages. "
                f"Received: out_indices={out_indices!r}"
            )
        return tuple(range(num_stages - int(out_indices), num_stages))
    valid = isinstance(out_indices, (list, tuple)) and len(out_indices) > 0 and all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in out_indices
    )
    if not valid:
        raise ValueError(
            "`out_indices` must be a non-empty tuple of integer stage indices (or one integer "
            "n: the last n stages). "
            f"Received: out_indices={out_indices!r}"
        )
    if any(not -num_stages <= i < num_stages for i in out_indices):
        raise ValueError(
            f"`out_indices` must lie in [-{num_stages}, {num_stages - 1}]: this model has "
            f"{num_stages} stages. Received: out_indices={tuple(out_indices)!r}"
        )
    resolved = tuple(int(i) % num_stages for i in out_indices)
    if len(set(resolved)) != len(resolved):
        raise ValueError(
            "`out_indices` names a stage twice (negative indices count from the last stage). "
            f"Received: out_indices={tuple(out_indices)!r}"
        )
    return resolved


def check_dtype_policy(dtype):
    """A Keras dtype policy (`keras.dtype_policies.get`): a name such as "float32",
    "bfloat16" or "mixed_float16", or a `keras.DTypePolicy`."""
    import keras

    try:
        return keras.dtype_policies.get(dtype)
    except (ValueError, TypeError):
        raise ValueError(
            "`dtype` must be a Keras dtype policy: a name such as 'float32', 'bfloat16', "
            f"'mixed_float16' or 'mixed_bfloat16', or a `keras.DTypePolicy`. Received: dtype={dtype!r}"
        ) from None


def check_width_ratio(width_ratio):
    return float(check_number("width_ratio", width_ratio, low=0.0, low_open=True, high=16.0))


def scaled_channels(channels, width_ratio):
    """Channel count multiplied by `width_ratio`, rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width_ratio)))


def resolve_weights(model_name, weights):
    """`weights` of the registered model `model_name`, a preset name turned into its `Preset`.

    None, a `Preset`, an existing file and an `hf://` reference pass unchanged (files and
    references are checked when they load); any other string must name one of the model's
    presets (case-insensitive), else the error lists them.
    """
    from keras_modern_cnn.weights.presets import Preset, find_preset, unknown_preset_message

    if weights is None or isinstance(weights, Preset) or _is_file_or_reference(weights):
        return weights
    if isinstance(weights, str):
        preset = find_preset(model_name, weights)
        if preset is not None:
            return preset
    raise ValueError(
        "The `weights` argument should be `None` (random initialization), a preset name, the "
        "path to an existing weights file or an 'hf://owner/repo' reference; "
        f"{unknown_preset_message(model_name, str(weights))}. Received: weights={weights!r}"
    )


def _is_file_or_reference(weights):
    if isinstance(weights, str) and weights.startswith("hf://"):
        return True
    return isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)


def check_application_args(
    *, include_top, weights, pooling, classes, classifier_activation, name=None
):
    """The keras.applications argument contract, shared by every builder of the zoo."""
    from keras_modern_cnn.weights.presets import Preset

    check_bool("include_top", include_top)
    if not (weights is None or isinstance(weights, Preset) or _is_file_or_reference(weights)):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), a preset "
            "of a registered variant (e.g. `ResNet50(weights='imagenet')`; "
            "`keras_modern_cnn.weights.list_presets()`), the path to an existing weights file "
            f"or an 'hf://owner/repo' reference. Received: weights={weights!r}"
        )
    check_positive_int("classes", classes)
    if isinstance(weights, Preset) and include_top and classes != weights.classes:
        raise ValueError(
            f"If using `weights={weights.name!r}` with `include_top=True`, `classes` should be "
            f"{weights.classes} (the preset's head). Build with `include_top=False` for a new "
            "classifier, or replace the head after loading "
            f"(`keras_modern_cnn.replace_head(model, {classes})`). Received: classes={classes}"
        )
    if not include_top:
        check_choice("pooling", pooling, POOLING_CHOICES)
    if not (classifier_activation is None or isinstance(classifier_activation, str) or callable(classifier_activation)):
        raise ValueError(
            "`classifier_activation` must be None, an activation name or a callable. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    if isinstance(classifier_activation, str):
        import keras

        try:
            keras.activations.get(classifier_activation)
        except ValueError:
            raise ValueError(
                "`classifier_activation` is not a known Keras activation. "
                f"Received: classifier_activation={classifier_activation!r}"
            ) from None
    if weights is not None and include_top and classifier_activation not in (None, "softmax"):
        raise ValueError(
            "Only `None` and `softmax` activations are allowed for the "
            "`classifier_activation` argument when using pretrained weights, with "
            f"`include_top=True`. Received: classifier_activation={classifier_activation!r}"
        )
    if name is not None and not (isinstance(name, str) and name):
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")


def spatial_and_channels(shape):
    """Split a (H, W, C) or (C, H, W) shape by the current image data format."""
    import keras

    if keras.config.image_data_format() == "channels_first":
        return tuple(shape[1:]), shape[0]
    return tuple(shape[:-1]), shape[-1]


def check_input_shape(input_shape, *, min_size, require_static, spatial_rank=2):
    """Validate a user `input_shape` (without batch axis) against the model's minimum size."""
    expected = spatial_rank + 1
    valid = isinstance(input_shape, (tuple, list)) and len(input_shape) == expected
    valid = valid and all(
        d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0)
        for d in input_shape
    )
    if not valid:
        raise ValueError(
            f"`input_shape` must be a tuple of {expected} positive integers (or None for a "
            f"flexible spatial size), without the batch axis. Received: input_shape={input_shape!r}"
        )
    spatial, channels = spatial_and_channels(tuple(input_shape))
    if channels is None:
        raise ValueError(
            "The channel dimension of `input_shape` must be known. "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    if require_static and any(d is None for d in spatial):
        raise ValueError(
            "This model flattens its features into dense layers, so `include_top=True` needs a "
            "static spatial size: pass `input_shape` with integer height and width, or "
            f"`include_top=False` with `pooling`. Received: input_shape={tuple(input_shape)!r}"
        )
    if any(d is not None and d < min_size for d in spatial):
        raise ValueError(
            f"Input size must be at least {min_size}x{min_size} for this model. "
            f"Received: input_shape={tuple(input_shape)!r}"
        )
    if channels not in (1, 3):
        warnings.warn(
            f"This model is usually used with 1 (grayscale) or 3 (RGB) input channels; "
            f"building it for {channels} channels. Received: input_shape={tuple(input_shape)!r}",
            stacklevel=3,
        )
    return tuple(input_shape)
