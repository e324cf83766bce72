"""`kmc evaluate MODEL_FILE` and `kmc predict MODEL_FILE IMAGE...`: use a trained `.keras` model.

Dataset, image size, normalisation and class names come from the `run.json` that `kmc train`
wrote beside the model; flags override them (and stand in for a model trained elsewhere).
"""

import csv
import io
import json
import os

from keras_modern_cnn.choices import NORMALIZATIONS
from keras_modern_cnn.cli import options

OUTPUT_FORMATS = (".csv", ".json")


def add_parser(subparsers):
    evaluate = subparsers.add_parser("evaluate", help="test loss and accuracy of a saved model")
    evaluate.add_argument("model_file", help="a .keras file written by `kmc train`")
    evaluate.add_argument("--dataset", default=None, help="default: the run's (run.json), else the embedded shapes")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--no-download", dest="download", action="store_false")
    evaluate.add_argument("--test-examples", type=int, default=None)
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--normalization", choices=NORMALIZATIONS, default=None,
                          help="default: the run's (run.json), else scale")
    evaluate.set_defaults(run=run_evaluate)

    predict = subparsers.add_parser(
        "predict", help="top-k classes, or segmentation masks, of image files or folders",
        description="A classifier prints the top-k classes of each image (--output FILE also "
        "writes them as .csv or .json). A segmentation model writes, into --output-dir, "
        "NAME_mask.png (the class index of every pixel, at the image's size, as a palette "
        "PNG) and NAME_overlay.png (input | mask colours | mask over the input) per image, "
        "keeping the images' sub-folders, and prints each image's classes by pixel share.",
    )
    predict.add_argument("model_file")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    predict.add_argument("--top-k", type=int, default=3, help="classifiers (default 3)")
    predict.add_argument("--normalization", choices=NORMALIZATIONS, default=None)
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="classifiers: also write the predictions to FILE (.csv or .json)")
    options.add_output_dir(predict, "segmentation models: where the mask images go")
    options.add_overwrite(predict, "replace an existing --output, or masks in --output-dir")
    predict.set_defaults(run=run_predict)


def load_trained(path):
    """The model, and what `run.json` beside it says of its data ({} if absent)."""
    from keras_modern_cnn.config import RUN_FILE, read_run_file
    from keras_modern_cnn.training import load_model

    model = load_model(path)
    run_file = os.path.join(os.path.dirname(path), RUN_FILE)
    if not os.path.exists(run_file):
        return model, None, {}
    config, data_info = read_run_file(run_file)
    return model, config, data_info


def model_image_shape(model):
    """(size, channels) of a channels-last or channels-first square image model."""
    from keras_modern_cnn.validation import spatial_and_channels

    spatial, channels = spatial_and_channels(model.input_shape[1:])
    return spatial[0], channels


def run_evaluate(args):
    from keras_modern_cnn.data import load_data, make_pipeline
    from keras_modern_cnn.validation import check_positive_int

    batch_size = check_positive_int("batch_size", args.batch_size)
    model, config, info = load_trained(args.model_file)
    size, channels = model_image_shape(model)
    dataset = args.dataset if args.dataset is not None else config.dataset if config else None
    data = load_data(
        dataset, task=info.get("task", "classification"),
        data_dir=args.data_dir if args.data_dir is not None else config and config.data_dir,
        download=args.download, image_size=size, test_examples=args.test_examples,
        seed=config.seed if config else 0,
    )
    if data.channels != channels:
        raise ValueError(
            f"The model expects {channels}-channel images but the dataset has "
            f"{data.channels} channels. Received: dataset={dataset!r}"
        )
    if data.num_classes > model.output_shape[-1]:
        raise ValueError(
            f"The dataset has {data.num_classes} classes but the model predicts "
            f"{model.output_shape[-1]}. Received: dataset={dataset!r}"
        )
    pipeline = make_pipeline(
        data.test, image_size=size, batch_size=batch_size, training=False, task=data.task,
        normalization=args.normalization or info.get("normalization", "scale"),
    )
    results = model.evaluate(pipeline, verbose=0, return_dict=True)
    for name, value in results.items():
        print(f"test {name}: {value:.4f}")


def image_files(paths):
    """The image files named, folders expanded (sorted); a missing path is an error."""
    from keras_modern_cnn.data.checks import IMAGE_EXTENSIONS

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


def _load_image(path, size, channels, normalization):
    """(the model's input, the image as read: HxWxC uint8)."""
    import keras
    import numpy as np
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
    else:
        image = (image - image.mean()) / max(image.std(), 1.0 / np.sqrt(image.size))
    if keras.config.image_data_format() == "channels_first":
        image = image.transpose(2, 0, 1)
    return image, keras.utils.img_to_array(original).astype(np.uint8)


