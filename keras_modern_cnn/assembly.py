"""Model assembly shared by every family of the zoo: the input, the heads, the weights file,
and the registration of each family's variants.

A family module holds one generic builder, one config table (`{registry name: Variant(...)}`),
a `Family` describing them, and one short explicit function per variant (as keras.applications
and torchvision write them):

    @RESNET.variant("resnet50")
    def ResNet50(include_top=True, weights=None, ..., name="resnet50", *, width_ratio=1.0, ...):
        return ResNet(**RESNET_CONFIGS["resnet50"].arguments(locals()))

`Family.variant` gives each the shared, complete docstring (keras.applications'
`BASE_DOCSTRING` pattern), checks its signature against the table and registers it.
"""

import dataclasses
import functools
import inspect
import textwrap
from typing import Any, Callable, Optional

import keras

from keras_modern_cnn import torch_graph
from keras_modern_cnn.registry import register_model
from keras_modern_cnn.types import DType
from keras_modern_cnn.validation import (
    check_bool,
    check_dtype_policy,
    check_input_shape,
    resolve_weights,
    spatial_and_channels,
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of a family's config table.

    Attributes:
        function_name: the public builder's name (e.g. "ResNet50").
        reference: what the variant reproduces exactly (shown in the README's model table).
        config: the generic builder's architecture arguments for this variant.
        default_input_shape: channels-last input shape with the top (keras.applications'
            `default_size`), passed to the generic builder as `default_input_shape`.
        classes: default number of classes.
    """

    function_name: str
    reference: str
    config: dict
    default_input_shape: tuple = (224, 224, 3)
    classes: int = 1000
    name: str = ""  # the table's key, set by `Family`

    def arguments(self, given):
        """The generic builder's keyword arguments: this row's `config` and default input,
        then `given`, the variant's own arguments (its `locals()` on entry), with a preset name
        in `weights` resolved to its `Preset` (presets belong to a registry name)."""
        weights = resolve_weights(self.name, given.get("weights"))
        return {**self.config, "default_input_shape": self.default_input_shape, **given,
                "weights": weights}


# The keras.applications arguments, documented once for every builder of the zoo.
APPLICATION_ARGS_DOC = """\
        include_top: whether to end with the classifier (`predictions`); `False` returns the
            last feature map, pooled by `pooling`.
        weights: `None` (random initialization), a preset ("imagenet" and the source's own
            names, e.g. torchvision's "IMAGENET1K_V2", timm's "a1_in1k";
            `keras_modern_cnn.weights.list_presets()`), downloaded once and cached, a weights
            file (`.keras`, `.weights.h5`, keras.applications' `.h5`, a PyTorch state dict
            `.pth`/`.pt`/`.bin` or `.safetensors` in torchvision's or timm's layout) or a
            Hugging Face Hub reference ("hf://timm/resnet18.a1_in1k").
        input_tensor: optional Keras tensor (e.g. the output of `keras.Input` or of a layer)
            to use as the model's input.
        input_shape: optional input shape without the batch axis (channels last unless the
            image data format is "channels_first"). Default: {default_input} with the top,
            any spatial size without it; sides of at least {min_size}.
        pooling: with `include_top=False`: `None` (the 4D feature map), "avg" or "max"
            (global pooling to a vector).
        classes: number of classes (default {classes}).
        classifier_activation: activation of `predictions`: "softmax" (default), `None`
            for logits, or any Keras activation name or callable.
        name: the model's name (default "{name}"), so two copies can live in one model.
        include_preprocessing: start with an `ImagePreprocessing` layer taking raw images
            (0-255, any size): resized to `input_shape`'s size (the aspect ratio is not
            kept), then scaled and normalised as the `weights` preset expects (ImageNet mean
            and std without a preset). Default False: inputs are the network's own."""

# `dtype`, added to every builder by `accepts_dtype` (KerasHub's argument).
DTYPE_DOC = """\
dtype: the dtype policy of every layer (KerasHub's `dtype`): "float32", "bfloat16",
    "mixed_bfloat16", ... or a `keras.DTypePolicy`; None (default) uses the global policy
    (`keras.config.set_dtype_policy`), which the call leaves unchanged."""

VARIANT_DOCSTRING = """\
Instantiates {function_name}: {reference}.

{summary}

Reference:
    {paper}

Args:
{application_args}
{options}
{dtype}

Returns:
    A functional `keras.Model`. `keras_modern_cnn.get_model({name!r}, features_only=True)`
    returns its stage outputs instead (see `keras_modern_cnn.features`).
"""

APPLICATION_PARAMETERS = (
    "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "name",
)
# Standard arguments every builder also takes, keyword-only (keras.applications gives each a
# model-specific position), before the family's options.
APPLICATION_KEYWORD_PARAMETERS = ("include_preprocessing",)


# Docstring entries of the options several families share (Google style, one home).
SHARED_OPTION_DOCS = {
    "dense_units": "dense_units: sizes of the hidden dense layers (default (4096, 4096)).",
    "dropout_rate": "dropout_rate: dropout after each hidden dense layer (0.5; 0 disables it).",
    "width_ratio": "width_ratio: multiplies every convolution's channel count (default 1).",
}


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of the zoo: its generic builder, its config table and what its variants share.

    Each registered variant is an explicit function with the keras.applications signature,
    decorated with `@FAMILY.variant("registry name")`, whose body calls the generic builder
    with its table row (`Variant.arguments`); the decorator gives it the shared docstring
    (`VARIANT_DOCSTRING`), checks its signature against the table and registers it.

    Attributes:
        name: the family's registry name ("resnet").
        builder: the generic builder; it takes a row's `config`, the standard arguments,
            `default_input_shape` and the `options`, all by keyword.
        configs: `{registry name: Variant}`, the family's config table.
        summary, paper: the docstring's description and reference lines.
        options: names of the generic builder's keyword arguments every variant also accepts
            (e.g. "width_ratio"), keyword-only, with the generic builder's defaults.
        option_docs: `{option: docstring entry}` for the options `SHARED_OPTION_DOCS` does not
            document, or documents otherwise for this family (continuation lines indented by 4).
        min_input_size: `callable(config)` giving the smallest input side of a row.
        stages: `callable(config)` giving the row's stage outputs, ((layer name, reduction), ...)
            from input to output (see `keras_modern_cnn.features`).
        exact_stages: every stage's side is exactly the input side / its reduction for inputs
            divisible by the largest reduction (what a U-Net decoder needs).
        task: "classification" or "segmentation".
    """

    name: str
    builder: Callable[..., Any]
    configs: dict
    summary: str
    paper: str
    options: tuple = ()
    option_docs: dict = dataclasses.field(default_factory=dict)
    min_input_size: Callable[[dict], Optional[int]] = lambda config: None
    stages: Callable[[dict], tuple] = lambda config: ()
    exact_stages: bool = False
    task: str = "classification"

    def __post_init__(self):
        for key, row in self.configs.items():  # each row learns its registry name
            if row.name != key:
                self.configs[key] = dataclasses.replace(row, name=key)

    def _metadata(self, registry_name):
        row = self.configs[registry_name]
        return dict(
            name=registry_name, family=self.name, task=self.task,
            default_input_shape=row.default_input_shape, reference=row.reference,
            min_input_size=self.min_input_size(row.config), stages=self.stages(row.config),
            exact_stages=self.exact_stages,
        )

    def register_builder(self, registry_name):
        """Register the generic builder itself as the row `registry_name`: the family's one
        architecture (NiN, or AlexNet beside AlexNetBN), keeping the builder's own docstring."""
        row = self.configs[registry_name]
        signature = inspect.signature(self.builder)
        defaults = {p: signature.parameters[p].default for p in ("name", "classes", "default_input_shape")}
        if row.function_name != self.builder.__name__ or row.config or defaults != dict(
            name=registry_name, classes=row.classes, default_input_shape=row.default_input_shape
        ):
            raise ValueError(
                f"Row {registry_name!r} registers {self.builder.__name__} itself, so its config "
                f"must be empty and its defaults the builder's. Received: {row!r}"
            )
        return register_model(**self._metadata(registry_name))(self.builder)

    def variant(self, registry_name):
        """Decorator: the explicit builder of row `registry_name`, documented and registered.

        Its signature must be the keras.applications one with the row's defaults, then the
        family's `options` (keyword-only, the generic builder's defaults): a function that
        drifts from its table row fails at import, naming what differs.
        """
        row = self.configs[registry_name]

        def decorator(function):
            expected = self._signature(registry_name)
            actual = without_annotations(inspect.signature(function))
            if function.__name__ != row.function_name or actual != expected:
                raise TypeError(
                    f"{function.__name__}{actual} must be {row.function_name}{expected} (its row "
                    f"{registry_name!r} of the {self.name} config table)"
                )
            function.__doc__ = self._docstring(registry_name)
            return register_model(**self._metadata(registry_name))(accepts_dtype(function))

        return decorator

    def _signature(self, registry_name):
        row = self.configs[registry_name]
        builder = inspect.signature(self.builder).parameters
        defaults = dict(name=registry_name, classes=row.classes)
        return inspect.Signature(
            [
                inspect.Parameter(
                    parameter, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=defaults.get(parameter, builder[parameter].default),
                )
                for parameter in APPLICATION_PARAMETERS
            ] + [
                inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, default=builder[option].default)
                for option in APPLICATION_KEYWORD_PARAMETERS + self.options
            ]
        )

    def _docstring(self, registry_name):
        row = self.configs[registry_name]
        option_docs = {**SHARED_OPTION_DOCS, **self.option_docs}
        return VARIANT_DOCSTRING.format(
            function_name=row.function_name, reference=row.reference, summary=self.summary,
            paper=self.paper, name=registry_name,
            application_args=_indent(APPLICATION_ARGS_DOC.format(
                default_input="x".join(map(str, row.default_input_shape)),
                min_size=self.min_input_size(row.config), classes=row.classes, name=registry_name,
            )),
            options=_indent("\n".join(option_docs[option] for option in self.options)),
            dtype=_indent(DTYPE_DOC),
        )


