"""The named choices the front-ends offer, defined without Keras.

`kmc` builds its argument parser from these, so `kmc --help` never loads a backend; the
modules that act on a choice (the input pipeline, `distribute`, `export`) import them from here.
"""

# Input pipeline (`keras_modern_cnn.data.pipeline`): per-dataset scaling to [0, 1] or
# per-image standardisation.
NORMALIZATIONS = ("scale", "standardize")

# Data-parallel training engines (`keras_modern_cnn.distribute`).
DISTRIBUTIONS = ("mirrored", "multi-worker", "data-parallel")

# Export formats (`keras_modern_cnn.export`).
FORMATS = ("saved_model", "keras", "weights", "onnx", "litert", "openvino")
# Formats that only serve predictions: BatchNorm is folded by default.
INFERENCE_FORMATS = ("saved_model", "onnx", "litert", "openvino")
# int8 is Keras's weight quantization (`model.quantize`, Dense layers) for these formats, and
# full-integer LiteRT (every op, with a representative dataset) for "litert".
QUANTIZABLE_FORMATS = ("saved_model", "keras", "litert")
