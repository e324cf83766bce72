"""Where training data comes from: the embedded shapes, TFDS by name, a `.npz` file, an image folder.

Every source returns `ImageData`: unbatched `tf.data` splits of `(image, target)` plus what the
trainer needs to build a matching model (channels, classes, class names) and how its pixel
values map to [0, 1] (`pixel_scale`). The batching, resizing and scaling happen once, in
`keras_modern_cnn.data.pipeline`; image files are decoded by `keras_modern_cnn.data.images`.
"""

import dataclasses
import os
import re

import numpy as np

from keras_modern_cnn.choices import EMBEDDED_DATASET, TASKS
from keras_modern_cnn.data.checks import (
    check_arrays,
    find_unreadable,
    folder_classes,
    list_images,
    match_split_classes,
    pixel_scale,
)
from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes
from keras_modern_cnn.data.images import decode_image
from keras_modern_cnn.validation import check_choice, check_positive_int


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Unbatched train/test splits of `(image HxWxC, target)` and their description.

    `target` is an integer label (classification) or an integer HxW mask (segmentation).
    `pixel_scale` divides the images' values into [0, 1] (255 for 8-bit images, 1 for a `.npz`
    of floats in [0, 1]); `notices` are one-line remarks on how the data was read (files
    skipped or ignored, values used as they are), for the run's log.
    """

    name: str
    task: str
    train: object
    test: object
    num_train: int
    num_test: int
    channels: int
    num_classes: int
    class_names: tuple
    skipped_files: int = 0
    pixel_scale: float = 255.0
    notices: tuple = ()


def load_data(
    dataset=None,
    *,
    task="classification",
    data_dir=None,
    download=True,
    image_size=None,
    train_examples=None,
    test_examples=None,
    seed=0,
    skip_unreadable=False,
    channels=3,
):
    """Load a dataset by name or path, checked before use (`keras_modern_cnn.data.checks`).

    Args:
        dataset: None or "shapes" (the embedded offline dataset), a path to a `.npz` file
            (`x_train, y_train, x_test, y_test`, the keras.datasets layout), a folder of
            images with one sub-folder per class (optionally split into `train/` and
            `test/`), or a tensorflow-datasets name such as "fashion_mnist".
        task: "classification" (integer labels) or "segmentation" (integer masks; the
            embedded dataset has both).
        data_dir: TFDS data directory (default: `TFDS_DATA_DIR`, then TFDS's own default).
        download: let TFDS download and prepare a dataset missing from `data_dir`.
        image_size: image side used when decoding an image folder (other sources keep
            their native size; the pipeline resizes).
        train_examples: keep only the first N training examples.
        test_examples: keep only the first N test examples.
        seed: seed of the embedded dataset and of the image-folder train/test split.
        skip_unreadable: skip (and count) image-folder files that cannot be decoded instead
            of stopping with their paths.
        channels: channels an image folder's files are decoded to (3: RGB, 1: grey), as
            `kmc predict` decodes a file for its model; other sources keep their own.
    """
    check_choice("task", task, TASKS)
    for name, value in (("train_examples", train_examples), ("test_examples", test_examples)):
        if value is not None:
            check_positive_int(name, value)
    if dataset is None or dataset == EMBEDDED_DATASET:
        data = _embedded(task, train_examples, test_examples, seed)
    elif str(dataset).lower().endswith(".npz"):
        data = _npz(dataset, task)
    elif os.path.isdir(dataset):
        check_choice("channels", channels, (1, 3))
        data = _image_folder(dataset, task, image_size or 64, seed, skip_unreadable, channels)
    else:
        data = _tfds(dataset, task, data_dir, download)
    return _limit(data, train_examples, test_examples)


def _arrays_to_data(name, task, train, test, class_names):
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = train, test
    return ImageData(
        name=name,
        task=task,
        train=tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        test=tf.data.Dataset.from_tensor_slices((x_test, y_test)),
        num_train=len(x_train),
        num_test=len(x_test),
        channels=int(x_train.shape[-1]),
        num_classes=len(class_names),
        class_names=tuple(class_names),
    )


def _embedded(task, train_examples, test_examples, seed):
    (x_train, y_train, m_train), (x_test, y_test, m_test) = load_shapes(
        num_train=train_examples or 12000, num_test=test_examples or 2000, seed=seed
    )
    if task == "segmentation":
        return _arrays_to_data(
            EMBEDDED_DATASET, task, (x_train, m_train), (x_test, m_test),
            ("background",) + SHAPE_CLASSES,
        )
    return _arrays_to_data(EMBEDDED_DATASET, task, (x_train, y_train), (x_test, y_test), SHAPE_CLASSES)


def _npz(path, task):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such `.npz` dataset file. Received: dataset={path!r}")
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:  # not an archive, truncated, pickled
        raise ValueError(f"Cannot read the `.npz` file ({error}). Received: dataset={path!r}") from None
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise ValueError(
            f"A `.npz` dataset needs the arrays x_train, y_train, x_test, y_test (the "
            f"keras.datasets layout); missing {sorted(missing)}. Received: dataset={path!r}"
        )
    arrays = {key: arrays[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    x_train, y_train, x_test, y_test, num_classes = check_arrays(**arrays, task=task, dataset=path)
    scale, notice = pixel_scale(x_train, x_test, path)
    data = _arrays_to_data(
        os.path.basename(path), task, (x_train, y_train), (x_test, y_test),
        tuple(str(index) for index in range(num_classes)),
    )
    return dataclasses.replace(data, pixel_scale=scale, notices=(notice,) if notice else ())


def _image_folder(path, task, image_size, seed, skip_unreadable, channels):
    """Every file decoded once up front (unreadable ones reported by path), classes by name."""
    if task != "classification":
        raise ValueError(
            f"An image folder holds classification data (one sub-folder per class); "
            f"segmentation needs masks. Received: dataset={path!r}"
        )
    split_folders = [os.path.join(path, split) for split in ("train", "test")]
    if all(os.path.isdir(folder) for folder in split_folders):
        class_names = folder_classes(split_folders[0], path)
        match_split_classes(class_names, folder_classes(split_folders[1], path), path)
        listed = [list_images(folder, class_names) for folder in split_folders]
        train, test = ((paths, labels) for paths, labels, _, _ in listed)
        unsupported = [name for _, _, bad, _ in listed for name in bad]
        other = [name for _, _, _, rest in listed for name in rest]
    else:
        # One folder: a fixed, seeded 80/20 split.
        class_names = folder_classes(path, path)
        paths, labels, unsupported, other = list_images(path, class_names)
        order = np.random.default_rng(seed).permutation(len(paths))
        cut = len(paths) - int(0.2 * len(paths))
        train, test = (
            ([paths[i] for i in part], [labels[i] for i in part])
            for part in (order[:cut], order[cut:])
        )
    # Every file checked with the decoder training uses, before the first step.
    readable, skipped = find_unreadable(train[0] + test[0], skip=skip_unreadable, dataset=path,
                                        unsupported=unsupported)
    keep = set(readable)
    splits = {}
    for split, (paths, labels) in (("train", train), ("test", test)):
        kept = [(file, label) for file, label in zip(paths, labels) if file in keep]
        if not kept:
            raise ValueError(f"The {split} split holds no readable image. Received: dataset={path!r}")
        splits[split] = ([file for file, _ in kept], [label for _, label in kept])
    if len(set(splits["train"][1])) < 2:
        raise ValueError(
            "The training split holds images of fewer than 2 classes. "
            f"Received: dataset={path!r}"
        )
    notices = []
    if skipped:
        notices.append(f"skipped {skipped} unreadable image file(s)")
    if other:
        shown = ", ".join(os.path.relpath(name, path) for name in other[:3])
        notices.append(f"ignored {len(other)} file(s) that are not images ({shown}"
                       f"{', ...' if len(other) > 3 else ''})")
    return ImageData(
        name=os.path.basename(os.path.normpath(path)),
        task=task,
        train=_decoded_images(*splits["train"], image_size, channels),
        test=_decoded_images(*splits["test"], image_size, channels),
        num_train=len(splits["train"][0]),
        num_test=len(splits["test"][0]),
        channels=channels,
        num_classes=len(class_names),
        class_names=tuple(class_names),
        skipped_files=skipped,
        notices=tuple(notices),
    )


def _decoded_images(paths, labels, image_size, channels):
    """Decoded (`images.decode_image`) and resized to the model's side already: the pipeline's
    cache then holds small images."""
    import tensorflow as tf

    def decode(path, label):
        image = decode_image(tf.io.read_file(path), channels)
        return tf.image.resize(image, (image_size, image_size)), label

    pairs = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int64)))
    return pairs.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def with_class_mapping(data, mapping, class_names):
    """`data` with its targets renumbered to a model's classes (`checks.class_mapping`): target
    `i` becomes `mapping[i]`; labels and masks alike."""
    import tensorflow as tf

    table = tf.constant(mapping, tf.int64)

    def renumber(image, target):
        return image, tf.cast(tf.gather(table, tf.cast(target, tf.int64)), target.dtype)

    return dataclasses.replace(
        data, train=data.train.map(renumber), test=data.test.map(renumber),
        num_classes=len(class_names), class_names=tuple(class_names),
    )


def _tfds(name, task, data_dir, download):
    import tensorflow_datasets as tfds

    from keras_modern_cnn._compat import tfds_download_retries

    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            "Unknown dataset: not the embedded 'shapes', an existing `.npz` file or image "
            f"folder, nor a tensorflow-datasets name (see `tfds.list_builders()`). "
            f"Received: dataset={name!r}"
        ) from None
    if not builder.is_prepared():
        where = builder.data_dir
        if not download:
            _raise_not_prepared(name, where, "downloads are disabled")
        try:
            with tfds_download_retries():  # offline: fail in seconds, not minutes
                builder.download_and_prepare()
        except Exception as error:  # offline, blocked, or a manual-download dataset
            _raise_not_prepared(name, where, _download_failure(error))
    features = builder.info.features
    image_key = "image"
    target_key = "label" if task == "classification" else "segmentation_mask"
    if target_key not in features:
        raise ValueError(
            f"The dataset has no {target_key!r} feature for {task}; its features are "
            f"{sorted(features.keys())}. Received: dataset={name!r}"
        )
    splits = builder.info.splits.keys() if builder.info.splits else ()
    test_split = "test" if "test" in splits or not splits else "validation"

    def as_pair(example):
        target = example[target_key]
        if task == "segmentation":  # masks are HxWx1 in TFDS, 1-based in oxford_iiit_pet
            target = target[..., 0]
        return example[image_key], target

    train, test = (
        builder.as_dataset(split=split, shuffle_files=False).map(as_pair)
        for split in ("train", test_split)
    )
    if task == "classification":
        class_names = tuple(features[target_key].names)
    else:
        class_names = tuple(str(index) for index in range(4))  # oxford_iiit_pet: 1..3 (+0)
    return ImageData(
        name=name,
        task=task,
        train=train,
        test=test,
        num_train=_count(train),
        num_test=_count(test),
        channels=int(features[image_key].shape[-1]),
        num_classes=len(class_names),
        class_names=class_names,
    )


def _download_failure(error):
    """Why a download failed, whole: the innermost cause (a host that does not resolve, a
    refused connection, an HTTP status), as "Type: message"."""
    chain = [error]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    for link in chain:
        unresolved = re.search(r"Failed to resolve '([^']+)'", str(link))
        if unresolved:
            return f"no network: the host {unresolved.group(1)} does not resolve"
    return f"{type(chain[-1]).__name__}: {' '.join(str(chain[-1]).split())}"


def _raise_not_prepared(name, where, reason):
    raise ValueError(
        f"Dataset {name!r} is not prepared in {where} and could not be downloaded ({reason}). "
        f"On a machine with network, run `tfds build {name} --data_dir DIR`, copy DIR here and "
        f"pass `--data-dir DIR` (or set TFDS_DATA_DIR); or train on the embedded dataset "
        f"(no --dataset), a `.npz` file or an image folder. Received: dataset={name!r}"
    )


def _count(dataset):
    count = int(dataset.cardinality())
    return count if count >= 0 else int(dataset.reduce(0, lambda total, _: total + 1))


def _limit(data, train_examples, test_examples):
    if train_examples is None and test_examples is None:
        return data
    train, test = data.train, data.test
    num_train, num_test = data.num_train, data.num_test
    if train_examples is not None and train_examples < num_train:
        train, num_train = train.take(train_examples), train_examples
    if test_examples is not None and test_examples < num_test:
        test, num_test = test.take(test_examples), test_examples
    return dataclasses.replace(data, train=train, test=test, num_train=num_train, num_test=num_test)
