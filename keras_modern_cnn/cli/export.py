"""`kmc export MODEL_FILE`: turn a saved `.keras` model into a SavedModel (or other format).

With `--quantize int8` it also reports the artefact's size and test accuracy before and after
quantization, measured in the artefact's own runtime on the run's dataset.
"""

import argparse
import os
import tempfile

from keras_modern_cnn.choices import FORMATS, INFERENCE_FORMATS, QUANTIZABLE_FORMATS


def add_parser(subparsers):
    parser = subparsers.add_parser("export", help="export a trained .keras model")
    parser.add_argument("model_file", help="a .keras file, e.g. runs/demo/model.keras")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument("--output", required=True, help="target directory or file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--fold-batch-norm", action=argparse.BooleanOptionalAction, default=None,
        help=f"fold BatchNorm into the convolution or dense layer before it (default: on for "
             f"{', '.join(INFERENCE_FORMATS)}; off for keras and weights)",
    )
    parser.add_argument(
        "--quantize", choices=("int8",), default=None,
        help=f"int8 post-training quantization ({', '.join(QUANTIZABLE_FORMATS)}): full-integer "
             "for litert, Dense weights otherwise; reports size and test accuracy before and after",
    )
    parser.add_argument("--dataset", default=None,
                        help="with --quantize: the data to calibrate and evaluate on, as in "
                             "`kmc train` (default: the run's own, from run.json)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--no-download", dest="download", action="store_false")
    parser.add_argument("--calibration-examples", type=int, default=200,
                        help="with --quantize litert: training images that calibrate activations")
    parser.add_argument("--test-examples", type=int, default=None)
    parser.set_defaults(run=run)


def run(args):
    from keras_modern_cnn.validation import check_positive_int

    if not os.path.isfile(args.model_file):
        raise FileNotFoundError(f"No model file at {args.model_file!r}. Received: model_file={args.model_file!r}")
    check_positive_int("calibration_examples", args.calibration_examples)
    if args.test_examples is not None:
        check_positive_int("test_examples", args.test_examples)
    from keras_modern_cnn.export import _check_target, export
    from keras_modern_cnn.inference import load_trained

    # The target first: a refused one costs no model loading.
    _check_target(args.output, args.format, args.overwrite, args.model_file)
    model, config, info = load_trained(args.model_file)  # one line for a bad file
    if args.dataset is None and config is not None:
        args.dataset = config.dataset  # quantize on the data the model was trained on
    if args.quantize is None:
        path = export(model, args.output, format=args.format, overwrite=args.overwrite,
                      fold_batch_norm=args.fold_batch_norm, source=args.model_file)
        print(f"exported {args.format}: {path}")
        return
    test_images, test_labels, calibration = _quantization_data(model, config, info, args)
    from keras_modern_cnn.export import inference_copy

    # Like for like: the int8 artefact is an inference model, without the optimizer state a
    # trained `.keras` file carries, so the float32 reference is one too.
    with tempfile.TemporaryDirectory() as scratch:
        reference = export(inference_copy(model), os.path.join(scratch, os.path.basename(args.output)),
                           format=args.format, fold_batch_norm=args.fold_batch_norm)
        before = _measure(reference, args.format, test_images, test_labels)
    path = export(
        model, args.output, format=args.format, overwrite=args.overwrite,
        fold_batch_norm=args.fold_batch_norm, quantize="int8",
        representative_data=calibration if args.format == "litert" else None,
        source=args.model_file,
    )
    after = _measure(path, args.format, test_images, test_labels)
    print(f"exported {args.format} (int8): {path}")
    print(f"size: {before[0] / 1e6:.3f} MB float32 -> {after[0] / 1e6:.3f} MB int8 "
          f"({before[0] / after[0]:.1f}x smaller)")
    print(f"test accuracy: {before[1]:.4f} float32 -> {after[1]:.4f} int8 "
          f"({len(test_labels)} examples)")


def _quantization_data(model, config, info, args):
    """(test images, test labels, calibration images) of the run's dataset, as numpy arrays,
    read as the run read them (classes matched by name, `inference.evaluation_data`)."""
    import numpy as np

    from keras_modern_cnn.data import make_pipeline
    from keras_modern_cnn.inference import evaluation_data, model_image_shape

    size, _ = model_image_shape(model)
    data = evaluation_data(
        model, config, info, dataset=args.dataset, data_dir=args.data_dir,
        download=args.download, train_examples=args.calibration_examples,
        test_examples=args.test_examples, notice=lambda line: print(f"note: {line}"),
    )

    def arrays(split):
        pipeline = make_pipeline(split, image_size=size, batch_size=256, training=False,
                                 task=data.task, pixel_scale=data.pixel_scale,
                                 normalization=info.get("normalization", "scale"))
        batches = list(pipeline.as_numpy_iterator())
        return (np.concatenate([images for images, _ in batches]),
                np.concatenate([targets for _, targets in batches]))

    test_images, test_labels = arrays(data.test)
    return test_images, test_labels, arrays(data.train)[0]


def _measure(path, format, images, labels):
    """(bytes on disk, accuracy) of an exported artefact, predicting in its own runtime."""
    import keras
    import numpy as np

    from keras_modern_cnn.export import artefact_size, load_served

    if format == "keras":
        predict = keras.saving.load_model(path).predict_on_batch
    else:
        predict = load_served(path)
    outputs = np.concatenate([np.asarray(predict(images[i:i + 256])) for i in range(0, len(images), 256)])
    class_axis = 1 if keras.config.image_data_format() == "channels_first" and outputs.ndim == 4 else -1
    return artefact_size(path), float(np.mean(np.argmax(outputs, axis=class_axis) == labels))