def accepts_dtype(builder):
    """Decorator giving `builder` a keyword-only `dtype` (KerasHub's builders' argument): the
    model is built under that dtype policy, so every layer records it (and a `.keras` file
    keeps it), then the global policy is restored. One mechanism for every builder of the zoo:
    `Family.variant` applies it to each variant, the generic builders carry it themselves.
    """
    parameters = inspect.signature(builder).parameters
    if "dtype" in parameters:
        raise TypeError(f"{builder.__name__} already has a `dtype` parameter")

    @functools.wraps(builder)
    def build(*args, dtype=None, **kwargs):
        if dtype is None:
            return builder(*args, **kwargs)
        policy = check_dtype_policy(dtype)
        previous = keras.config.dtype_policy()  # global state is per thread in Keras
        keras.config.set_dtype_policy(policy)
        try:
            return builder(*args, **kwargs)
        finally:
            keras.config.set_dtype_policy(previous)

    del build.__wrapped__  # introspection (inspect, griffe) reads the signature below
    signature = inspect.signature(builder)
    build.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(),
        inspect.Parameter("dtype", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DType),
    ])
    return build


def without_annotations(signature):
    """`signature` with its parameter and return annotations removed (names, kinds, defaults)."""
    return signature.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )


def _indent(lines):
    return textwrap.indent(textwrap.dedent(lines), "    ")


