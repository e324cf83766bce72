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
    from keras_modern_cnn.export import export
    from keras_modern_cnn.training import load_model

    model = load_model(args.model_file)  # a truncated or foreign file: one line, not a traceback
    path = export(model, args.output, format=args.format, overwrite=args.overwrite)
    print(f"exported {args.format}: {path}")
