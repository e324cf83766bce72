"""The model registry: every registered builder, with what tests and the CLI need to know.

Builders register themselves with `@register_model(...)` (family modules through
`keras_modern_cnn.assembly.Family`, from their config table); `list_models("resnet*")`
and `get_model("resnet50", classes=10)` give access by name, as timm and torchvision do;
`get_model("resnet50", features_only=True, out_indices=(1, 2))` gives stage outputs (timm's
`features_only`), and `get_model_meta("resnet50")` the model card.
"""

import dataclasses
import fnmatch
import importlib
import json
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from keras_modern_cnn.choices import TASKS, natural_key
from keras_modern_cnn.validation import check_bool, check_choice

if TYPE_CHECKING:  # the registry itself imports no backend
    import keras


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one registered variant.

    Attributes:
        name: registry name (lower case, e.g. "resnet50").
        builder: the function building the model with the keras.applications signature.
        family: the family module ("resnet", "vgg", ...).
        task: "classification" or "segmentation".
        default_input_shape: channels-last input shape the builder uses by default.
        reference: the paper or library the variant reproduces exactly.
        min_input_size: smallest input side the builder accepts (None: not declared).
        stages: ((layer name, reduction), ...): the stage outputs `features_only` returns,
            from input to output; empty for models without stage features.
        exact_stages: stage sides are exactly input side / reduction for inputs divisible
            by the largest reduction, so a U-Net decoder can use them as skips.
    """

    name: str
    builder: Callable[..., Any]
    family: str
    task: str
    default_input_shape: tuple
    reference: str
    min_input_size: Optional[int] = None
    stages: tuple = ()
    exact_stages: bool = False


_REGISTRY: dict[str, ModelSpec] = {}
# The model cards: what every registered model is and costs, written by
# `python -m keras_modern_cnn.cards` and read without building a model (or importing Keras).
CARDS_PATH = pathlib.Path(__file__).with_name("model_cards.json")


def read_cards() -> dict[str, dict[str, Any]]:
    """name -> card (a dict) of every model of the zoo, as `keras_modern_cnn.cards` wrote them."""
    return json.loads(CARDS_PATH.read_text())


def _registry():
    """The registered models; the zoo registers itself on first use (it imports Keras)."""
    importlib.import_module("keras_modern_cnn.applications")
    return _REGISTRY


def register_model(
    *, name: str, family: str, default_input_shape: Sequence[int], reference: str,
    task: str = "classification", min_input_size: Optional[int] = None,
    stages: Sequence[tuple[str, int]] = (), exact_stages: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a builder under `name` (see `ModelSpec`). Duplicate names raise."""
    check_choice("task", task, TASKS)

    def decorator(builder):
        if name in _registry():
            raise ValueError(
                f"A model named {name!r} is already registered (by "
                f"{_REGISTRY[name].builder.__module__}.{_REGISTRY[name].builder.__name__}). "
                f"Received: name={name!r}"
            )
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            family=family,
            task=task,
            default_input_shape=tuple(default_input_shape),
            reference=reference,
            min_input_size=min_input_size,
            stages=tuple((str(layer), int(reduction)) for layer, reduction in stages),
            exact_stages=exact_stages,
        )
        return builder

    return decorator


def unregister_model(name: str) -> ModelSpec:
    """Remove a registered model (one added for an experiment or a test); returns its spec.

    Unknown names raise the same error as `get_spec`.
    """
    return _REGISTRY.pop(get_spec(name).name)


def list_models(
    pattern: str = "*", *, family: Optional[str] = None, task: Optional[str] = None
) -> list[str]:
    """Registered names matching a shell-style wildcard `pattern` (e.g. "resnet*"), in natural
    order (resnet18, resnet34, resnet50, resnet50v2, resnet101, ...)."""
    return sorted(
        (
            spec.name
            for spec in _registry().values()
            if fnmatch.fnmatch(spec.name, pattern.lower())
            and (family is None or spec.family == family)
            and (task is None or spec.task == task)
        ),
        key=natural_key,
    )


def encoder_names() -> list[str]:
    """Registered classifiers whose stages can feed a U-Net decoder (`ModelSpec.exact_stages`)."""
    return [name for name in list_models(task="classification") if _REGISTRY[name].exact_stages]


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered model; unknown names list what exists."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _registry():
        close = [n for n in _REGISTRY if isinstance(key, str) and key[:3] in n]
        hint = f" Did you mean one of: {', '.join(sorted(close))}?" if close else ""
        raise ValueError(
            f"Unknown model name. Registered models: {', '.join(sorted(_REGISTRY))}. "
            f"Received: name={name!r}.{hint}"
        )
    return _REGISTRY[key]


# timm's `create_model` spellings accepted by `get_model`, each for an argument of ours with
# the same meaning: {timm's name: ours}.
TIMM_ALIASES = {"num_classes": "classes"}


