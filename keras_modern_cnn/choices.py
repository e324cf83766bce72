"""The named choices the front-ends offer, defined without Keras: their one home.

`kmc` builds its argument parser from these, so `kmc --help` never loads a backend; the
modules that act on a choice (the run configuration, the input pipeline, `distribute`,
`export`, the registry) import them from here.
"""

import re

# What a registered model does (`keras_modern_cnn.registry`, the data sources).
TASKS = ("classification", "segmentation")

# The embedded, procedurally drawn dataset every command defaults to (no network).
EMBEDDED_DATASET = "shapes"
# Its splits (`kmc data samples --split`).
SPLITS = ("train", "test")

# Optimizers a run can use (`keras_modern_cnn.training.make_optimizer` builds them).
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")

# XLA / torch.compile: "auto" takes the device's default (`keras_modern_cnn.devices`).
JIT_COMPILE = ("auto", "on", "off")

# Input pipeline (`keras_modern_cnn.data.pipeline`): per-dataset scaling to [0, 1],
# per-image standardisation, or none: raw 0-255 pixels, for a model that normalises inside
# (`include_preprocessing`, the default of a run fine-tuning pretrained weights).
NORMALIZATIONS = ("scale", "standardize", "none")

# Precise BatchNorm statistics (`keras_modern_cnn.callbacks.PreciseBatchNorm`, `kmc train
# --precise-bn N`): training batches per estimation by default (all of them when fewer).
PRECISE_BN_BATCHES = 100

# Data-parallel training engines (`keras_modern_cnn.distribute`).
DISTRIBUTIONS = ("mirrored", "multi-worker", "data-parallel")
# A run's `--strategy`: none, or one of the engines.
STRATEGIES = ("none",) + DISTRIBUTIONS

# Export formats (`keras_modern_cnn.export`).
FORMATS = ("saved_model", "keras", "weights", "onnx", "litert", "openvino")
# Formats that only serve predictions: BatchNorm is folded by default.
INFERENCE_FORMATS = ("saved_model", "onnx", "litert", "openvino")
# int8 is Keras's weight quantization (`model.quantize`, Dense layers) for these formats, and
# full-integer LiteRT (every op, with a representative dataset) for "litert".
QUANTIZABLE_FORMATS = ("saved_model", "keras", "litert")


def natural_key(name: str) -> list:
    """The order every listing of model names uses (the registry, `kmc list`, the presets):
    digit runs read as numbers, resnet18 < resnet34 < resnet50 < resnet101."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
