"""The README's fine-tuning picture: a pretrained start against training from scratch, offline.

No network here, so no ImageNet weights: the "pretrained" model is one `kmc train` trains on six
classes of the embedded shapes (disk ... plus); the task is the four others (horizontal bar,
vertical bar, x-cross, frame) with 25 training images per class. Three runs of the same
ResNet-18 (width 0.25, 32x32) on that task, every other setting equal:

- from scratch (batches of 20, so its BatchNorm statistics see 75 updates);
- `--weights source/model.keras`, BatchNorm frozen (the default with --weights);
- the same with `--no-freeze-batch-norm`.

    python benchmarks/fine_tuning.py runs/fine_tuning docs/images/fine_tuning.png

Each run is the real command (`kmc train`, in process); their histories are drawn by
`keras_modern_cnn.plots.plot_curves`, and the final test accuracies printed.
"""

import argparse
import json
import os

import numpy as np

from keras_modern_cnn.cli import main as kmc
from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes
from keras_modern_cnn.plots import plot_curves
from keras_modern_cnn.rundir import HISTORY_FILE, METRICS_FILE, read_history

SOURCE_CLASSES = [0, 1, 2, 3, 4, 5]
TARGET_CLASSES = [6, 7, 8, 9]
MODEL = ["resnet18", "--width-ratio", "0.25", "--image-size", "32", "--quiet"]


def write_split(path, classes, per_class_train, per_class_test, seed):
    """An `.npz` dataset of the shapes of `classes` (relabelled 0..n-1), balanced."""
    (x_train, y_train, _), (x_test, y_test, _) = load_shapes(
        per_class_train * 12, per_class_test * 12, image_size=32, seed=seed)

    def take(x, y, per_class):
        rows = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in classes])
        return x[rows], np.searchsorted(classes, y[rows])

    (x_train, y_train), (x_test, y_test) = take(x_train, y_train, per_class_train), take(x_test, y_test, per_class_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def train(run_dir, dataset, *extra):
    if os.path.exists(os.path.join(run_dir, METRICS_FILE)):
        return  # finished earlier: rerunning the script only redraws
    status = kmc(["train", *MODEL, "--dataset", dataset, "--output-dir", run_dir, *extra])
    if status:
        raise SystemExit(f"kmc train failed for {run_dir}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work_dir", help="where the datasets and runs go")
    parser.add_argument("output", help="the PNG to write")
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    source = write_split(os.path.join(args.work_dir, "source.npz"), SOURCE_CLASSES, 800, 100, seed=1)
    target = write_split(os.path.join(args.work_dir, "target.npz"), TARGET_CLASSES, 25, 250, seed=2)
    runs = {name: os.path.join(args.work_dir, folder) for name, folder in [
        ("source", "source"), ("scratch", "scratch"), ("frozen", "fine_tuned_frozen_bn"),
        ("trained", "fine_tuned_trained_bn")]}
    train(runs["source"], source, "--epochs", "8", "--learning-rate", "0.05", "--batch-size", "50")
    pretrained = os.path.join(runs["source"], "model.keras")
    # Batches of 20: 5 steps an epoch, so the scratch model's BatchNorm statistics settle too.
    target_settings = ["--epochs", "15", "--learning-rate", "0.01", "--batch-size", "20"]
    train(runs["scratch"], target, *target_settings)
    train(runs["frozen"], target, *target_settings, "--weights", pretrained)
    train(runs["trained"], target, *target_settings, "--weights", pretrained, "--no-freeze-batch-norm")
    labels = {"scratch": "from scratch", "frozen": "fine-tuned, BN frozen",
              "trained": "fine-tuned, BN trained"}
    histories = {labels[key]: read_history(os.path.join(runs[key], HISTORY_FILE)) for key in labels}
    target_names = ", ".join(SHAPE_CLASSES[c] for c in TARGET_CLASSES)
    plot_curves(histories, args.output,
                title=f"ResNet-18 (width 0.25) on 4 new shapes ({target_names}), 100 training images")
    for key, label in labels.items():
        with open(os.path.join(runs[key], METRICS_FILE)) as handle:
            accuracy = json.load(handle)["test_accuracy"]
        print(f"{label}: test accuracy {accuracy:.3f}")
    with open(os.path.join(runs["source"], METRICS_FILE)) as handle:
        print(f"source model (6 classes, 4800 images): test accuracy {json.load(handle)['test_accuracy']:.3f}")
    print(f"figure: {args.output}")


if __name__ == "__main__":
    main()
