"""The model registry: every registered builder, with what tests and the CLI need to know.

Builders register themselves with `@register_model(...)`; `list_models("resnet*")` and
`get_model("resnet50", classes=10)` give access by name, as timm and torchvision do.
"""

import dataclasses
import fnmatch

from keras_modern_cnn.validation import check_choice

TASKS = ("classification", "segmentation")


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
    """

    name: str
    builder: object
    family: str
    task: str
    default_input_shape: tuple
    reference: str


_REGISTRY = {}


def register_model(*, name, family, default_input_shape, reference, task="classification"):
    """Decorator registering a builder under `name`. Duplicate names raise."""
    check_choice("task", task, TASKS)

    def decorator(builder):
        if name in _REGISTRY:
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
        )
        return builder

    return decorator


def unregister_model(name):
    """Remove a registered model (one added for an experiment or a test); returns its spec.

    Unknown names raise the same error as `get_spec`.
    """
    return _REGISTRY.pop(get_spec(name).name)


def list_models(pattern="*", *, family=None, task=None):
    """Sorted registered names matching a shell-style wildcard `pattern` (e.g. "resnet*")."""
    return sorted(
        spec.name
        for spec in _REGISTRY.values()
        if fnmatch.fnmatch(spec.name, pattern.lower())
        and (family is None or spec.family == family)
        and (task is None or spec.task == task)
    )


def get_spec(name):
    """The `ModelSpec` of a registered model; unknown names list what exists."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        close = [n for n in _REGISTRY if isinstance(key, str) and key[:3] in n]
        hint = f" Did you mean one of: {', '.join(sorted(close))}?" if close else ""
        raise ValueError(
            f"Unknown model name. Registered models: {', '.join(sorted(_REGISTRY))}. "
            f"Received: name={name!r}.{hint}"
        )
    return _REGISTRY[key]


def get_model(model_name, /, **kwargs):
    """Build the registered model `model_name`, forwarding keyword arguments to its builder.

    `get_model("resnet50", classes=10, name="backbone")`: keyword `name` is the Keras model's.
    """
    return get_spec(model_name).builder(**kwargs)
