"""Using a trained model: load it with what its run recorded, read images, predict classes or
masks. `kmc evaluate` and `kmc predict` are thin front-ends over this module.

Dataset, image size, normalisation and class names come from the `run.json` that `kmc train`
wrote beside the model (`load_trained`); without one, the caller's settings stand in. Image
files are checked and decoded as training reads them (`keras_modern_cnn.data.images`,
`pipeline.prepare_image`): the same file gives the same model input in every command.
"""

import dataclasses
import os

import numpy as np

from keras_modern_cnn.data.images import (
    IMAGE_EXTENSIONS,
    check_image_files,
    list_image_files,
    unsupported_reason,
)


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


def evaluation_data(model, config, info, *, dataset=None, data_dir=None, download=True,
                    test_examples=None, train_examples=None, notice=None):
    """The data to evaluate (or calibrate) a trained model on, read as its run read its own.

    `dataset` defaults to the run's (`config`, from `run.json`); the images are decoded at the
    model's input side (an image folder also at its channels, as `kmc predict` reads a file),
    checked against its channels, and their classes matched by name with
    the run's class names (`data.checks.class_mapping`; a dataset holding a subset of them is
    renumbered, one holding a class the model does not know is an error). `notice(line)`
    hears what was done. Returns `ImageData`.
    """
    from keras_modern_cnn.data import load_data, with_class_mapping
    from keras_modern_cnn.data.checks import class_mapping

    size, channels = model_image_shape(model)
    if dataset is None:
        dataset = config.dataset if config else None
    if data_dir is None and config is not None:
        data_dir = config.data_dir
    data = load_data(
        dataset, task=info.get("task", "classification"), data_dir=data_dir, download=download,
        image_size=size, train_examples=train_examples, test_examples=test_examples,
        seed=config.seed if config else 0, channels=channels if channels in (1, 3) else 3,
    )
    if data.channels != channels:
        raise ValueError(
            f"The model expects {channels}-channel images but the dataset has "
            f"{data.channels} channels. Received: dataset={dataset!r}"
        )
    outputs = num_outputs(model)
    model_classes = info.get("class_names") or [str(index) for index in range(outputs)]
    if len(model_classes) != outputs:
        raise ValueError(
            f"run.json names {len(model_classes)} classes but the model predicts {outputs}. "
            f"Received: class_names={model_classes!r}"
        )
    mapping, note = class_mapping(model_classes, data.class_names, dataset)
    if mapping is not None:
        data = with_class_mapping(data, mapping, model_classes)
    for line in data.notices + ((note,) if note else ()):
        if notice is not None:
            notice(line)
    return data


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


def image_files(paths, notice=None):
    """The image files named, folders expanded (sorted; hidden files and folders left out),
    each checked as training checks them: a missing path, an image kmc cannot read or a
    folder without images is an error naming it. `notice(line)` hears of ignored files."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found, unsupported, other = list_image_files(path)
            if unsupported:
                raise ValueError(
                    f"{unsupported[0]} is {unsupported_reason(unsupported[0])}"
                    f"{f' (and {len(unsupported) - 1} more)' if len(unsupported) > 1 else ''}. "
                    f"Received: image={path!r}"
                )
            if not found:
                raise ValueError(
                    f"The folder holds no image file ({', '.join(IMAGE_EXTENSIONS)}). "
                    f"Received: image={path!r}"
                )
            if other and notice is not None:
                notice(f"ignored {len(other)} file(s) in {path} that are not images")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"No such image file or folder. Received: image={path!r}")
    problems = check_image_files(files)
    for file in files:
        if file in problems:
            raise ValueError(f"Cannot read the image: {file} is {problems[file]}. Received: image={file!r}")
    return files


def load_image(path, size, channels, normalization, pixel_scale=255.0):
    """(the model's input for the image at `path`, the image as read: HxWxC uint8), decoded and
    scaled exactly as the training pipeline reads the same file."""
    import keras

    from keras_modern_cnn.data.images import read_image
    from keras_modern_cnn.data.pipeline import prepare_image

    decoded = read_image(path, channels)
    image = np.asarray(prepare_image(decoded, size, normalization, pixel_scale))
    if keras.config.image_data_format() == "channels_first":
        image = image.transpose(2, 0, 1)
    original = np.clip(np.round(np.asarray(decoded)), 0, 255).astype(np.uint8)
    return image, original


def predict_images(model, files, normalization):
    """`(probabilities, originals)`: the model's outputs for the image files, and each image as
    read (HxWxC uint8)."""
    size, channels = model_image_shape(model)
    if channels not in (1, 3):
        raise ValueError(
            f"Image files give grey (1-channel) or RGB (3-channel) inputs; this model takes "
            f"{channels} channels. Received: channels={channels}"
        )
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


def write_masks(probabilities, originals, targets, num_classes, class_names=None):
    """Write each image's argmax mask, at the image's own size, as a mask PNG and an overlay
    (enlarged, captioned, with a legend of `class_names`).

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
        write_side_by_side(overlay_path, original, mask, num_classes, class_names)
        masks.append(mask)
    return masks
