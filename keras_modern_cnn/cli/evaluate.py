"""`kmc evaluate MODEL_FILE` and `kmc predict MODEL_FILE IMAGE...`: use a trained `.keras` model.

Parsing, output checks and printing; the work is `keras_modern_cnn.inference`'s. Dataset, image
size, normalisation and class names come from the `run.json` that `kmc train` wrote beside the
model; flags override them (and stand in for a model trained elsewhere).
"""

import csv
import io
import json
import os
import sys

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


def run_evaluate(args):
    from keras_modern_cnn.data import make_pipeline
    from keras_modern_cnn.inference import (
        default_normalization,
        evaluation_data,
        load_trained,
        model_image_shape,
    )
    from keras_modern_cnn.validation import check_positive_int

    batch_size = check_positive_int("batch_size", args.batch_size)
    if args.test_examples is not None:
        check_positive_int("test_examples", args.test_examples)
    model, config, info = load_trained(args.model_file)
    data = evaluation_data(
        model, config, info, dataset=args.dataset, data_dir=args.data_dir,
        download=args.download, test_examples=args.test_examples,
        notice=lambda line: print(f"note: {line}"),
    )
    pipeline = make_pipeline(
        data.test, image_size=model_image_shape(model)[0], batch_size=batch_size,
        training=False, task=data.task, pixel_scale=data.pixel_scale,
        normalization=args.normalization or info.get("normalization", default_normalization(model)),
    )
    results = model.evaluate(pipeline, verbose=0, return_dict=True)
    for name, value in results.items():
        print(f"test {name}: {value:.4f}")


def run_predict(args):
    import numpy as np

    from keras_modern_cnn import inference
    from keras_modern_cnn.validation import check_positive_int

    top_k = check_positive_int("top_k", args.top_k)
    output_manifest = None
    if args.output is not None:
        from keras_modern_cnn.ownership import check_output_file
        from keras_modern_cnn.rundir import LEGACY_RUN

        if not args.output.lower().endswith(OUTPUT_FORMATS):
            raise ValueError(f"`--output` must end in .csv or .json. Received: output={args.output!r}")
        output_manifest = check_output_file(args.output, overwrite=args.overwrite,
                                            legacy_patterns=LEGACY_RUN)
    files = inference.image_files(args.images, notice=lambda line: print(f"note: {line}", file=sys.stderr))
    model, _, info = inference.load_trained(args.model_file)
    segmentation = inference.is_segmentation(model)
    classes = inference.num_outputs(model)
    class_names = info.get("class_names") or inference.default_class_names(classes)
    targets = _check_predict_outputs(args, segmentation, files, classes)
    probabilities, originals = inference.predict_images(
        model, files, args.normalization or info.get("normalization", inference.default_normalization(model))
    )
    if segmentation:
        masks = inference.write_masks(probabilities, originals, targets, len(class_names), class_names)
        for path, mask, (mask_path, _) in zip(files, masks, targets):
            counts = np.bincount(mask.ravel(), minlength=len(class_names))
            shares = ", ".join(f"{class_names[i]} {counts[i] / mask.size:.1%}"
                               for i in np.argsort(counts)[::-1][:3] if counts[i])
            print(f"{path}: {mask_path} ({shares})")
        print(f"masks: {args.output_dir}")
        return
    predictions = inference.top_classes(probabilities, files, class_names, top_k)
    for prediction in predictions:
        print(f"{prediction.image}: " + ", ".join(f"{name} {score:.3f}" for name, score in prediction.ranked))
    if args.output is not None:
        from keras_modern_cnn.files import write_text
        from keras_modern_cnn.ownership import record_output_file

        record_output_file(args.output, output_manifest)
        write_text(args.output, _format_predictions(predictions, args.output))
        print(f"predictions: {args.output}")


MASK_SUFFIXES = ("_mask.png", "_overlay.png")


def _check_predict_outputs(args, segmentation, files, classes):
    """The outputs fit the model: masks need --output-dir, a table needs a classifier.

    Returns, for masks, the (mask, overlay) paths of each file: its path below the images'
    common folder, under --output-dir; existing ones need --overwrite.
    """
    from keras_modern_cnn import ownership
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
    ownership.check_not_other_folder(args.output_dir, "output_dir", allowed=("predictions",))
    # Replaces only masks kmc predict wrote there (recorded), and only with --overwrite.
    ownership.claim_outputs(
        args.output_dir, "predictions",
        [os.path.relpath(target, args.output_dir) for pair in targets for target in pair],
        overwrite=args.overwrite,
    )
    return targets


def _format_predictions(predictions, path):
    if path.lower().endswith(".json"):
        records = [
            {"image": prediction.image,
             "predictions": [{"class": name, "probability": p} for name, p in prediction.ranked]}
            for prediction in predictions
        ]
        return json.dumps(records, indent=2, allow_nan=False) + "\n"
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "rank", "class", "probability"])
    for prediction in predictions:
        for rank, (name, probability) in enumerate(prediction.ranked, start=1):
            writer.writerow([prediction.image, rank, name, f"{probability:.6f}"])
    return text.getvalue()