def get_model(
    model_name: str, /, *, features_only: bool = False,
    out_indices: Union[Sequence[int], int, None] = None, **kwargs: Any,
) -> "keras.Model":
    """Build the registered model `model_name`, forwarding keyword arguments to its builder.

    `get_model("resnet50", classes=10, name="backbone")`: keyword `name` is the Keras model's.
    timm's spelling `num_classes=` is accepted for `classes=` (`TIMM_ALIASES`); an argument
    the builder does not take is an error listing those it does.

    Args:
        features_only: return the stage outputs instead of the classifier (timm's
            `features_only`): a functional model with one output per selected stage, built
            with `include_top=False` (so `classes`, `pooling` and `classifier_activation` do
            not apply). Its `feature_info` attribute lists a `FeatureInfo(name, channels,
            reduction)` per output. Layer names are the classifier's, so its weights copy in
            by name (`keras_modern_cnn.features.copy_weights_by_name`).
        out_indices: indices into the model's stages (`get_spec(name).stages`, input to
            output; `get_model_meta(name)["feature_info"]` lists them); negative indices count
            from the last stage as in Python; one integer n selects the last n stages (timm).
            Default: every stage.
    """
    spec = get_spec(model_name)
    check_bool("features_only", features_only)
    kwargs = _builder_arguments(spec, kwargs)
    if not features_only:
        if out_indices is not None:
            raise ValueError(
                "`out_indices` selects stages of a `features_only=True` model. "
                f"Received: out_indices={out_indices!r}, features_only=False"
            )
        return spec.builder(**kwargs)
    if not spec.stages:
        raise ValueError(
            f"{spec.name!r} declares no stage features; models with features: "
            f"{', '.join(name for name in sorted(_REGISTRY) if _REGISTRY[name].stages)}. "
            f"Received: name={model_name!r}, features_only=True"
        )
    from keras_modern_cnn.features import feature_model

    for argument in ("include_top", "pooling", "classes", "classifier_activation"):
        if argument in kwargs:
            raise ValueError(
                f"`{argument}` does not apply with `features_only=True` (the feature model "
                f"has no head). Received: {argument}={kwargs[argument]!r}"
            )
    model = spec.builder(include_top=False, **kwargs)
    return feature_model(model, spec.stages, out_indices)


def _builder_arguments(spec, kwargs):
    """`kwargs` with timm's aliases renamed to ours, checked against the builder's signature."""
    import inspect

    kwargs = dict(kwargs)
    for alias, ours in TIMM_ALIASES.items():
        if alias in kwargs:
            if ours in kwargs:
                raise ValueError(
                    f"`{alias}` (timm's spelling) and `{ours}` name the same argument; pass one. "
                    f"Received: {alias}={kwargs[alias]!r}, {ours}={kwargs[ours]!r}"
                )
            kwargs[ours] = kwargs.pop(alias)
    parameters = inspect.signature(spec.builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return kwargs  # a builder taking **kwargs checks them itself
    unknown = [key for key in kwargs if key not in parameters]
    if unknown:
        raise ValueError(
            f"{spec.builder.__name__} (model {spec.name!r}) takes no argument "
            f"{', '.join(f'`{key}`' for key in unknown)}; its arguments: "
            f"{', '.join(parameters)} (and `num_classes` for `classes`, as timm). "
            f"Received: {', '.join(f'{key}={kwargs[key]!r}' for key in unknown)}"
        )
    return kwargs


def get_model_meta(model_name: str) -> dict[str, Any]:
    """The model card of a registered model, read without building it.

    Returns a dict: `name`, `family`, `task`, `reference`, `default_input_shape`,
    `min_input_size`, `params` (Keras `count_params()`, BN moving statistics included),
    `trainable_params`, `params_torchvision` (torchvision's convention: parameters without
    BN buffers, i.e. the trainable ones), `gflops` (forward, per image, at the default input:
    `keras_modern_cnn.utils.flops`), `feature_info` (a list of `FeatureInfo` at the default
    input; see `get_model(name, features_only=True)`) and `recipe` (the d2l training recipe
    where the book trains the model, else None).
    """
    from keras_modern_cnn.features import FeatureInfo
    from keras_modern_cnn.recipes import D2L_RECIPES, get_recipe

    spec = get_spec(model_name)
    cards = read_cards()
    if spec.name not in cards:
        raise ValueError(
            f"No model card for {spec.name!r}: regenerate them with `python -m "
            f"keras_modern_cnn.cards`. Received: name={model_name!r}"
        )
    card = cards[spec.name]
    return {
        "name": spec.name,
        "family": spec.family,
        "task": spec.task,
        "reference": spec.reference,
        "default_input_shape": spec.default_input_shape,
        "min_input_size": spec.min_input_size,
        "params": card["params"],
        "trainable_params": card["trainable_params"],
        "params_torchvision": card["trainable_params"],
        "gflops": card["flops"] / 1e9,
        "feature_info": [FeatureInfo(*info) for info in card["feature_info"]],
        "recipe": get_recipe("d2l", spec.name) if spec.name in D2L_RECIPES else None,
    }