def run_predict(args):
    import keras
    import numpy as np

    from keras_modern_cnn.validation import check_positive_int

    top_k = check_positive_int("top_k", args.top_k)
    if args.output is not None:
        if not args.output.lower().endswith(OUTPUT_FORMATS):
            raise ValueError(f"`--output` must end in .csv or .json. Received: output={args.output!r}")
        if os.path.exists(args.output) and not args.overwrite:
            raise ValueError(f"`--output` exists; pass --overwrite to replace it. Received: output={args.output!r}")
    files = image_files(args.images)
    model, _, info = load_trained(args.model_file)
    size, channels = model_image_shape(model)
    segmentation = len(model.output_shape) == 4  # a class distribution per pixel
    channels_first = keras.config.image_data_format() == "channels_first"
    classes = model.output_shape[1 if segmentation and channels_first else -1]
    class_names = info.get("class_names") or [str(i) for i in range(classes)]
    normalization = args.normalization or info.get("normalization", "scale")
    targets = _check_predict_outputs(args, segmentation, files, classes)
    loaded = [_load_image(path, size, channels, normalization) for path in files]
    images = np.stack([image for image, _ in loaded])
    probabilities = np.asarray(model.predict(images, verbose=0))
    if segmentation:
        return _write_masks(probabilities, [image for _, image in loaded], files, targets,
                            class_names, args.output_dir)
    rows = []
    for path, scores in zip(files, probabilities):
        best = np.argsort(scores)[::-1][: min(top_k, classes)]
        ranked = [(class_names[i], float(scores[i])) for i in best]
        rows.append({"image": path, "predictions": ranked})
        print(f"{path}: " + ", ".join(f"{name} {score:.3f}" for name, score in ranked))
    if args.output is not None:
        from keras_modern_cnn.rundir import write_text

        write_text(args.output, _format_predictions(rows, args.output))
        print(f"predictions: {args.output}")


MASK_SUFFIXES = ("_mask.png", "_overlay.png")


def _check_predict_outputs(args, segmentation, files, classes):
    """The outputs fit the model: masks need --output-dir, a table needs a classifier.

    Returns, for masks, the (mask, overlay) paths of each file: its path below the images'
    common folder, under --output-dir; existing ones need --overwrite.
    """
    from keras_modern_cnn.masks import MAX_CLASSES
    from keras_modern_cnn.rundir import check_writable

    if not segmentation:
        if args.output_dir is not None:
            raise ValueError(
                "`--output-dir` receives a segmentation model's masks; this model is a "
                f"classifier (--output FILE writes its predictions). Received: "
                f"output_dir={args.output_dir!r}"
            )
        return None
    if args.output is not None:
        raise ValueError(
            "`--output` writes a classifier's top-k table; a segmentation model writes mask "
            f"images into --output-dir. Received: output={args.output!r}"
        )
    if args.output_dir is None:
        raise ValueError(
            "A segmentation model predicts masks: pass --output-dir DIR to write them. "
            "Received: output_dir=None"
        )
    if classes > MAX_CLASSES:
        raise ValueError(f"Mask PNGs hold at most {MAX_CLASSES} classes. Received: classes={classes}")
    check_writable("output_dir", args.output_dir)
    root = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in files])
    targets = []
    for path in files:
        stem = os.path.splitext(os.path.relpath(os.path.abspath(path), root))[0]
        targets.append([os.path.join(args.output_dir, stem + suffix) for suffix in MASK_SUFFIXES])
    names = [mask for mask, _ in targets]
    clash = next((name for name in names if names.count(name) > 1), None)
    if clash is not None:
        paths = [path for path, (mask, _) in zip(files, targets) if mask == clash]
        raise ValueError(
            f"Two images would write the same mask {clash}; rename one. Received: "
            f"images={paths!r}"
        )
    existing = [target for pair in targets for target in pair if os.path.exists(target)]
    if existing and not args.overwrite:
        raise ValueError(
            f"`--output-dir` already holds {existing[0]} (and {len(existing) - 1} more); pass "
            f"--overwrite to replace them. Received: output_dir={args.output_dir!r}"
        )
    return targets


def _write_masks(probabilities, originals, files, targets, class_names, output_dir):
    """Each image's argmax mask, at the image's own size, as a mask PNG and an overlay."""
    import keras
    import numpy as np
    from PIL import Image

    from keras_modern_cnn.masks import write_mask, write_side_by_side

    class_axis = 0 if keras.config.image_data_format() == "channels_first" else -1
    for path, scores, original, (mask_path, overlay_path) in zip(
        files, probabilities, originals, targets
    ):
        mask = np.argmax(scores, axis=class_axis).astype(np.uint8)
        height, width = original.shape[:2]
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
        os.makedirs(os.path.dirname(mask_path) or ".", exist_ok=True)
        write_mask(mask_path, mask, len(class_names))
        write_side_by_side(overlay_path, original, mask, len(class_names))
        counts = np.bincount(mask.ravel(), minlength=len(class_names))
        shares = ", ".join(f"{class_names[i]} {counts[i] / mask.size:.1%}"
                           for i in np.argsort(counts)[::-1][:3] if counts[i])
        print(f"{path}: {mask_path} ({shares})")
    print(f"masks: {output_dir}")


def _format_predictions(rows, path):
    if path.lower().endswith(".json"):
        records = [
            {"image": row["image"],
             "predictions": [{"class": name, "probability": p} for name, p in row["predictions"]]}
            for row in rows
        ]
        return json.dumps(records, indent=2, allow_nan=False) + "\n"
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "rank", "class", "probability"])
    for row in rows:
        for rank, (name, probability) in enumerate(row["predictions"], start=1):
            writer.writerow([row["image"], rank, name, f"{probability:.6f}"])
    return text.getvalue()
