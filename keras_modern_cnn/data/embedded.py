"""The embedded offline dataset: ten classes of procedurally drawn geometric shapes.

Shipped as code, deterministic for a given seed, and needing no network, so the main job and
the tests always have data. Every image holds one shape on a noisy background; the label is
the shape's class and the mask marks its pixels (0 = background, class + 1 = shape), so the
same data serves classification and segmentation (U-Net).
"""

import numpy as np

from keras_modern_cnn.validation import check_positive_int

SHAPE_CLASSES = (
    "disk",
    "square",
    "triangle",
    "diamond",
    "ring",
    "plus",
    "horizontal_bar",
    "vertical_bar",
    "x_cross",
    "frame",
)


def _shape_masks(labels, centre_y, centre_x, radius, image_size):
    """Boolean (n, size, size) masks drawing shape `labels[i]` around each centre."""
    coords = np.arange(image_size, dtype=np.float32)
    dy = coords[None, :, None] - centre_y[:, None, None]
    dx = coords[None, None, :] - centre_x[:, None, None]
    r = radius[:, None, None]
    thickness = np.maximum(1.0, r / 3.0)
    distance = np.sqrt(dx**2 + dy**2)
    chebyshev = np.maximum(np.abs(dx), np.abs(dy))
    drawings = {
        "disk": distance <= r,
        "square": chebyshev <= r * 0.8,
        "triangle": (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55),
        "diamond": np.abs(dx) + np.abs(dy) <= r,
        "ring": (distance <= r) & (distance >= r - thickness),
        "plus": ((np.abs(dx) <= thickness / 2) | (np.abs(dy) <= thickness / 2)) & (chebyshev <= r),
        "horizontal_bar": (np.abs(dy) <= thickness / 2) & (np.abs(dx) <= r),
        "vertical_bar": (np.abs(dx) <= thickness / 2) & (np.abs(dy) <= r),
        "x_cross": (np.abs(np.abs(dx) - np.abs(dy)) <= thickness / 2) & (chebyshev <= r * 0.8),
        "frame": (chebyshev <= r * 0.8) & (chebyshev >= r * 0.8 - thickness),
    }
    masks = np.zeros((len(labels), image_size, image_size), dtype=bool)
    for index, shape_name in enumerate(SHAPE_CLASSES):
        chosen = labels == index
        masks[chosen] = drawings[shape_name][chosen]
    return masks


def _draw(count, image_size, channels, rng):
    labels = rng.integers(0, len(SHAPE_CLASSES), size=count)
    radius = rng.uniform(0.22, 0.38, size=count).astype(np.float32) * image_size
    margin = radius + 1.0
    centre_y = rng.uniform(margin, image_size - margin).astype(np.float32)
    centre_x = rng.uniform(margin, image_size - margin).astype(np.float32)
    masks = _shape_masks(labels, centre_y, centre_x, radius, image_size)
    background = rng.uniform(0.0, 60.0, size=(count, 1, 1, channels))
    foreground = rng.uniform(150.0, 255.0, size=(count, 1, 1, channels))
    noise = rng.normal(0.0, 12.0, size=(count, image_size, image_size, channels))
    images = np.where(masks[..., None], foreground, background) + noise
    images = np.clip(images, 0, 255).astype(np.uint8)
    segmentation = np.where(masks, labels[:, None, None] + 1, 0).astype(np.uint8)
    return images, labels.astype(np.int64), segmentation


def load_shapes(num_train=12000, num_test=2000, image_size=28, channels=1, seed=0):
    """The embedded shapes dataset, in the keras.datasets layout plus segmentation masks.

    Args:
        num_train: training examples (classes are drawn uniformly).
        num_test: test examples.
        image_size: side of the square images (28 matches Fashion-MNIST).
        channels: 1 (grayscale) or 3 (RGB, random colours per image).
        seed: the same seed always gives the same arrays.

    Returns:
        `((x_train, y_train, m_train), (x_test, y_test, m_test))`: uint8 images
        (n, size, size, channels), int64 labels in [0, 10), uint8 masks (n, size, size)
        holding 0 for background and label + 1 on the shape.
    """
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    image_size = check_positive_int("image_size", image_size, minimum=8)
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
    check_positive_int("seed", seed, minimum=0)
    train_rng, test_rng = (np.random.default_rng([seed, split]) for split in (0, 1))
    return (
        _draw(num_train, image_size, channels, train_rng),
        _draw(num_test, image_size, channels, test_rng),
    )
