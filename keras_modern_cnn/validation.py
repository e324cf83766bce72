"""Every argument check of the package, in one place, so messages read the same everywhere.

Style (as keras.applications): what was expected, argument names in backticks, then
`Received: arg=value`, and a hint where one exists. Checks run before any layer is built,
so bad input never surfaces as a backend traceback.
"""

import numbers
import os
import warnings

import keras

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


def check_width_ratio(width_ratio):
    return float(check_number("width_ratio", width_ratio, low=0.0, low_open=True, high=16.0))


def scaled_channels(channels, width_ratio):
    """Channel count multiplied by `width_ratio`, rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width_ratio)))


def check_application_args(
    *, include_top, weights, pooling, classes, classifier_activation, name=None
):
    """The keras.applications argument contract, shared by every builder of the zoo."""
    check_bool("include_top", include_top)
    if weights is not None and not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)):
        hint = (
            " No pretrained weights ship with keras_modern_cnn and nothing is downloaded: "
            "train the model, or copy keras.applications weights into a twin with "
            "`keras_modern_cnn.utils.transfer_weights`."
            if weights in ("imagenet",)
            else ""
        )
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization) or the "
            f"path to an existing weights file to be loaded. Received: weights={weights!r}.{hint}"
        )
    check_positive_int("classes", classes)
    if not include_top:
        check_choice("pooling", pooling, POOLING_CHOICES)
    if not (classifier_activation is None or isinstance(classifier_activation, str) or callable(classifier_activation)):
        raise ValueError(
            "`classifier_activation` must be None, an activation name or a callable. "
            f"Received: classifier_activation={classifier_activation!r}"
        )
    if isinstance(classifier_activation, str):
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


def _spatial_and_channels(shape):
    """Split a (H, W, C) or (C, H, W) shape by the current image data format."""
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
    spatial, channels = _spatial_and_channels(tuple(input_shape))
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


def image_input(
    *, input_tensor, input_shape, default_shape, include_top, min_size, require_static, name
):
    """Resolve `input_tensor`/`input_shape` as keras.applications does.

    Returns `(model_inputs, x)`: the tensors the functional `keras.Model` starts from, and
    the tensor the first layer consumes.
    """
    if input_tensor is not None:
        if not hasattr(input_tensor, "shape") or len(input_tensor.shape) != len(default_shape) + 1:
            raise ValueError(
                f"`input_tensor` must be a tensor of rank {len(default_shape) + 1} "
                "(batch included). Received: "
                f"input_tensor={getattr(input_tensor, 'shape', input_tensor)!r}"
            )
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                "`input_shape` and the shape of `input_tensor` disagree. "
                f"Received: input_shape={tuple(input_shape)!r}, input_tensor.shape={tensor_shape!r}"
            )
        check_input_shape(
            tensor_shape,
            min_size=min_size,
            require_static=require_static,
            spatial_rank=len(default_shape) - 1,
        )
        if keras.backend.is_keras_tensor(input_tensor):
            sources = keras.utils.get_source_inputs(input_tensor)
            return (sources[0] if len(sources) == 1 else sources), input_tensor
        x = keras.Input(tensor=input_tensor, shape=tensor_shape, name=f"{name}_input")
        return x, x
    if input_shape is None:
        if include_top:
            input_shape = default_shape
        else:
            spatial, channels = _spatial_and_channels(default_shape)
            flexible = (None,) * len(spatial)
            input_shape = (
                (channels, *flexible)
                if keras.config.image_data_format() == "channels_first"
                else (*flexible, channels)
            )
    shape = check_input_shape(
        input_shape,
        min_size=min_size,
        require_static=require_static,
        spatial_rank=len(default_shape) - 1,
    )
    x = keras.Input(shape=shape, name=f"{name}_input")
    return x, x


def load_weights_if_given(model, weights):
    """Load a weights file, turning a shape mismatch into a message that names the file."""
    if weights is None:
        return model
    try:
        model.load_weights(weights)
    except ValueError as error:
        raise ValueError(
            f"Could not load `weights` into {model.name!r}: the file does not match this "
            f"architecture (check `classes`, `include_top` and the variant). Received: "
            f"weights={str(weights)!r}. Cause: {error}"
        ) from None
    return model
