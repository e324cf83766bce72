"""Checks every data source passes before the first training step.

A wrong dataset must stop the run with a message, never train to a wrong result: labels are
integers inside `[0, classes)` in both splits; the number of classes comes from the observed
labels, and a label far outside them (more than twice as many classes as distinct labels
seen, e.g. one 99999 among 0..9) is an error rather than a bigger head; at least two classes;
arrays of matching lengths, rank 3 or 4, the same channels in both splits, no empty split and
no non-finite pixels, values in a known range (`pixel_scale`); image folders matched by class
name across `train/` and `test/`, hidden files and folders left out, with every image file
readable by the one decoder (`keras_modern_cnn.data.images`; or skipped with a count under
`skip_unreadable`); a model's classes matched by name with a dataset's (`class_mapping`).
"""

import os

import numpy as np

from keras_modern_cnn.data.images import (
    IMAGE_EXTENSIONS,
    check_image_files,
    list_image_files,
    unsupported_reason,
)
from keras_modern_cnn.files import is_hidden

__all__ = [
    "IMAGE_EXTENSIONS", "check_arrays", "class_mapping", "find_unreadable", "folder_classes",
    "infer_classes", "list_images", "match_split_classes", "pixel_scale",
]


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


def pixel_scale(x_train, x_test, dataset):
    """`(divisor, notice)`: what brings the arrays' pixel values to [0, 1], from their range.

    Values already in [0, 1] (floats scaled beforehand, 0/1 images) are used as they are;
    [0, 255] (8-bit) is divided by 255, [0, 65535] (16-bit) by 65535. Negative or larger values
    are an error: kmc cannot tell what they mean. `notice` says what was done when it is not
    the usual /255 (None otherwise).
    """
    low = min(float(x_train.min()), float(x_test.min()))
    high = max(float(x_train.max()), float(x_test.max()))
    if low < 0 or high > 65535:
        _fail(f"The images hold values in [{low:g}, {high:g}]; kmc reads pixels in [0, 1], "
              f"[0, 255] or [0, 65535] (16-bit): keep the raw pixels (the pipeline scales or "
              f"standardises them)", dataset)
    if high <= 1:
        return 1.0, (f"pixels of {os.path.basename(str(dataset))} are in [0, 1] already: used "
                     f"as they are (not divided by 255)")
    if high <= 255:
        return 255.0, None
    return 65535.0, (f"pixels of {os.path.basename(str(dataset))} reach {high:g}: read as 16-bit "
                     f"values, divided by 65535")


def folder_classes(path, dataset):
    """Class names (sorted sub-folder names, hidden ones left out) of an image folder; at least two."""
    names = sorted(entry.name for entry in os.scandir(path) if entry.is_dir() and not is_hidden(entry.name))
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
    """`(paths, labels, unsupported, other)` under `path/CLASS/`, in a fixed order: the image
    files kmc reads with their labels, image files in formats it does not read, and files that
    are not images (hidden ones left out)."""
    paths, labels, unsupported, other = [], [], [], []
    for label, name in enumerate(class_names):
        images, bad, rest = list_image_files(os.path.join(path, name))
        paths += images
        labels += [label] * len(images)
        unsupported += bad
        other += rest
    return paths, labels, unsupported, other


def find_unreadable(paths, *, skip, dataset, unsupported=()):
    """Check every image up front (`images.check_image_file`: the decoder training uses); the
    unreadable ones, and `unsupported` files, stop the run naming them (or are skipped when
    `skip`). Returns the readable paths and how many were skipped.
    """
    problems = [(path, unsupported_reason(path)) for path in unsupported]
    found = check_image_files(paths)
    problems += [(path, found[path]) for path in paths if path in found]
    if problems and not skip:
        path, reason = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        _fail(f"{len(problems)} image file(s) cannot be read: {path} is {reason}{more}; fix or "
              f"remove them, or pass --skip-unreadable to train without them", dataset)
    bad = {path for path, _ in problems}
    return [path for path in paths if path not in bad], len(problems)


def class_mapping(model_classes, data_classes, dataset):
    """Where each of the dataset's classes is among the model's, matched by name.

    Returns `(mapping, notice)`: `mapping` is None when the dataset's labels are the model's
    indices already (same names in the same order, or a dataset that names no classes, whose
    labels are read as the model's class indices), else the model index of each dataset
    class (a dataset holding a subset of the model's classes, in any order). A dataset class
    the model does not know is an error naming it.
    """
    model_classes, data_classes = list(model_classes), list(data_classes)
    if data_classes == model_classes[: len(data_classes)]:
        return None, None
    unnamed = all(name == str(index) for index, name in enumerate(data_classes))
    if unnamed:
        if len(data_classes) > len(model_classes):
            _fail(f"The dataset has {len(data_classes)} classes but the model predicts "
                  f"{len(model_classes)}", dataset)
        return None, (f"the dataset names no classes: its labels 0..{len(data_classes) - 1} are "
                      f"read as the model's classes ({_preview_names(model_classes)})")
    unknown = [name for name in data_classes if name not in model_classes]
    if unknown:
        _fail(f"The dataset has classes the model was not trained on ({_preview_names(unknown)}); "
              f"the model's classes are {_preview_names(model_classes)}", dataset)
    mapping = [model_classes.index(name) for name in data_classes]
    return mapping, (f"classes matched by name: the dataset's {len(data_classes)} are "
                     f"{'all' if len(data_classes) == len(model_classes) else len(data_classes)} "
                     f"of the model's {len(model_classes)}")


def _preview_names(names, limit=6):
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
