"""Loading Keras and its backend for a `kmc` command, without the backend's start-up noise.

TensorFlow prints start-up lines (oneDNN, CUDA stubs, `failed call to cuInit` on a machine
without a GPU) that read like failures, and some are written before `TF_CPP_MIN_LOG_LEVEL`
takes effect. Unless the command has `--verbose` or the user set `TF_CPP_MIN_LOG_LEVEL`
themselves, `kmc` sets it to 3 (errors included: real failures surface as Python exceptions)
before the backend is first imported, imports Keras and TensorFlow (whose tf.data feeds every
backend) with the process's standard error held aside (shown if an import fails), keeps
TensorFlow's Python logger to errors and hides the known-harmless warnings below.
"""

import importlib.util
import logging
import os
import sys
import warnings

from keras_modern_cnn.files import native_stderr_held

# Keras warnings that ask nothing of the user (message regular expressions): KerasTuner reloads
# a trial's best model without its optimizer state, which `kmc tune` never uses.
HARMLESS_WARNINGS = (r"Skipping variable loading for optimizer",)


def load_backend(verbose):
    """Import Keras (and so the backend); quietly unless `verbose` or the user chose a level."""
    if "keras" in sys.modules:
        return
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import keras  # noqa: F401
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # TensorFlow's Python warnings (tf.function retracing when `kmc compare` builds several
    # models, ...) advise the library's authors, not the user.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # tensorflow-datasets' absl warnings ("Variant folder ... has no dataset_info.json") and
    # urllib3's retry lines while a download fails: the one-line error says what happened.
    for logger in ("absl", "urllib3"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    with native_stderr_held():  # shown if an import fails
        import keras  # noqa: F401

        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow  # noqa: F401  (tf.data feeds every backend: quiet it too)
