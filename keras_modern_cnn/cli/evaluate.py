"""`kmc evaluate MODEL_FILE` and `kmc predict MODEL_FILE IMAGE...`: use a trained `.keras` model.

Dataset, image size, normalisation and class names come from the `run.json` that `kmc train`
wrote beside the model; flags override them (and stand in for a model trained elsewhere).
"""

import csv
import io
import json
import os

from keras_modern_cnn.choices import NORMALIZATIONS

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

    predict = subparsers.add_parser("predict", help="top-k classes of image files or folders")
    predict.add_argument("model_file")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--normalization", choices=NORMALIZATIONS, default=None)
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="also write the predictions to FILE (.csv or .json)")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --output")
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
    import keras
    import numpy as np

    try:
        image = keras.utils.img_to_array(keras.utils.load_img(
            path, color_mode="grayscale" if channels == 1 else "rgb", target_size=(size, size)
        ))
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot read the image ({type(error).__name__}). Received: image={path!r}") from None
    if normalization == "scale":
        image = image / 255.0
    else:
        image = (image - image.mean()) / max(image.std(), 1.0 / np.sqrt(image.size))
    if keras.config.image_data_format() == "channels_first":
        image = image.transpose(2, 0, 1)
    return image


def run_predict(args):
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
    classes = model.output_shape[-1]
    class_names = info.get("class_names") or [str(i) for i in range(classes)]
    normalization = args.normalization or info.get("normalization", "scale")
    images = np.stack([_load_image(path, size, channels, normalization) for path in files])
    probabilities = np.asarray(model.predict(images, verbose=0))
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
