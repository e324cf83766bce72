"""KerasTuner hypermodels: one `keras_tuner.HyperModel` per family of the zoo.

Each hypermodel calls its family's generic builder (`ResNet(stack_depths, block_type, ...)`,
`DenseNet(blocks, growth_rate, ...)`, ...) with values drawn from a search space whose names
and defaults are stable (`search_space()` lists them). The defaults are each family's reference
configuration (BN-LeNet, AlexNet, VGG-11, NiN, GoogLeNet, ResNet-18's depths, the d2l
DenseNet, U-Net), which `hypermodel.build(keras_tuner.HyperParameters())` builds.

Any dimension is fixed or narrowed by a constructor keyword named like it, or by `hp.Fixed`
in the `hyperparameters` given to a tuner (KerasTuner keeps an entry that already exists):

    HyperResNet(input_shape=(32, 32, 3), classes=10,
                width_ratio=0.5,                    # a value: hp.Fixed
                optimizer=["adam", "sgd"],          # a list: hp.Choice
                learning_rate=(1e-4, 1e-2))         # a (low, high) tuple: the range, same sampling

KerasTuner's own conventions hold: `hp.Choice("batch_norm", [True, False])` (which KerasTuner
stores as 1 and 0) reaches the builders as a bool; `input_tensor=` replaces `input_shape`;
`augment=keras_tuner.applications.HyperImageAugment(...)` searches an augmentation in front
of the network. The training dimensions (`optimizer`, `learning_rate`) are registered when
`make_optimizer(hp)` uses them, so a `compile_model` override that compiles its own way
leaves them out of the search instead of searching a value nothing reads.

Labels: `label_mode` as in `keras.utils.image_dataset_from_directory`: "int" (sparse integer
labels, softmax), "categorical" (one-hot, softmax) or "binary" (0/1, one sigmoid unit).
Failing trials (non-finite loss, out of memory, an invalid combination such as a U-Net deeper
than its input allows) raise `keras_tuner.errors.FailedTrialError`: KerasTuner records the
trial as failed and goes on.

References: O'Malley et al., KerasTuner (https://keras.io/keras_tuner/); Bergstra & Bengio,
"Random Search for Hyper-Parameter Optimization", JMLR 2012 (log-uniform learning rates).
"""

import contextlib
import dataclasses
import math
import numbers
from typing import Optional

import keras
import keras_tuner
import numpy as np
from keras_modern_cnn.applications import (
    alexnet,
    densenet,
    googlenet,
    lenet,
    nin,
    resnet,
    unet,
    vgg,
)
from keras_modern_cnn.tuning._compat import is_rand_augment
from keras_tuner.errors import FailedTrialError

from keras_modern_cnn import losses
from keras_modern_cnn.callbacks import PreciseBatchNorm
from keras_modern_cnn.choices import OPTIMIZERS, PRECISE_BN_BATCHES
from keras_modern_cnn.recipes import D2L_RECIPES
from keras_modern_cnn.registry import get_spec
from keras_modern_cnn.training import make_optimizer
from keras_modern_cnn.validation import (
    POOLING_CHOICES,
    check_bool,
    check_choice,
    check_input_shape,
    check_number,
    check_positive_int,
    check_width_ratio,
)

__all__ = [
    "HyperCNN",
    "HyperLeNet",
    "HyperAlexNet",
    "HyperVGG",
    "HyperNiN",
    "HyperGoogLeNet",
    "HyperResNet",
    "HyperDenseNet",
    "HyperUNet",
    "HYPERMODELS",
    "Range",
    "Options",
]

