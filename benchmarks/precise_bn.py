"""Precise BatchNorm statistics vs the moving averages (EMA): test accuracy per epoch, and cost.

For each model (the chapter's models that have BatchNorm, tiny width ratios and inputs) and
each dataset (the embedded shapes; scikit-learn's 8x8 digits, no network), trains as `kmc
train` does (the family's SGD learning rate, the same pipeline), one epoch at a time. After each
epoch: test accuracy with the EMA statistics; then precise statistics over N training batches
(`keras_modern_cnn.layers.precise_bn`, timed) and the test accuracy with them; then the EMA is
put back, so the run itself is a run without precise BN (the EMA column is what `kmc train
--no-precise-bn` reports). The cost is also given in multiples of N `predict_on_batch` calls on
the same batches, timed right after the estimation (both compiled; the first estimation, which
compiles, is reported apart).

    KERAS_BACKEND=tensorflow python benchmarks/precise_bn.py --output runs/precise_bn.json
    KERAS_BACKEND=jax python benchmarks/precise_bn.py --models bn_lenet,resnet18 --datasets shapes

Prints one JSON line per epoch and the markdown tables of BENCHMARKS.md ("Precise BatchNorm").
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import keras
import numpy as np

from keras_modern_cnn import training
from keras_modern_cnn.choices import PRECISE_BN_BATCHES
from keras_modern_cnn.config import resolve_config
from keras_modern_cnn.devices import device_settings
from keras_modern_cnn.layers.precise_bn import (
    StatisticsEstimator,
    assign_statistics,
    moving_statistics,
    statistics_layers,
)

# model -> (image size, width ratio): tiny, above each model's minimum input.
MODELS = {
    "bn_lenet": (28, 1.0),
    "alexnet_bn": (67, 0.125),
    "vgg11_bn": (32, 0.125),
    "googlenet_bn": (32, 0.25),
    "resnet18": (32, 0.25),
    "densenet_d2l": (32, 0.5),
}


def digits_npz(directory, seed=0):
    """scikit-learn's digits (1,797 8x8 images, 0-16) as a kmc `.npz` dataset, 80/20 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype("uint8")[..., None]
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    path = os.path.join(directory, "digits.npz")
    np.savez(path, x_train=images[train], y_train=digits.target[train],
             x_test=images[test], y_test=digits.target[test])
    return path


def forward_seconds(model, batches):
    start = time.perf_counter()
    for batch in batches:
        keras.ops.convert_to_numpy(model.predict_on_batch(batch))
    return time.perf_counter() - start


def run(name, dataset, args, directory):
    image_size, width_ratio = MODELS[name]
    config = resolve_config(
        name, dataset=dataset, epochs=args.epochs, image_size=image_size, width_ratio=width_ratio,
        train_examples=args.train_examples, batch_size=args.batch_size,
        output_dir=os.path.join(directory, name), precise_bn=args.steps, mixed_precision=False,
    )
    keras.utils.set_random_seed(config.seed)
    data = training.prepare_data(config)
    pipelines = training.make_pipelines(config, data)
    device = device_settings(config, 1)
    model = training.build_and_compile(config, data, device)
    estimator = StatisticsEstimator(model)
    layers = statistics_layers(model)
    batches = [images.numpy() for images, _ in pipelines["train"].take(args.steps)]
    rows = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.fit(pipelines["train"], epochs=epoch + 1, initial_epoch=epoch, verbose=0, shuffle=False)
        train_seconds = time.perf_counter() - start
        ema = moving_statistics(layers)
        ema_accuracy = model.evaluate(pipelines["test"], verbose=0, return_dict=True)["accuracy"]
        start = time.perf_counter()
        statistics_ = estimator.estimate(batches)
        precise_seconds = time.perf_counter() - start
        forward = forward_seconds(model, batches)
        statistics_.assign()
        precise_accuracy = model.evaluate(pipelines["test"], verbose=0, return_dict=True)["accuracy"]
        for layer, (mean, variance) in zip(layers, ema):  # back to the EMA run
            assign_statistics(layer, mean, variance)
        row = {
            "backend": keras.config.backend(), "model": name, "dataset": data.name,
            "epoch": epoch + 1, "ema": round(float(ema_accuracy), 4),
            "precise": round(float(precise_accuracy), 4), "batches": statistics_.batches,
            "samples": statistics_.samples, "precise_s": round(precise_seconds, 3),
            "forward_s": round(forward, 3), "epoch_train_s": round(train_seconds, 2),
            "dtype_policy": device.dtype_policy,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def tables(rows):
    """The accuracy table (EMA -> precise, per epoch) and the cost table, in markdown."""
    lines = []
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        chosen = [row for row in rows if row["dataset"] == dataset]
        epochs = max(row["epoch"] for row in chosen)
        lines += [f"Test accuracy on {dataset}, EMA -> precise, after each epoch:", "",
                  "| backend | model | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |",
                  "|---|---|" + "---:|" * epochs]
        for key in dict.fromkeys((row["backend"], row["model"]) for row in chosen):
            cells = [f"{row['ema']:.3f} -> **{row['precise']:.3f}**" for row in chosen
                     if (row["backend"], row["model"]) == key]
            lines.append(f"| {key[0]} | `{key[1]}` | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Cost of one estimation (N batches): seconds, first (compiles) and median of the "
              "others, and in multiples of N `predict_on_batch` calls (median over epochs 2+), "
              "against one training epoch:", "",
              "| backend | model | dataset | N | first s | s | x N forwards | train epoch s |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for key in dict.fromkeys((r["backend"], r["model"], r["dataset"]) for r in rows):
        chosen = [row for row in rows if (row["backend"], row["model"], row["dataset"]) == key]
        later = chosen[1:] or chosen
        multiple = statistics.median(r["precise_s"] / r["forward_s"] for r in later)
        lines.append(
            f"| {key[0]} | `{key[1]}` | {key[2]} | {chosen[0]['batches']} | "
            f"{chosen[0]['precise_s']:.2f} | {statistics.median(r['precise_s'] for r in later):.2f} "
            f"| {multiple:.2f} | {statistics.median(r['epoch_train_s'] for r in later):.1f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    parser.add_argument("--datasets", default="shapes,digits", help="shapes and/or digits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=PRECISE_BN_BATCHES, help="N batches")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-examples", type=int, default=None,
                        help="first N training examples of each dataset (default all)")
    parser.add_argument("--output", default=None, help="also write the rows (JSON) here")
    parser.add_argument("--tables", default=None, help="print the tables of saved rows and exit")
    args = parser.parse_args()
    if args.tables:
        rows = [row for path in args.tables.split(",") for row in json.load(open(path))]
        print(tables(rows))
        return
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        datasets = {"shapes": "shapes", "digits": None}
        for dataset in args.datasets.split(","):
            if dataset == "digits":
                datasets["digits"] = digits_npz(directory)
            for name in args.models.split(","):
                rows += run(name, datasets[dataset], args, directory)
                keras.backend.clear_session()
                if args.output:  # after every model: a crash keeps what was measured
                    with open(args.output, "w") as handle:
                        json.dump(rows, handle, indent=1)
    print(tables(rows))


if __name__ == "__main__":
    main()