def image_input(
    *, input_tensor, input_shape, default_shape, include_top, min_size, require_static, name,
    include_preprocessing=False, weights=None,
):
    """Resolve `input_tensor`/`input_shape` as keras.applications does.

    Returns `(model_inputs, x)`: the tensors the functional `keras.Model` starts from, and
    the tensor the first layer consumes. With `include_preprocessing` (True, or the
    `Preprocessing` of RGB weights to come), `x` is the output of an `ImagePreprocessing` layer
    (`preprocessing_layer`) reading raw images.
    """
    if _check_preprocessing(include_preprocessing):
        return _preprocessed_input(
            input_tensor=input_tensor, input_shape=input_shape, default_shape=default_shape,
            include_top=include_top, min_size=min_size, require_static=require_static,
            name=name, weights=weights,
            spec=None if include_preprocessing is True else include_preprocessing,
        )
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
        return _from_tensor(input_tensor, tensor_shape, name)
    if input_shape is None:
        input_shape = default_shape if include_top else _flexible(default_shape)
    shape = check_input_shape(
        input_shape,
        min_size=min_size,
        require_static=require_static,
        spatial_rank=len(default_shape) - 1,
    )
    x = keras.Input(shape=shape, name=f"{name}_input")
    return x, x


def _check_preprocessing(include_preprocessing):
    """True or a `Preprocessing` (what `build_pretrained` passes for a file it will load) turn
    the preprocessing on; False off."""
    from keras_modern_cnn.weights.presets import Preprocessing

    if isinstance(include_preprocessing, Preprocessing):
        return True
    return check_bool("include_preprocessing", include_preprocessing)


def _flexible(shape):
    """`shape` (channels-last, as the registry records it) with any spatial size, in the
    current image data format."""
    spatial, channels = shape[:-1], shape[-1]
    flexible = (None,) * len(spatial)
    if keras.config.image_data_format() == "channels_first":
        return (channels, *flexible)
    return (*flexible, channels)


def _from_tensor(input_tensor, tensor_shape, name):
    if keras.backend.is_keras_tensor(input_tensor):
        sources = keras.utils.get_source_inputs(input_tensor)
        return (sources[0] if len(sources) == 1 else sources), input_tensor
    x = keras.Input(tensor=input_tensor, shape=tensor_shape, name=f"{name}_input")
    return x, x


def _preprocessed_input(
    *, input_tensor, input_shape, default_shape, include_top, min_size, require_static, name,
    weights, spec,
):
    """Raw images of any size in, `ImagePreprocessing` out: `input_shape` (or the default with
    the top) is the size the network runs at, and the raw images are resized to it."""
    spatial_rank = len(default_shape) - 1
    network_shape = input_shape if input_shape is not None else (default_shape if include_top else None)
    if network_shape is not None:
        network_shape = check_input_shape(
            network_shape, min_size=min_size, require_static=require_static,
            spatial_rank=spatial_rank,
        )
    if input_tensor is not None:
        if not hasattr(input_tensor, "shape") or len(input_tensor.shape) != spatial_rank + 2:
            raise ValueError(
                f"`input_tensor` must be a tensor of rank {spatial_rank + 2} (batch included). "
                f"Received: input_tensor={getattr(input_tensor, 'shape', input_tensor)!r}"
            )
        inputs, raw = _from_tensor(input_tensor, tuple(input_tensor.shape[1:]), name)
    else:
        _, channels = spatial_and_channels(tuple(network_shape or _flexible(default_shape)))
        channels_first = keras.config.image_data_format() == "channels_first"
        raw_shape = (channels, None, None) if channels_first else (None, None, channels)
        inputs = raw = keras.Input(shape=raw_shape, name=f"{name}_input")
    spatial, channels = spatial_and_channels(tuple(raw.shape[1:]))
    size = None
    if network_shape is not None:
        network_spatial, _ = spatial_and_channels(tuple(network_shape))
        size = None if None in network_spatial else tuple(network_spatial)
    return inputs, preprocessing_layer(weights, channels, size, spec=spec)(raw)


def preprocessing_layer(weights, channels, size, *, spec=None):
    """The `ImagePreprocessing` layer for `weights` on images with `channels` channels,
    resizing to `size` ((height, width) or None).

    `spec` (a `Preprocessing`) is that of RGB weights loaded later; else a preset brings its
    own, and any other weights ImageNet's mean and std. RGB weights (`spec`, a preset, a
    PyTorch file, an `hf://` reference) on one-channel images see the gray channel repeated
    three times; otherwise one-channel models normalise with the channels' average mean and std.
    """
    from keras_modern_cnn.layers import ImagePreprocessing
    from keras_modern_cnn.weights.loading import is_pretrained_source
    from keras_modern_cnn.weights.presets import TORCH, Preset

    rgb_weights = spec is not None or is_pretrained_source(weights)
    if spec is None:
        spec = weights.preprocessing if isinstance(weights, Preset) else TORCH
    if channels not in (1, 3):
        raise ValueError(
            "`include_preprocessing` normalises RGB (3-channel) or grayscale (1-channel) images. "
            f"Received: {channels} input channels"
        )
    to_rgb = channels == 1 and rgb_weights
    mean, std = spec.mean, spec.std
    if channels == 1 and not to_rgb:
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    return ImagePreprocessing(
        size=size, interpolation=spec.interpolation, scale=spec.scale, mean=mean, std=std,
        channel_order=spec.channel_order if channels == 3 or to_rgb else "rgb",
        grayscale_to_rgb=to_rgb, name="preprocessing",
    )


def finished_model(model, weights, *, family=None):
    """A builder's last step: `model` with `weights` (a `Preset`, a file, an `hf://` reference)
    loaded, its family's PyTorch layout (`family`) converting state dicts
    (`keras_modern_cnn.weights.load_weights`), and on torch its graph run by
    `keras_modern_cnn.torch_graph` (intermediates released after their last use)."""
    if weights is not None:
        from keras_modern_cnn.weights.loading import load_weights

        model = load_weights(model, weights, family=family)
    return torch_graph.install(model)


def global_pool(x, pooling, *, name="avg_pool"):
    """keras.applications' `pooling` for `include_top=False`: None, "avg" or "max"."""
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=name.replace("avg", "max"))(x)
    return x


def pooled_classifier(x, *, include_top, pooling, classes, classifier_activation):
    """Global average pooling + dense `predictions` (top), or the requested pooling only."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return global_pool(x, pooling)


def dense_classifier(
    x, *, include_top, pooling, dense_units, dropout_rate, classes, classifier_activation
):
    """Flatten, dense+ReLU layers `fc1, fc2, ...` each followed by dropout, then `predictions`
    (top: LeNet-style AlexNet and VGG heads); without the top, the requested pooling only."""
    if not include_top:
        return global_pool(x, pooling)
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{index}")(x)
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"fc{index}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
