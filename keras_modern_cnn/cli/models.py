"""`kmc list`, `kmc info MODEL` and `kmc summary MODEL`: what the zoo holds and what a model is.

`list` and `info` read the model cards (`keras_modern_cnn.registry.read_cards`) and never import a backend;
`summary` builds the model.
"""

import argparse
import contextlib
import fnmatch
import os

from keras_modern_cnn.cli import options
from keras_modern_cnn.recipes import D2L_RECIPES, family_defaults, get_recipe
from keras_modern_cnn.registry import natural_key, read_cards

# `kmc summary`'s table width: wide enough for the zoo's longest layer names and shapes.
SUMMARY_WIDTH = 120


def add_parser(subparsers):
    list_parser = subparsers.add_parser(
        "list", help="registered models with their parameter counts and GFLOPs"
    )
    list_parser.add_argument(
        "pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'resnet*'"
    )
    list_parser.add_argument(
        "--markdown", action="store_true",
        help="print the README's model table (name, family, task, input, params, GFLOPs, reference)",
    )
    list_parser.set_defaults(run=run_list, needs_backend=False)

    info = subparsers.add_parser(
        "info", help="one model's reference, size, cost, input sizes and training defaults"
    )
    info.add_argument("model", help="registered name (see `kmc list`)")
    info.set_defaults(run=run_info, needs_backend=False)

    summary = subparsers.add_parser(
        "summary", help="layer-by-layer output shapes of one model (the full table, any width)"
    )
    summary.add_argument("model", help="registered name (see `kmc list`)")
    options.add_image_size(summary)
    summary.add_argument("--channels", type=int, default=None,
                         help="input channels (default: the model's own)")
    summary.add_argument("--classes", type=int, default=None, help="number of output classes")
    options.add_width_ratio(summary)
    summary.add_argument(
        "--input-shape", type=parse_shape, default=None, action=options.Renamed,
        replacement="--image-size and --channels",
        help="(old option) input shape without batch axis, e.g. 96,96,1: use --image-size "
        "and --channels",
    )
    summary.set_defaults(run=run_summary)


def parse_shape(text):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 96,96,1. Received: {text!r}") from None


def model_card(name):
    """The card of a zoo model by name (any case); unknown names list what exists."""
    cards = read_cards()
    key = name.lower()
    if key not in cards:
        raise ValueError(
            f"Unknown model name. Registered models: {', '.join(sorted(cards))}. "
            f"Received: name={name!r}"
        )
    return key, cards[key]


def matching_cards(pattern):
    cards = read_cards()
    names = sorted((name for name in cards if fnmatch.fnmatch(name, pattern.lower())), key=natural_key)
    if not names:
        raise ValueError(f"No registered model matches the pattern. Received: pattern={pattern!r}")
    return {name: cards[name] for name in names}


def shape_text(shape):
    return "x".join(map(str, shape))


def markdown_table(cards):
    """The README's model table, generated from the model cards."""
    lines = [
        "| model | family | task | default input | params | GFLOPs | reference |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for name, card in cards.items():
        lines.append(
            f"| `{name}` | {card['family']} | {card['task']} | "
            f"{shape_text(card['default_input_shape'])} | {card['params']:,} | "
            f"{card['flops'] / 1e9:.3g} | {card['reference']} |"
        )
    return "\n".join(lines)


def run_list(args):
    cards = matching_cards(args.pattern)
    if args.markdown:
        print(markdown_table(cards))
        return
    print(f"{'model':<13} {'family':<10} {'task':<15} {'input':<12} {'params':>12} "
          f"{'trainable':>12} {'GFLOPs':>8}")
    for name, card in cards.items():
        print(f"{name:<13} {card['family']:<10} {card['task']:<15} "
              f"{shape_text(card['default_input_shape']):<12} {card['params']:>12,} "
              f"{card['trainable_params']:>12,} {card['flops'] / 1e9:>8.3g}")


def run_info(args):
    name, card = model_card(args.model)
    optimizer, learning_rate = family_defaults(card["family"])
    size = card["default_input_shape"]
    lines = [
        ("model", name),
        ("reference", card["reference"]),
        ("family, task", f"{card['family']}, {card['task']}"),
        ("parameters", f"{card['params']:,} total, {card['trainable_params']:,} trainable"),
        ("GFLOPs", f"{card['flops'] / 1e9:.3g} per image at {shape_text(size)} (forward, 2 per multiply-add)"),
        ("default input", shape_text(size)),
        ("minimum input", f"{card['min_input_size']}x{card['min_input_size']}"
         if card["min_input_size"] is not None else "not declared"),
        ("kmc train defaults", f"optimizer {optimizer}, learning rate {learning_rate:g}, "
         f"image size {size[0]}"),
    ]
    if name in D2L_RECIPES:
        recipe = get_recipe("d2l", name)
        lines.append(("--recipe d2l", ", ".join(f"{key} {value}" for key, value in recipe.items())))
    else:
        lines.append(("--recipe d2l", "not a model the book trains"))
    lines.append(("pretrained weights", presets_text(name)))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label + ':':<{width + 1}} {value}")


def presets_text(name):
    """The presets of a model, its default (`imagenet`) first, with source and reported top-1,
    and the twin registered for other sources' weights."""
    from keras_modern_cnn.weights.presets import (
        DEFAULT_PRESET,
        PRESETS,
        TWIN_HINTS,
        TWIN_REASONS,
        list_presets,
    )

    presets = list_presets(name)
    texts = []
    if presets:
        default = PRESETS[name][DEFAULT_PRESET]
        presets.sort(key=lambda preset: preset.name != (default.alias_of or DEFAULT_PRESET))
        texts = [f"{preset.name} ({preset.source}, ImageNet top-1 {preset.top1:g}%)" for preset in presets]
        if default.alias_of is not None:
            texts[0] = f"{DEFAULT_PRESET} = {texts[0]}"
    twin = TWIN_HINTS.get(name)
    if twin is not None:
        texts.append(f"{TWIN_REASONS[twin]}: `{twin}`")
    return "; ".join(texts) or "none"


def builder_kwargs(args):
    """Keyword arguments for the registered builder from the summary options."""
    from keras_modern_cnn.registry import get_spec

    kwargs = {}
    if args.input_shape is not None:
        if args.image_size is not None or args.channels is not None:
            raise ValueError(
                "`--input-shape` is the old spelling of --image-size and --channels; give one "
                f"or the other. Received: input_shape={args.input_shape!r}"
            )
        kwargs["input_shape"] = args.input_shape
    elif args.image_size is not None or args.channels is not None:
        from keras_modern_cnn.training import input_shape

        default = get_spec(args.model).default_input_shape  # channels-last
        kwargs["input_shape"] = input_shape(
            default[0] if args.image_size is None else args.image_size,
            default[-1] if args.channels is None else args.channels,
        )
    if args.classes is not None:
        kwargs["classes"] = args.classes
    if args.width_ratio is not None:
        kwargs["width_ratio"] = args.width_ratio
    return kwargs


def run_summary(args):
    from keras_modern_cnn.registry import get_spec

    model = get_spec(args.model).builder(**builder_kwargs(args))
    # Keras sizes the table (and rich the page) to the terminal, cutting piped output at ~80
    # columns: both read COLUMNS first, so the table is laid out at one width everywhere.
    with _environment(COLUMNS=str(SUMMARY_WIDTH + 4)):
        model.summary(line_length=SUMMARY_WIDTH)


@contextlib.contextmanager
def _environment(**variables):
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
