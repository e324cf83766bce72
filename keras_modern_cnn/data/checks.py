"""Checks every data source passes before the first training step.

A wrong dataset must stop the run with a message, never train to a wrong result: labels are
integers inside `[0, classes)` in both splits; the number of classes comes from the observed
labels, and a label far outside them (more than twice as many classes as distinct labels
seen, e.g. one 99999 among 0..9) is an error rather than a bigger head; at least two classes;
arrays of matching lengths, rank 3 or 4, the same channels in both splits, no empty split and
no non-finite pixels; image folders matched by class name across `train/` and `test/`, with
every file readable (or skipped with a count under `skip_unreadable`).
"""

import os

import numpy as np

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # keras.utils' image formats


def _fail(message, dataset):
    raise ValueError(f"{message}. Received: dataset={dataset!r}")


def check_arrays(x_train, y_train, x_test, y_test, *, task, dataset):
    """Check a `.npz`-style dataset; returns `(x_train, y_train, x_test, y_test, classes)`.

    Grayscale images without a channel axis get one; labels come back as int64.
    """
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    images, labels = {}, {}
    for split, (x, y) in splits.items():
        x, y = np.asarray(x), np.asarray(y)
        if len(x) == 0:
            _fail(f"The {split} split is empty", dataset)
        if x.ndim not in (3, 4):
            _fail(f"x_{split} must have rank 3 (N, H, W) or 4 (N, H, W, C); it has shape "
                  f"{x.shape}", dataset)
        if x.ndim == 3:
            x = x[..., None]
        if len(y) != len(x):
            _fail(f"x_{split} holds {len(x)} images but y_{split} {len(y)} targets", dataset)
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            _fail(f"x_{split} must hold finite numbers (found NaN, inf or non-numbers)", dataset)
        images[split], labels[split] = x, _integer_labels(y, f"y_{split}", dataset)
        if task == "classification":
            labels[split] = labels[split].reshape(len(x), -1)
            if labels[split].shape[1] != 1:
                _fail(f"y_{split} must hold one label per image; it has shape {y.shape}", dataset)
            labels[split] = labels[split][:, 0]
    if images["train"].shape[-1] != images["test"].shape[-1]:
        _fail(f"The splits have different channels: train {images['train'].shape[-1]}, "
              f"test {images['test'].shape[-1]}", dataset)
    classes = infer_classes(labels["train"], labels["test"], dataset)
    return images["train"], labels["train"], images["test"], labels["test"], classes


def _integer_labels(y, name, dataset):
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        _fail(f"{name} must hold integer labels; it holds {y.dtype}", dataset)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            bad = y[~np.isfinite(y) | (y != np.round(y))].reshape(-1)[0]
            _fail(f"{name} must hold integer labels; found {float(bad)!r}", dataset)
    if y.size and y.min() < 0:
        _fail(f"{name} must hold labels >= 0; found {int(y.min())}", dataset)
    return y.astype(np.int64)


def infer_classes(train_labels, test_labels, dataset):
    """Number of classes from the labels of both splits, refusing outliers and one class."""
    seen = np.union1d(np.unique(train_labels), np.unique(test_labels))
    classes = int(seen.max()) + 1
    if classes > 2 * len(seen):
        _fail(f"Label {int(seen.max())} is far outside the {len(seen)} distinct labels "
              f"observed ({_preview(seen)}): it would build a {classes}-class head; fix the "
              f"labels or renumber them 0..{len(seen) - 1}", dataset)
    if len(np.unique(train_labels)) < 2:
        _fail(f"The training split holds {len(np.unique(train_labels))} class; "
              f"classification needs at least 2", dataset)
    return classes


def _preview(values):
    shown = ", ".join(str(int(v)) for v in values[:6])
    return shown + (", ..." if len(values) > 6 else "")


def folder_classes(path, dataset):
    """Class names (sorted sub-folder names) of an image folder; at least two."""
    names = sorted(entry.name for entry in os.scandir(path) if entry.is_dir())
    if len(names) < 2:
        _fail(f"An image folder needs one sub-folder per class and at least 2 classes; "
              f"{path} has {len(names)} ({', '.join(names) or 'none'})", dataset)
    return names


def match_split_classes(train_names, test_names, dataset):
    """`train/` and `test/` must hold the same classes (matched by name, not position)."""
    only_train = sorted(set(train_names) - set(test_names))
    only_test = sorted(set(test_names) - set(train_names))
    if only_train or only_test:
        parts = []
        if only_train:
            parts.append(f"only in train/: {', '.join(only_train)}")
        if only_test:
            parts.append(f"only in test/: {', '.join(only_test)}")
        _fail(f"train/ and test/ must hold the same class folders ({'; '.join(parts)})", dataset)


def list_images(path, class_names):
    """`(paths, labels)` of every image file under `path/CLASS/`, in a fixed order."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for root, _, files in sorted(os.walk(os.path.join(path, name))):
            for file in sorted(files):
                if file.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(root, file))
                    labels.append(label)
    return paths, labels


def find_unreadable(paths, *, skip, dataset):
    """Decode every image up front; unreadable ones stop the run (or are skipped when `skip`).

    Returns the readable paths and how many were skipped.
    """
    from PIL import Image

    unreadable = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, ValueError, SyntaxError):  # what PIL raises for broken files
            unreadable.append(path)
    if unreadable and not skip:
        shown = ", ".join(unreadable[:3]) + (", ..." if len(unreadable) > 3 else "")
        _fail(f"{len(unreadable)} image file(s) cannot be read: {shown} (pass "
              f"--skip-unreadable to train without them)", dataset)
    bad = set(unreadable)
    return [path for path in paths if path not in bad], len(unreadable)
