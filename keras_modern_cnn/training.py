"""Training a registered model: the engine behind `kmc train` and `make demo`.

Reference recipe: Dive into Deep Learning, "Modern CNNs" (plain SGD, Fashion-MNIST-sized data).
"""

import json
import os
import time

import keras
import numpy as np

from keras_modern_cnn.data import load_shapes
from keras_modern_cnn.registry import get_spec
from keras_modern_cnn.validation import check_choice, check_number, check_positive_int

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


def make_optimizer(name, learning_rate):
    check_choice("optimizer", name, OPTIMIZERS)
    check_number("learning_rate", learning_rate, low=0.0, low_open=True)
    return {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }[name](learning_rate=learning_rate)


def train(
    model_name,
    *,
    epochs=1,
    batch_size=128,
    learning_rate=1.0,
    optimizer="sgd",
    output_dir="runs/demo",
    seed=0,
    verbose="auto",
):
    """Train `model_name` on the embedded shapes dataset, evaluate, save; return the metrics."""
    spec = get_spec(model_name)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    keras.utils.set_random_seed(seed)
    height, width, channels = spec.default_input_shape
    (x_train, y_train, _), (x_test, y_test, _) = load_shapes(
        image_size=height, channels=channels, seed=seed
    )
    x_train = x_train.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0

    model = spec.builder(classes=10)
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    wall_time = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=batch_size, verbose=0)

    os.makedirs(output_dir, exist_ok=True)
    model_path = os.path.join(output_dir, "model.keras")
    model.save(model_path)
    metrics = {
        "model": spec.name,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "examples_per_second": epochs * len(x_train) / wall_time,
        "parameters": model.count_params(),
        "wall_time_seconds": wall_time,
        "model_path": model_path,
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics
