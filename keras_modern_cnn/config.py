"""One run, one configuration: `RunConfig`, resolved and validated once, saved as `run.json`.

Resolution order (timm's `train.py` and Keras's own `fit` keep the same shape): the defaults
below and the model family's optimizer and learning rate (`recipes.FAMILY_DEFAULTS`), then a
recipe's settings (`--recipe d2l`, Dive into Deep Learning chapter 8), then every
setting the user gave explicitly. `None` means "not given"; zero and negative numbers are
values and are validated as such. Every front-end (`kmc train`, `compare`, `tune`, Python)
builds a `RunConfig` with `resolve_config`; the stages in `keras_modern_cnn.training` read it.
"""

import dataclasses
import json
import math
import numbers
import os
from typing import Any, Optional

from keras_modern_cnn.choices import (
    EMBEDDED_DATASET,
    TASKS,
    JIT_COMPILE,
    NORMALIZATIONS,
    OPTIMIZERS,
    PRECISE_BN_BATCHES,
    STRATEGIES,
)
from keras_modern_cnn.recipes import family_defaults, get_recipe
from keras_modern_cnn.registry import encoder_names, get_spec
from keras_modern_cnn.validation import (
    check_bool,
    check_choice,
    check_number,
    check_output_path,
    check_positive_int,
    check_width_ratio,
)

