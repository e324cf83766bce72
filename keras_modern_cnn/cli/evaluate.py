"""`kmc evaluate MODEL_FILE` and `kmc predict MODEL_FILE IMAGE...`: use a trained `.keras` model."""

import json
import os

from keras_modern_cnn.data.pipeline import NORMALIZATIONS


def add_parser(subparsers):
    evaluate = subparsers.add_parser("evaluate", help="test loss and accuracy of a saved model")
    evaluate.add_argument("model_file", help="a .keras file written by `kmc train`")
    evaluate.add_argument("--dataset", default=None, help="as in `kmc train` (default: embedded shapes)")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--no-download", dest="download", action="store_false")
    evaluate.add_argument("--test-examples", type=int, default=None)
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--normalization", choices=NORMALIZATIONS, default=None,
                          help="default: the one recorded at training time, else scale")
    evaluate.set_defaults(run=run_evaluate)

    predict = subparsers.add_parser("predict", help="top-k classes of image files")
    predict.add_argument("model_file")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--normalization", choices=NORMALIZATIONS, default=None)
    predict.set_defaults(run=run_predict)


def load_trained(path):
    """The model and the `metrics.json` `kmc train` wrote beside it ({} if absent)."""
    import keras

    import keras_modern_cnn  # noqa: F401  (registers the custom layers for safe loading)

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such model file. Received: model_file={path!r}")
    model = keras.saving.load_model(path)
    metrics_path = os.path.join(os.path.dirname(path), "metrics.json")
    info = {}
    if os.path.exists(metrics_path):
        with open(metrics_path) as handle:
            info = json.load(handle)
    return model, info


def model_image_shape(model):
    """(size, channels) of a channels-last or channels-first square image model."""
    import keras

    shape = model.input_shape[1:]
    if keras.config.image_data_format() == "channels_first":
        return shape[1], shape[0]
    return shape[0], shape[2]


def run_evaluate(args):
    from keras_modern_cnn.data import load_data, make_pipeline

    model, info = load_trained(args.model_file)
    size, channels = model_image_shape(model)
    data = load_data(
        args.dataset, task=info.get("task", "classification"), data_dir=args.data_dir,
        download=args.download, image_size=size, test_examples=args.test_examples,
    )
    if data.channels != channels:
        raise ValueError(
            f"The model expects {channels}-channel images but the dataset has "
            f"{data.channels} channels. Received: dataset={args.dataset!r}"
        )
    pipeline = make_pipeline(
        data.test, image_size=size, batch_size=args.batch_size, training=False,
        task=data.task, normalization=args.normalization or info.get("normalization", "scale"),
    )
    results = model.evaluate(pipeline, verbose=0, return_dict=True)
    for name, value in results.items():
        print(f"test {name}: {value:.4f}")


def run_predict(args):
    import keras
    import numpy as np

    from keras_modern_cnn.validation import check_positive_int

    top_k = check_positive_int("top_k", args.top_k)
    model, info = load_trained(args.model_file)
    size, channels = model_image_shape(model)
    class_names = info.get("class_names") or [str(i) for i in range(model.output_shape[-1])]
    normalization = args.normalization or info.get("normalization", "scale")
    for path in args.images:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such image file. Received: image={path!r}")
        image = keras.utils.img_to_array(keras.utils.load_img(
            path, color_mode="grayscale" if channels == 1 else "rgb", target_size=(size, size)
        ))
        if normalization == "scale":
            image = image / 255.0
        else:
            image = (image - image.mean()) / max(image.std(), 1.0 / np.sqrt(image.size))
        if keras.config.image_data_format() == "channels_first":
            image = image.transpose(2, 0, 1)
        probabilities = np.asarray(model.predict(image[None], verbose=0))[0]
        best = np.argsort(probabilities)[::-1][:top_k]
        ranked = ", ".join(f"{class_names[i]} {probabilities[i]:.3f}" for i in best)
        print(f"{path}: {ranked}")
