"""Sample image files of the embedded shapes dataset, for trying `kmc predict` (and the image-folder
source of `kmc train`) without data of one's own: `kmc data samples --output-dir DIR`.

    DIR/images/CLASS/CLASS_N.png   a few images per class, from the test split by default
    DIR/masks/CLASS/CLASS_N.png    each image's ground-truth mask (a palette PNG: 0 background,
                                   class index + 1 on the shape, as the segmentation data)

`DIR/images` is also an image-folder dataset (one sub-folder per class). Every file is written
atomically; existing files are replaced only with `overwrite=True`.
"""

import os

import numpy as np

from keras_modern_cnn.choices import SPLITS
from keras_modern_cnn.data.embedded import SHAPE_CLASSES, load_shapes
from keras_modern_cnn.validation import check_bool, check_choice, check_positive_int

IMAGES_DIR, MASKS_DIR = "images", "masks"
MAX_PER_CLASS = 1000
MAX_IMAGE_SIZE = 1024


def sample_paths(output_dir, per_class):
    """`{(class index, n): (image path, mask path)}` of every file `write_samples` writes."""
    return {
        (label, n): tuple(
            os.path.join(output_dir, folder, name, f"{name}_{n}.png") for folder in (IMAGES_DIR, MASKS_DIR)
        )
        for label, name in enumerate(SHAPE_CLASSES)
        for n in range(per_class)
    }


def write_samples(output_dir, *, per_class=3, image_size=28, channels=1, split="test", seed=0,
                  overwrite=False):
    """Write `per_class` images of each of the ten shapes, and their masks, under `output_dir`.

    Args:
        output_dir: the folder to fill (created if missing).
        per_class: images per class.
        image_size: side of the square images (28: the size `kmc train` uses for the shapes).
        channels: 1 (grayscale, as the training data) or 3 (RGB).
        split: "test" (images a model trained on the embedded data has not seen) or "train".
        seed: the embedded dataset's seed (`kmc train --seed`).
        overwrite: replace sample files already there (nothing else is touched).

    Returns:
        The image paths written, class by class.
    """
    from PIL import Image

    from keras_modern_cnn.files import atomic_write
    from keras_modern_cnn.masks import write_mask
    from keras_modern_cnn.rundir import check_writable

    per_class = check_positive_int("per_class", per_class)
    if per_class > MAX_PER_CLASS:  # a few files to try commands on, not a dataset dump
        raise ValueError(
            f"`per_class` must be at most {MAX_PER_CLASS} (for a dataset, train on the embedded "
            f"data directly: no --dataset). Received: per_class={per_class}"
        )
    if check_positive_int("image_size", image_size, minimum=8) > MAX_IMAGE_SIZE:
        raise ValueError(f"`image_size` must be at most {MAX_IMAGE_SIZE}. Received: image_size={image_size}")
    check_choice("split", split, SPLITS)
    check_bool("overwrite", overwrite)
    check_writable("output_dir", os.fspath(output_dir))
    paths = sample_paths(os.fspath(output_dir), per_class)
    existing = [path for pair in paths.values() for path in pair if os.path.exists(path)]
    if existing and not overwrite:
        raise ValueError(
            f"`--output-dir` already holds {existing[0]} (and {len(existing) - 1} more sample "
            f"files); pass --overwrite to replace them. Received: output_dir={os.fspath(output_dir)!r}"
        )
    images, labels, masks = _draw(per_class, image_size, channels, split, seed)
    for label in range(len(SHAPE_CLASSES)):
        chosen = np.flatnonzero(labels == label)[:per_class]
        for n, index in enumerate(chosen):
            image_path, mask_path = paths[(label, n)]
            os.makedirs(os.path.dirname(image_path), exist_ok=True)
            os.makedirs(os.path.dirname(mask_path), exist_ok=True)
            pixels = images[index] if channels == 3 else images[index, ..., 0]
            atomic_write(image_path, Image.fromarray(pixels).save)
            write_mask(mask_path, masks[index], len(SHAPE_CLASSES) + 1)
    return [paths[key][0] for key in sorted(paths)]


def _draw(per_class, image_size, channels, split, seed):
    """Enough examples of the split that every class has `per_class` (classes are drawn
    uniformly: 20 per class needed is plenty; more are drawn in the rare case it is not)."""
    count = 20 * per_class * len(SHAPE_CLASSES)
    while True:
        train, test = load_shapes(num_train=count if split == "train" else 1,
                                  num_test=count if split == "test" else 1,
                                  image_size=image_size, channels=channels, seed=seed)
        images, labels, masks = train if split == "train" else test
        if np.bincount(labels, minlength=len(SHAPE_CLASSES)).min() >= per_class:
            return images, labels, masks
        count *= 2