# Keras's default rate per optimizer: the rate of an optimizer other than the family's own.
DEFAULT_LEARNING_RATES = {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
RUN_FILE = "run.json"
RUN_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run (see `resolve_config` for defaults and checks).

    Attributes:
        model: registered model name.
        dataset: "shapes" (embedded), a TFDS name, a `.npz` file or an image folder.
        recipe: None or "d2l" (recorded; its settings are already resolved into the rest).
        epochs, batch_size, optimizer, learning_rate: the optimisation.
        image_size: side of the square model input.
        width_ratio: channel multiplier of the model (None: the model's own).
        encoder: a segmentation model's encoder: None (its own) or a registered classifier
            of `registry.encoder_names()`, whose input side must then be a multiple of the
            encoder's largest reduction (32).
        weights: None (from scratch) or the weights to fine-tune from: a preset of the model
            ("imagenet", ...), a weights file or an "hf://" reference
            (`keras_modern_cnn.weights.build_pretrained`). Another library's weights
            (preset, PyTorch file, hf://) bring their preprocessing into the model, so the
            pipeline feeds raw pixels (`normalization="none"`, their default); a `.keras`
            file continues its own model (its preprocessing too).
        freeze_batch_norm: keep every BatchNorm's pretrained statistics, gamma and beta
            (default: True with `weights`; only with `weights`).
        data_dir, download: where TFDS data lives, whether it may be downloaded.
        train_examples, test_examples: keep only the first N examples of a split.
        normalization, augment: the input pipeline.
        skip_unreadable: skip (and count) unreadable image files instead of stopping.
        seed: seeds Keras, NumPy, Python and the pipeline.
        mixed_precision, jit_compile, strategy: how the model runs; mixed_precision None and
            jit_compile "auto" take the device's defaults (`keras_modern_cnn.devices`).
        precise_bn: training batches over which the BatchNorm statistics are re-estimated
            before each validation (`callbacks.PreciseBatchNorm`); 0 or None: off, the
            moving averages are kept.
        output_dir: the run directory (`keras_modern_cnn.rundir`).
    """

    model: str
    dataset: str = EMBEDDED_DATASET
    recipe: object = None
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    learning_rate: float = DEFAULT_LEARNING_RATES["sgd"]
    image_size: int = 28
    width_ratio: object = None
    encoder: object = None
    weights: object = None
    freeze_batch_norm: bool = False
    data_dir: object = None
    download: bool = True
    train_examples: object = None
    test_examples: object = None
    normalization: str = "scale"
    augment: bool = False
    skip_unreadable: bool = False
    seed: int = 0
    mixed_precision: object = None
    jit_compile: str = "auto"
    strategy: str = "none"
    precise_bn: object = PRECISE_BN_BATCHES
    output_dir: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)

    def differences(self, other):
        """`(name, self's value, other's value)` of the settings that change the result.

        Where the run lives and where its data is read from do not; the epochs are compared
        by the run directory's own rule (`keras_modern_cnn.rundir`). Nor does `precise_bn`:
        it changes which statistics the model is validated and saved with; training
        normalises with batch statistics either way (its passes over the training data only
        move the order later epochs draw batches in, as a resume does), and a run started
        before the setting existed resumes with it.
        """
        ignored = {"output_dir", "data_dir", "download", "epochs", "precise_bn"}
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            (name, mine[name], theirs[name])
            for name in mine
            if name not in ignored and mine[name] != theirs[name]
        ]


DEFAULTS = {
    field.name: field.default
    for field in dataclasses.fields(RunConfig)
    if field.default is not dataclasses.MISSING
}


def resolve_config(model: str, *, recipe: Optional[str] = None, **given: Any) -> RunConfig:
    """The `RunConfig` of a run: defaults, then `recipe`'s settings, then `given` (not None).

    The optimizer and learning rate default to the family's (`recipes.family_defaults`; an
    optimizer given without a rate takes Keras's default rate), the image size to the model's
    own input, the output directory to `runs/MODEL`. Every value is validated here, once,
    with a message naming the argument and the value.
    """
    unknown = sorted(set(given) - set(DEFAULTS) - {"recipe"})
    if unknown:
        raise TypeError(f"Unknown run settings {unknown}; known: {sorted(DEFAULTS)}")
    spec = get_spec(model)
    settings = dict(DEFAULTS, optimizer=None, learning_rate=None, image_size=None, output_dir=None)
    if recipe is not None:
        settings.update(get_recipe(recipe, spec.name))
    settings.update({key: value for key, value in given.items() if value is not None})
    settings["recipe"] = recipe
    if isinstance(settings["encoder"], str):
        settings["encoder"] = settings["encoder"].lower()  # as model names are
    family_optimizer, family_rate = family_defaults(spec.family)
    if settings["optimizer"] is None:
        settings["optimizer"] = family_optimizer
    if settings["learning_rate"] is None:
        optimizer = check_choice("optimizer", settings["optimizer"], OPTIMIZERS)
        settings["learning_rate"] = (
            family_rate if optimizer == family_optimizer else DEFAULT_LEARNING_RATES[optimizer]
        )
    if settings["image_size"] is None:
        settings["image_size"] = spec.default_input_shape[0]  # registry shapes: channels-last
    if settings["output_dir"] is None:
        settings["output_dir"] = os.path.join("runs", spec.name)
    if settings["weights"] is not None:
        if given.get("freeze_batch_norm") is None:
            settings["freeze_batch_norm"] = True  # fine-tuning's default (torchvision, timm)
        if given.get("normalization") is None and _raw_pixels(spec.name, settings["weights"]):
            settings["normalization"] = "none"  # the model normalises as its weights expect
    return validate(RunConfig(model=spec.name, **settings))


def _raw_pixels(model, weights):
    """Whether a model started from `weights` takes raw pixels (preprocessing inside): another
    library's weights, or a `.keras` model with its preprocessing."""
    from keras_modern_cnn.validation import resolve_weights
    from keras_modern_cnn.weights.loading import takes_raw_pixels

    return takes_raw_pixels(resolve_weights(model, weights))


def validate(config):
    """Check every setting of `config`; returns it. The one place run settings are checked."""
    get_spec(config.model)
    check_positive_int("epochs", config.epochs)
    check_positive_int("batch_size", config.batch_size)
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    check_number("learning_rate", config.learning_rate, low=0.0, low_open=True)
    if not math.isfinite(config.learning_rate):
        raise ValueError(
            f"`learning_rate` must be finite. Received: learning_rate={config.learning_rate!r}"
        )
    check_positive_int("image_size", config.image_size)
    if config.width_ratio is not None:
        check_width_ratio(config.width_ratio)
    if config.encoder is not None:
        _check_encoder(config)
    _check_weights(config)
    for name in ("train_examples", "test_examples"):
        if getattr(config, name) is not None:
            check_positive_int(name, getattr(config, name))
    check_choice("normalization", config.normalization, NORMALIZATIONS)
    for name in ("download", "augment", "skip_unreadable"):
        check_bool(name, getattr(config, name))
    if config.mixed_precision is not None:
        check_bool("mixed_precision", config.mixed_precision)
    if config.precise_bn is not None:
        check_positive_int("precise_bn", config.precise_bn, minimum=0)
    if isinstance(config.seed, bool) or not isinstance(config.seed, numbers.Integral):
        raise ValueError(f"`seed` must be an integer. Received: seed={config.seed!r}")
    check_choice("jit_compile", config.jit_compile, JIT_COMPILE)
    check_choice("strategy", config.strategy, STRATEGIES)
    for name in ("dataset", "output_dir"):
        value = getattr(config, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")
    check_output_path("output_dir", config.output_dir)
    return config


def _check_weights(config):
    """`weights` names a preset, a weights file or an hf:// reference; with pretrained weights
    the pipeline feeds raw pixels; BatchNorm is frozen only when fine-tuning."""
    check_bool("freeze_batch_norm", config.freeze_batch_norm)
    if config.weights is None:
        if config.freeze_batch_norm:
            raise ValueError(
                "`freeze_batch_norm` keeps pretrained BatchNorm statistics: it needs `weights` "
                "(`--weights imagenet` or a file). Received: freeze_batch_norm=True, weights=None"
            )
        return
    if not isinstance(config.weights, str) or not config.weights:
        raise ValueError(
            f"`weights` must be a preset name, a file path or 'hf://...'. Received: weights={config.weights!r}"
        )
    from keras_modern_cnn.weights.loading import WEIGHT_FILES

    if os.path.isfile(config.weights) and not config.weights.lower().endswith(WEIGHT_FILES):
        raise ValueError(
            f"`weights` must be a weights file ({', '.join(WEIGHT_FILES)}). "
            f"Received: weights={config.weights!r}"
        )
    if _raw_pixels(config.model, config.weights) and config.normalization != "none":
        raise ValueError(
            "These weights bring their preprocessing into the model, which takes raw 0-255 "
            "pixels: `normalization` must be 'none' (the default with these weights). "
            f"Received: normalization={config.normalization!r}, weights={config.weights!r}"
        )


def _check_encoder(config):
    """`encoder` names an encoder of a segmentation model whose reduction divides the input."""
    if get_spec(config.model).task != "segmentation":
        raise ValueError(
            "`encoder` replaces a segmentation model's encoder (e.g. `kmc train unet --encoder "
            f"resnet18`); {config.model} is a classifier. Received: encoder={config.encoder!r}, "
            f"model={config.model!r}"
        )
    check_choice("encoder", config.encoder, encoder_names())
    reduction = get_spec(config.encoder).stages[-1][1]
    if config.image_size % reduction:
        below = config.image_size // reduction * reduction
        nearest = {max(below, reduction), below + reduction}
        raise ValueError(
            f"`image_size` must be a multiple of {reduction} with encoder={config.encoder!r} "
            f"(its deepest stage reduces the input {reduction}x), e.g. "
            f"{' or '.join(map(str, sorted(nearest)))}. Received: image_size={config.image_size}"
        )


def config_to_json(config, data_info=None, device=None):
    """The text of `run.json`: the configuration, what the data told (class names, ...) and
    the device settings the run resolved (`keras_modern_cnn.devices.DeviceSettings.to_dict`)."""
    record = {"format": RUN_FORMAT, "config": config.to_dict(), "data": data_info or {},
              "device": device or {}}
    return json.dumps(record, indent=2, allow_nan=False) + "\n"


def read_run_file(path):
    """`(RunConfig, data_info)` from a `run.json`, validated as a new run's settings are.

    A file that is not one, a missing or mistyped field, or a setting `validate` refuses is an
    error naming the file and the field: a hand-edited run is never silently misread.
    """
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError) as error:
        _bad_run_file(path, f"not a readable run file ({type(error).__name__}: {error})")
    if not isinstance(record, dict):
        _bad_run_file(path, "not a run file (it must hold a JSON object)")
    if record.get("format", RUN_FORMAT) != RUN_FORMAT:
        _bad_run_file(path, f"field `format` must be {RUN_FORMAT}; it is {record.get('format')!r}")
    settings = record.get("config")
    if not isinstance(settings, dict):
        _bad_run_file(path, f"field `config` must be an object of run settings; it is {settings!r}")
    unknown = sorted(set(settings) - {field.name for field in dataclasses.fields(RunConfig)})
    if unknown:
        _bad_run_file(path, f"field `config.{unknown[0]}` is not a run setting")
    if "model" not in settings:
        _bad_run_file(path, "field `config.model` is missing")
    try:
        config = validate(RunConfig(**settings))
    except (ValueError, KeyError) as error:  # the one-line message of the failed check
        message = str(error).strip("'\"")
        field = message.split("`")[1] if message.count("`") >= 2 else "model"
        _bad_run_file(path, f"field `config.{field}`: {message}")
    data = record.get("data", {})
    if not isinstance(data, dict):
        _bad_run_file(path, f"field `data` must be an object; it is {data!r}")
    for key, (kind, check) in _DATA_FIELDS.items():
        if key in data and not check(data[key]):
            _bad_run_file(path, f"field `data.{key}` must be {kind}; it is {data[key]!r}")
    names = data.get("class_names")
    if names is not None and "num_classes" in data and len(names) != data["num_classes"]:
        _bad_run_file(path, f"field `data.class_names` holds {len(names)} names but "
                      f"`data.num_classes` is {data['num_classes']}")
    return config, data


def _bad_run_file(path, problem):
    raise ValueError(
        f"{path}: {problem}. Fix the file or start over with --overwrite. "
        f"Received: run_file={str(path)!r}"
    )


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


# run.json's "data": what each field a reader relies on must hold (`training.data_info`).
_DATA_FIELDS = {
    "name": ("a string", lambda v: isinstance(v, str)),
    "task": ("one of the tasks", lambda v: v in TASKS),
    "channels": ("an integer >= 1", _positive_int),
    "num_classes": ("an integer >= 1", _positive_int),
    "class_names": ("a list of strings",
                    lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)),
    "image_size": ("an integer >= 1", _positive_int),
    "normalization": ("one of the normalizations", lambda v: v in NORMALIZATIONS),
    "pixel_scale": ("a number > 0", lambda v: isinstance(v, (int, float))
                    and not isinstance(v, bool) and math.isfinite(v) and v > 0),
}
