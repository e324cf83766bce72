"""`kmc export MODEL_FILE`: turn a saved `.keras` model into a SavedModel (or other format)."""

import os

from keras_modern_cnn.export import FORMATS


def add_parser(subparsers):
    parser = subparsers.add_parser("export", help="export a trained .keras model")
    parser.add_argument("model_file", help="a .keras file, e.g. runs/demo/model.keras")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument("--output", required=True, help="target directory or file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.set_defaults(run=run)


def run(args):
    if not os.path.isfile(args.model_file):
        raise FileNotFoundError(f"No model file at {args.model_file!r}. Received: model_file={args.model_file!r}")
    import keras

    import keras_modern_cnn  # noqa: F401  (registers BatchNorm for loading)
    from keras_modern_cnn.export import export

    model = keras.saving.load_model(args.model_file, safe_mode=True)
    path = export(model, args.output, format=args.format, overwrite=args.overwrite)
    print(f"exported {args.format}: {path}")
