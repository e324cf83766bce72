"""`kmc list` and `kmc summary`: what the registry holds, and what a model looks like."""

import argparse

from keras_modern_cnn.registry import get_spec, list_models


def add_parser(subparsers):
    list_parser = subparsers.add_parser(
        "list", help="registered models with their parameter counts"
    )
    list_parser.add_argument(
        "pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'resnet*'"
    )
    list_parser.add_argument(
        "--no-params", action="store_true",
        help="skip building each model to count its parameters (instant)",
    )
    list_parser.add_argument(
        "--markdown", action="store_true",
        help="print the README's model table (name, family, task, input, reference)",
    )
    list_parser.set_defaults(run=run_list)

    summary_parser = subparsers.add_parser(
        "summary", help="layer-by-layer output shapes of one model"
    )
    summary_parser.add_argument("model", help="registered name (see `kmc list`)")
    add_model_arguments(summary_parser)
    summary_parser.set_defaults(run=run_summary)


def add_model_arguments(parser):
    """Builder options shared by every sub-command that builds a model."""
    parser.add_argument(
        "--input-shape", type=parse_shape, default=None,
        help="input shape without batch axis, e.g. 96,96,1 (default: the model's own)",
    )
    parser.add_argument("--classes", type=int, default=None, help="number of output classes")
    parser.add_argument(
        "--width-ratio", type=float, default=None,
        help="multiply every convolution's channel count (e.g. 0.25)",
    )


def parse_shape(text):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 96,96,1. Received: {text!r}") from None


def builder_kwargs(args):
    """Keyword arguments for the registered builder from the shared model options."""
    kwargs = {}
    if args.input_shape is not None:
        kwargs["input_shape"] = args.input_shape
    if args.classes is not None:
        kwargs["classes"] = args.classes
    if args.width_ratio is not None:
        kwargs["width_ratio"] = args.width_ratio
    return kwargs


def count_parameters(model):
    """(total, trainable) parameters; total includes BN moving statistics as Keras counts."""
    trainable = sum(_size(w) for w in model.trainable_weights)
    return model.count_params(), trainable


def _size(variable):
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    return size


def markdown_table(names):
    """The README's model table, generated from the registry."""
    lines = ["| model | family | task | default input | reference |", "|---|---|---|---|---|"]
    for name in names:
        spec = get_spec(name)
        shape = "x".join(map(str, spec.default_input_shape))
        lines.append(f"| `{name}` | {spec.family} | {spec.task} | {shape} | {spec.reference} |")
    return "\n".join(lines)


def run_list(args):
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"No registered model matches the pattern. Received: pattern={args.pattern!r}")
    if args.markdown:
        print(markdown_table(names))
        return
    header = f"{'model':<20} {'family':<10} {'task':<15} {'input':<14}"
    if not args.no_params:
        header += f" {'params':>13} {'trainable':>13}"
    print(header)
    for name in names:
        spec = get_spec(name)
        line = f"{name:<20} {spec.family:<10} {spec.task:<15} {'x'.join(map(str, spec.default_input_shape)):<14}"
        if not args.no_params:
            import keras

            total, trainable = count_parameters(spec.builder())
            keras.backend.clear_session()
            line += f" {total:>13,} {trainable:>13,}"
        print(line, flush=True)


def run_summary(args):
    model = get_spec(args.model).builder(**builder_kwargs(args))
    model.summary(line_length=100)