LABEL_MODES = ("int", "categorical", "binary")
# Registered by `HyperCNN.make_optimizer`, not when the network is built.
TRAINING_DIMENSIONS = ("optimizer", "learning_rate")


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric dimension: `hp.Int` (`integer=True`) or `hp.Float` over [low, high].

    `check(name, value)` validates what a user may ask for (a `validation` helper);
    `step` None samples continuously.
    """

    low: float
    high: float
    default: float
    check: object
    integer: bool = False
    sampling: str = "linear"
    step: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Options:
    """A categorical dimension: `hp.Choice`, or `hp.Boolean` for (False, True).

    `check(name, value)` validates what a user may choose (None: one of `values`).
    """

    values: tuple
    default: object
    check: object = None


def _positive_number(name, value):
    return float(check_number(name, value, low=0.0, low_open=True))


def _dropout_rate(name, value):
    return float(check_number(name, value, low=0.0, high=1.0, high_open=True))


def _common_space():
    return {
        "width_ratio": Range(
            0.25, 2.0, 1.0, check=lambda _, value: check_width_ratio(value), step=0.25
        ),
        "learning_rate": Range(1e-4, 1e-1, 1e-3, check=_positive_number, sampling="log"),
        "optimizer": Options(
            ("adam", "sgd", "adamw", "rmsprop"), "adam",
            check=lambda name, value: check_choice(name, value, OPTIMIZERS),
        ),
    }


def _boolean(default):
    return Options((False, True), default, check=check_bool)


def _depth(low, high, default):
    return Range(low, high, default, check=check_positive_int, integer=True)


def _drop_path_rate():
    return Range(0.0, 0.3, 0.0, check=_dropout_rate, step=0.1)


def _units(values, default):
    return Options(values, default, check=check_positive_int)


class HyperCNN(keras_tuner.HyperModel):
    """Base class: a family's search space, its generic builder, the head, loss and optimizer.

    Args:
        input_shape: model input without the batch axis, e.g. (32, 32, 3). Not needed
            with `input_tensor`.
        classes: number of classes (with `label_mode="binary"`: 2). Required with
            `include_top=True`.
        input_tensor: a Keras tensor (e.g. `keras.Input(...)` or a layer's output) every
            trial's model is built on, as in KerasTuner's `HyperResNet`.
        augment: a hypermodel building an image-to-image model applied in front of the
            network while training (random layers are identity at inference):
            `keras_tuner.applications.HyperImageAugment(input_shape, augment_layers=0, ...)`
            searches its factors with the rest; `True` takes it with KerasTuner's defaults.
            Its RandAugment mode (`augment_layers` > 0) is refused: KerasTuner's
            `RandAugment` layer neither reloads from a `.keras` file nor runs on JAX.
        label_mode: "int" (sparse labels), "categorical" (one-hot) or "binary".
        include_top: build the classifier. Without it `build` returns the `pooling` features
            uncompiled, unless a subclass overrides `compile_model` (add a head, compile).
        pooling: None, "avg" or "max" (with `include_top=False`).
        metrics: compiled metrics (default accuracy; the tuner's objective is `val_accuracy`).
        precise_bn: training batches over which each trial re-estimates its BatchNorm
            statistics before every validation (`keras_modern_cnn.callbacks.PreciseBatchNorm`),
            so trials are scored, and the best kept, with the statistics their weights have;
            0 or None: the moving averages. Default on, as `kmc train`.
        name: as in `keras_tuner.HyperModel`.
        tunable: as in `keras_tuner.HyperModel`.
        **search_space: fix (a value), choose among (a list) or bound (a `(low, high)` tuple)
            any dimension of `search_space()`, by its name.
    """

    family: Optional[str] = None
    # `kmc tune`'s default input side: the d2l recipe's for the family's book model.
    default_input_size: Optional[int] = None

    def __init__(
        self,
        input_shape=None,
        classes=None,
        *,
        input_tensor=None,
        augment=None,
        label_mode="int",
        include_top=True,
        pooling=None,
        metrics=("accuracy",),
        precise_bn=PRECISE_BN_BATCHES,
        name=None,
        tunable=True,
        **search_space,
    ):
        super().__init__(name=name, tunable=tunable)
        if input_tensor is not None:
            if not keras.backend.is_keras_tensor(input_tensor):
                raise ValueError(
                    "`input_tensor` must be a Keras tensor (`keras.Input(...)` or a layer's "
                    f"output). Received: input_tensor={input_tensor!r}"
                )
            tensor_shape = tuple(input_tensor.shape[1:])
            if input_shape is not None and tuple(input_shape) != tensor_shape:
                raise ValueError(
                    "`input_shape` and the shape of `input_tensor` disagree. Received: "
                    f"input_shape={tuple(input_shape)!r}, input_tensor.shape={tensor_shape!r}"
                )
            input_shape = tensor_shape
        elif input_shape is None:
            raise ValueError(
                "Pass `input_shape` (e.g. (32, 32, 3)) or `input_tensor`. "
                "Received: input_shape=None, input_tensor=None"
            )
        self.input_shape = check_input_shape(input_shape, min_size=1, require_static=False)
        self.input_tensor = input_tensor
        self.augment = _augmentation(augment, self.input_shape)
        self.label_mode = check_choice("label_mode", label_mode, LABEL_MODES)
        self.include_top = check_bool("include_top", include_top)
        if include_top or classes is not None:
            self.classes = check_positive_int("classes", classes)
        else:
            self.classes = None
        if label_mode == "binary" and self.classes not in (None, 2):
            raise ValueError(
                "`label_mode='binary'` is for two classes (one sigmoid output). "
                f"Received: classes={classes!r}"
            )
        self.pooling = None if include_top else check_choice("pooling", pooling, POOLING_CHOICES)
        if not isinstance(metrics, (list, tuple)):
            raise ValueError(f"`metrics` must be a list or tuple. Received: metrics={metrics!r}")
        self.metrics = list(metrics)
        self.precise_bn = None if precise_bn is None else check_positive_int(
            "precise_bn", precise_bn, minimum=0)
        self._space = self.default_search_space()
        for key, value in search_space.items():
            if key not in self._space:
                raise ValueError(
                    f"{type(self).__name__} has no search dimension {key!r}; its dimensions are "
                    f"{', '.join(self._space)}. Received: {key}={value!r}"
                )
            self._space[key] = _narrow(key, self._space[key], value)

    @classmethod
    def default_search_space(cls):
        """Names and defaults of every dimension: the family's own, then the common ones."""
        return {**cls.family_space(), **_common_space()}

    @classmethod
    def family_space(cls):
        raise NotImplementedError

    def search_space(self):
        """This hypermodel's dimensions (after the constructor's fixes and narrowings)."""
        return dict(self._space)

    def declare_hyperparameters(self, hp):
        """Register the network's dimensions in `hp` (KerasTuner's hook); return the values
        `hp` holds for them. The training dimensions (`TRAINING_DIMENSIONS`) are registered
        by `make_optimizer`, when a model is compiled with them."""
        return {
            name: _declare(hp, name, spec)
            for name, spec in self._space.items()
            if name not in TRAINING_DIMENSIONS
        }

    def build(self, hp):
        values = self.declare_hyperparameters(hp)
        arguments = dict(
            include_top=self.include_top,
            pooling=self.pooling,
            width_ratio=values["width_ratio"],
        )
        if self.augment is not None:
            inputs = keras.Input(self.input_shape) if self.input_tensor is None else self.input_tensor
            arguments["input_tensor"] = self.augment.build(hp)(inputs)
        elif self.input_tensor is not None:
            arguments["input_tensor"] = self.input_tensor
        else:
            arguments["input_shape"] = self.input_shape
        if self.include_top:
            binary = self.label_mode == "binary"
            arguments.update(
                classes=1 if binary else self.classes,
                classifier_activation="sigmoid" if binary else "softmax",
            )
        try:
            with _fail_on_resource_exhaustion():
                model = self.build_network(values, **arguments)
        except ValueError as error:  # an invalid combination of values
            raise FailedTrialError(
                f"{type(self).__name__}: invalid combination {values}: {error}"
            ) from error
        return self.compile_model(hp, model)

    def build_network(self, values, **arguments):
        """Call the family's generic builder with the drawn `values` (subclasses)."""
        raise NotImplementedError

    def compile_model(self, hp, model):
        """Hook: compile `model` for `hp`; returns the model the tuner trains.

        With `include_top`, compiles with `make_optimizer(hp)`, the loss of `label_mode`
        and `metrics`. Without, returns the feature model uncompiled: override this method
        to add your head and compile (with `self.make_optimizer(hp)` to keep the searched
        optimizer and learning rate).
        """
        if not self.include_top:
            return model
        model.compile(optimizer=self.make_optimizer(hp), loss=self.loss(), metrics=self.metrics)
        return model

    def make_optimizer(self, hp):
        """The optimizer named by `hp["optimizer"]` at learning rate `hp["learning_rate"]`,
        registering both dimensions in `hp` (only a model compiled with them searches them)."""
        values = {name: _declare(hp, name, self._space[name]) for name in TRAINING_DIMENSIONS}
        return make_optimizer(values["optimizer"], values["learning_rate"])

    def loss(self):
        return {
            "int": losses.SparseCategoricalCrossentropy,  # trains per-pixel softmax on torch too
            "categorical": keras.losses.CategoricalCrossentropy,
            "binary": keras.losses.BinaryCrossentropy,
        }[self.label_mode]()

    def fit(self, hp, model, *args, **kwargs):
        """`model.fit`, failing the trial on a non-finite loss or when memory runs out; with
        `precise_bn`, precise BatchNorm statistics before each validation from the training
        data (`x`: batches, or arrays cut into `batch_size` batches)."""
        callbacks = list(kwargs.pop("callbacks", None) or []) + [FailOnNonFiniteLoss()]
        if self.precise_bn:
            callbacks.append(self._precise_batch_norm(args[0] if args else kwargs.get("x"), kwargs))
        with _fail_on_resource_exhaustion():
            return model.fit(*args, callbacks=callbacks, **kwargs)


    def _precise_batch_norm(self, x, fit_arguments):
        """The trial's `PreciseBatchNorm` on its training data: batches, or an array cut into
        `batch_size` batches, without the `validation_split` share `fit` validates on."""
        if not isinstance(x, np.ndarray):
            return PreciseBatchNorm(x, self.precise_bn)
        split = fit_arguments.get("validation_split")
        if split:  # Keras validates on the last `split` of the examples
            x = x[:int(math.floor(len(x) * (1.0 - split)))]
        return PreciseBatchNorm(x, self.precise_bn, batch_size=fit_arguments.get("batch_size"))


class FailOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop a trial whose training loss became NaN or infinite (as `TerminateOnNaN`), failed."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise FailedTrialError(f"Non-finite training loss {float(loss)} at batch {batch}.")


@contextlib.contextmanager
def _fail_on_resource_exhaustion():
    """Turn an out-of-memory error of either backend into a failed trial."""
    try:
        yield
    except FailedTrialError:
        raise
    except Exception as error:
        text = f"{type(error).__name__}: {error}"
        if "ResourceExhausted" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text:
            raise FailedTrialError(f"Out of memory: {text[:500]}") from error
        raise


def _narrow(name, spec, value):
    """The dimension `spec` fixed to `value`, restricted to a list, or bounded by a tuple."""
    if isinstance(value, tuple):
        if not isinstance(spec, Range):
            raise ValueError(
                f"`{name}` is categorical: pass one value or a list of values, not a range. "
                f"Received: {name}={value!r}"
            )
        if len(value) != 2:
            raise ValueError(
                f"A range for `{name}` is a (low, high) tuple. Received: {name}={value!r}"
            )
        low, high = (_check_value(name, spec, v) for v in value)
        if low > high:
            raise ValueError(f"A range for `{name}` needs low <= high. Received: {name}={value!r}")
        default = min(max(spec.default, low), high)
        return dataclasses.replace(spec, low=low, high=high, default=default)
    if isinstance(value, list):
        if not value:
            raise ValueError(
                f"A list for `{name}` needs at least one value. Received: {name}={value!r}"
            )
        values = tuple(dict.fromkeys(_check_value(name, spec, v) for v in value))
        default = spec.default if spec.default in values else values[0]
        return Options(values, default, check=spec.check)
    value = _check_value(name, spec, value)
    return Options((value,), value, check=spec.check)


def _check_value(name, spec, value):
    if spec.check is None:
        return check_choice(name, value, spec.values)
    value = spec.check(name, value)
    if isinstance(spec, Range):
        if spec.integer and not isinstance(value, numbers.Integral):
            raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
        return int(value) if spec.integer else float(value)
    return value


def _declare(hp, name, spec):
    """Register `spec` under `name` in `hp` (KerasTuner keeps an existing entry, e.g. hp.Fixed)."""
    if isinstance(spec, Options):
        if len(spec.values) == 1:
            value = hp.Fixed(name, spec.values[0])
        elif set(spec.values) == {False, True} and all(isinstance(v, bool) for v in spec.values):
            value = hp.Boolean(name, default=spec.default)
        else:
            value = hp.Choice(name, list(spec.values), default=spec.default)
        return _as_bool_where_boolean(spec, value)
    if spec.low == spec.high:
        return hp.Fixed(name, spec.low)
    if spec.integer:
        return hp.Int(
            name, int(spec.low), int(spec.high), step=int(spec.step or 1),
            sampling=spec.sampling, default=int(spec.default),
        )
    step = spec.step if spec.step is not None and spec.step <= spec.high - spec.low else None
    return hp.Float(
        name, float(spec.low), float(spec.high), step=step, sampling=spec.sampling,
        default=float(spec.default),
    )


def _as_bool_where_boolean(spec, value):
    """KerasTuner stores `hp.Choice(name, [True, False])` as the integers 1 and 0: for a
    boolean dimension, those mean True and False (the builders accept bools only)."""
    boolean = all(isinstance(v, bool) for v in spec.values)
    if boolean and not isinstance(value, bool) and isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    return value


def _augmentation(augment, input_shape):
    """The augmentation hypermodel of `HyperCNN(augment=...)`, or None."""
    if augment is None or augment is False:
        return None
    if augment is True:
        from keras_tuner.applications import HyperImageAugment

        return HyperImageAugment(input_shape=input_shape, augment_layers=0)
    if not isinstance(augment, keras_tuner.HyperModel):
        raise ValueError(
            "`augment` must be None, True or a `keras_tuner.HyperModel` building an "
            "image-to-image model (e.g. `keras_tuner.applications.HyperImageAugment`). "
            f"Received: augment={augment!r}"
        )
    if is_rand_augment(augment):
        raise ValueError(
            "HyperImageAugment's RandAugment mode (`augment_layers` > 0) builds KerasTuner's "
            "`RandAugment` layer, which does not reload from a `.keras` file and fails on JAX; "
            "pass `augment_layers=0` (each transform searched and applied in turn). "
            f"Received: augment={augment!r}"
        )
    return augment


class HyperLeNet(HyperCNN):
    """LeNet (d2l 7.6, 8.5.4): number and width of hidden dense layers, BatchNorm.

    Hidden layers shrink by 0.7 from `dense_units` (120 -> 84 at the default, LeNet-5).
    """

    family = "lenet"
    default_input_size = D2L_RECIPES["bn_lenet"]["image_size"]

    @classmethod
    def family_space(cls):
        return {
            "dense_layers": _depth(1, 3, 2),
            "dense_units": Range(16, 256, 120, check=check_positive_int, integer=True, step=8),
            "batch_norm": _boolean(True),
        }

    def build_network(self, values, **arguments):
        units = tuple(
            max(1, round(values["dense_units"] * 0.7**layer))
            for layer in range(values["dense_layers"])
        )
        return lenet.LeNet(
            dense_units=units, batch_norm=values["batch_norm"], name="lenet", **arguments
        )


class HyperAlexNet(HyperCNN):
    """AlexNet (d2l 8.1): BatchNorm, hidden dense width, dropout; its depth is fixed."""

    family = "alexnet"
    default_input_size = D2L_RECIPES["alexnet"]["image_size"]

    @classmethod
    def family_space(cls):
        return {
            "batch_norm": _boolean(False),
            "dense_units": _units((256, 1024, 4096), 4096),
            "dropout_rate": Range(0.0, 0.5, 0.5, check=_dropout_rate, step=0.1),
        }

    def build_network(self, values, **arguments):
        return alexnet.AlexNet(
            batch_norm=values["batch_norm"], dense_units=(values["dense_units"],) * 2,
            dropout_rate=values["dropout_rate"], name="alexnet", **arguments,
        )


class HyperVGG(HyperCNN):
    """VGG (d2l 8.2): depth by configuration A/B/D/E (vgg11..vgg19), BatchNorm, dense width."""

    family = "vgg"
    default_input_size = D2L_RECIPES["vgg11"]["image_size"]

    @classmethod
    def family_space(cls):
        return {
            "variant": Options(tuple(vgg.VGG_ARCHS), "vgg11"),
            "batch_norm": _boolean(False),
            "dense_units": _units((256, 1024, 4096), 4096),
        }

    def build_network(self, values, **arguments):
        return vgg.VGG(
            vgg.VGG_ARCHS[values["variant"]], batch_norm=values["batch_norm"],
            dense_units=(values["dense_units"],) * 2, name=values["variant"], **arguments,
        )


class HyperNiN(HyperCNN):
    """NiN (d2l 8.3): dropout before the class block; its depth is fixed."""

    family = "nin"
    default_input_size = D2L_RECIPES["nin"]["image_size"]

    @classmethod
    def family_space(cls):
        return {"dropout_rate": Range(0.0, 0.5, 0.5, check=_dropout_rate, step=0.1)}

    def build_network(self, values, **arguments):
        return nin.NiN(dropout_rate=values["dropout_rate"], name="nin", **arguments)


class HyperGoogLeNet(HyperCNN):
    """GoogLeNet (d2l 8.4): BatchNorm (the googlenet / googlenet_bn variants); depth is fixed."""

    family = "googlenet"
    default_input_size = D2L_RECIPES["googlenet"]["image_size"]

    @classmethod
    def family_space(cls):
        return {"batch_norm": _boolean(False)}

    def build_network(self, values, **arguments):
        return googlenet.GoogLeNet(batch_norm=values["batch_norm"], name="googlenet", **arguments)


class HyperResNet(HyperCNN):
    """ResNet (d2l 8.6): block type, the depth of each of the four stacks, stochastic depth
    (`drop_path_rate`, Huang et al. 2016) and zero-initialised last BN (Goyal et al. 2017).

    Defaults: basic blocks, (2, 2, 2, 2) (ResNet-18); depths 1..6 reach ResNet-34/50's (3, 4, 6, 3);
    regularisation off.
    """

    family = "resnet"
    default_input_size = D2L_RECIPES["resnet18"]["image_size"]

    @classmethod
    def family_space(cls):
        return {
            "block_type": Options(resnet.BLOCK_TYPES, "basic"),
            **{f"stack_depth_{stack}": _depth(1, 6, 2) for stack in range(1, 5)},
            "drop_path_rate": _drop_path_rate(),
            "zero_init_last_bn": _boolean(False),
        }

    def build_network(self, values, **arguments):
        depths = tuple(values[f"stack_depth_{stack}"] for stack in range(1, 5))
        return resnet.ResNet(
            depths, values["block_type"], drop_path_rate=values["drop_path_rate"],
            zero_init_last_bn=values["zero_init_last_bn"], name="resnet", **arguments,
        )


class HyperDenseNet(HyperCNN):
    """DenseNet (d2l 8.7): convolutions per dense block, growth rate, bottleneck (DenseNet-B),
    stochastic depth (`drop_path_rate`).

    Defaults: the d2l model (4, 4, 4, 4), growth rate 32, no bottleneck, no stochastic depth.
    The space is sized for a search on a CPU: blocks of 1-6 convolutions and `width_ratio`
    0.25-1.0 (a DenseNet's cost grows with the square of its block depth; blocks of 12 at
    width 2 made one epoch of 1,400 96x96 images take minutes). Widen it where compute
    allows, e.g. `HyperDenseNet(..., block_depth_3=(1, 24), width_ratio=(0.25, 2.0))`.
    """

    family = "densenet"
    default_input_size = D2L_RECIPES["densenet_d2l"]["image_size"]

    @classmethod
    def default_search_space(cls):
        space = super().default_search_space()
        space["width_ratio"] = dataclasses.replace(space["width_ratio"], high=1.0)
        return space

    @classmethod
    def family_space(cls):
        return {
            **{f"block_depth_{block}": _depth(1, 6, 4) for block in range(1, 5)},
            "growth_rate": _units((12, 16, 24, 32), 32),
            "bottleneck": _boolean(False),
            "drop_path_rate": _drop_path_rate(),
        }

    def build_network(self, values, **arguments):
        blocks = tuple(values[f"block_depth_{block}"] for block in range(1, 5))
        return densenet.DenseNet(
            blocks, values["growth_rate"], bottleneck=values["bottleneck"],
            drop_path_rate=values["drop_path_rate"], name="densenet", **arguments,
        )


class HyperUNet(HyperCNN):
    """U-Net (Ronneberger et al. 2015): the encoder ("classic", or a registered classifier of
    `unet.encoder_names()`), the classic encoder's number of downsamplings, BatchNorm;
    per-pixel labels.

    `depth` shapes the classic encoder only (an encoder brings its own stages). A depth whose
    2**depth (or an encoder whose stride 32) does not divide the input side fails that trial.
    """

    family = "unet"
    default_input_size = 64  # not in the book: small enough to search on a CPU

    @classmethod
    def family_space(cls):
        encoders = ("classic", *unet.encoder_names())
        return {
            "encoder": Options(
                encoders, "classic", check=lambda name, value: check_choice(name, value, encoders)
            ),
            "depth": _depth(2, 4, 4),
            "batch_norm": _boolean(False),
        }

    def build_network(self, values, **arguments):
        if values["encoder"] == "classic":
            return unet.UNet(
                depth=values["depth"], batch_norm=values["batch_norm"], name="unet", **arguments
            )
        return unet.UNet(
            encoder=get_spec(values["encoder"]).name, batch_norm=values["batch_norm"],
            name="unet", **arguments,
        )


HYPERMODELS = {
    cls.family: cls
    for cls in (
        HyperLeNet, HyperAlexNet, HyperVGG, HyperNiN, HyperGoogLeNet, HyperResNet,
        HyperDenseNet, HyperUNet,
    )
}
