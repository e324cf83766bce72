"""Using a trained model: load it with what its run recorded, read images, predict classes or
masks. `kmc evaluate` and `kmc predict` are thin front-ends over this module.

Dataset, image size, normalisation and class names come from the `run.json` that `kmc train`
wrote beside the model (`load_trained`); without one, the caller's settings stand in.
"""

import dataclasses
import os

import numpy as np

from keras_modern_cnn.data.checks import IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A classifier's top classes for one image: `[(class name, probability), ...]`, best first."""

    image: str
    ranked: list


def load_trained(path):
    """`(model, RunConfig or None, data info dict)` of a `.keras` file and the `run.json`
    beside it (None and {} when it has none)."""
    from keras_modern_cnn.config import RUN_FILE, read_run_file
    from keras_modern_cnn.saving import load_model

    model = load_model(path)
    run_file = os.path.join(os.path.dirname(path), RUN_FILE)
    if not os.path.exists(run_file):
        return model, None, {}
    config, data_info = read_run_file(run_file)
    return model, config, data_info


def model_image_shape(model):
    """(size, channels) of a channels-last or channels-first square image model; a model that
    takes raw images of any size (`include_preprocessing`) gives the size it resizes them to."""
    from keras_modern_cnn.layers import ImagePreprocessing
    from keras_modern_cnn.validation import spatial_and_channels

    spatial, channels = spatial_and_channels(model.input_shape[1:])
    size = spatial[0]
    if size is None:
        resizing = [layer.size for layer in model.layers
                    if isinstance(layer, ImagePreprocessing) and layer.size is not None]
        size = resizing[0][0] if resizing else None
    return size, channels


def default_normalization(model):
    """The normalisation of a model without a run.json: "none" (raw pixels) when it has its
    preprocessing inside (`include_preprocessing`, `kmc convert --include-preprocessing`),
    else "scale"."""
    from keras_modern_cnn.layers import ImagePreprocessing

    return "none" if any(isinstance(layer, ImagePreprocessing) for layer in model.layers) else "scale"


def default_class_names(classes):
    """Class names of a model without a run.json: ImageNet's for 1000 classes (pretrained
    weights), else the indices."""
    if classes == 1000:
        from keras_modern_cnn.weights.imagenet import imagenet_classes

        return [name for _, name in imagenet_classes()]
    return [str(i) for i in range(classes)]


def is_segmentation(model):
    """A model whose output is a class distribution per pixel."""
    return len(model.output_shape) == 4


def num_outputs(model):
    """Classes a classifier or segmentation model predicts."""
    import keras

    channels_first = keras.config.image_data_format() == "channels_first"
    return model.output_shape[1 if is_segmentation(model) and channels_first else -1]


def image_files(paths):
    """The image files named, folders expanded (sorted); a missing path is an error."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(path)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise ValueError(f"The folder holds no image file. Received: image={path!r}")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"No such image file or folder. Received: image={path!r}")
    return files


def load_image(path, size, channels, normalization):
    """(the model's input for the image at `path`, the image as read: HxWxC uint8)."""
    import keras
    from PIL import Image

    try:
        original = keras.utils.load_img(path, color_mode="grayscale" if channels == 1 else "rgb")
        original.load()
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot read the image ({type(error).__name__}). Received: image={path!r}") from None
    # As `load_img(target_size=...)`: nearest-neighbour resizing.
    image = keras.utils.img_to_array(original.resize((size, size), Image.NEAREST))
    if normalization == "scale":
        image = image / 255.0
    elif normalization == "standardize":
        image = (image - image.mean()) / max(image.std(), 1.0 / np.sqrt(image.size))
    if keras.config.image_data_format() == "channels_first":
        image = image.transpose(2, 0, 1)
    return image, keras.utils.img_to_array(original).astype(np.uint8)


def predict_images(model, files, normalization):
    """`(probabilities, originals)`: the model's outputs for the image files, and each image as
    read (HxWxC uint8)."""
    size, channels = model_image_shape(model)
    loaded = [load_image(path, size, channels, normalization) for path in files]
    images = np.stack([image for image, _ in loaded])
    return np.asarray(model.predict(images, verbose=0)), [original for _, original in loaded]


def top_classes(probabilities, files, class_names, top_k):
    """One `Prediction` per image: its `top_k` classes by probability."""
    predictions = []
    for path, scores in zip(files, probabilities):
        best = np.argsort(scores)[::-1][: min(top_k, len(scores))]
        predictions.append(Prediction(path, [(class_names[i], float(scores[i])) for i in best]))
    return predictions


def write_masks(probabilities, originals, targets, num_classes):
    """Write each image's argmax mask, at the image's own size, as a mask PNG and an overlay.

    `targets`: a `(mask path, overlay path)` per image. Returns the masks (HxW class indices).
    """
    import keras
    from PIL import Image

    from keras_modern_cnn.masks import write_mask, write_side_by_side

    class_axis = 0 if keras.config.image_data_format() == "channels_first" else -1
    masks = []
    for scores, original, (mask_path, overlay_path) in zip(probabilities, originals, targets):
        mask = np.argmax(scores, axis=class_axis).astype(np.uint8)
        height, width = original.shape[:2]
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
        os.makedirs(os.path.dirname(mask_path) or ".", exist_ok=True)
        write_mask(mask_path, mask, num_classes)
        write_side_by_side(overlay_path, original, mask, num_classes)
        masks.append(mask)
    return masks
