"""The options several sub-commands share, each defined once so every command spells it alike.

The vocabulary: `--output-dir` (the directory a command fills), `--image-size` (side of the
square model input), `--learning-rate`, `--width-ratio`, `--encoder`, `--batch-size`, `--epochs`,
`--overwrite`, `--quiet`, `--verbose`. An option's first spelling is its name; any other is an
old spelling kept for one release, which still works and prints a deprecation note on stderr.
"""

import argparse
import sys


class Renamed(argparse.Action):
    """Store the value; an old spelling (or an option with a `replacement`) also prints a
    one-line deprecation note on stderr."""

    def __init__(self, *args, replacement=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None):
        if self.replacement is not None:
            deprecation_note(option_string, self.replacement)
        elif option_string != self.option_strings[0]:
            deprecation_note(option_string, self.option_strings[0])
        setattr(namespace, self.dest, values)


def deprecation_note(old, new):
    print(f"kmc: note: {old} is deprecated and will be removed in the next release; use {new}",
          file=sys.stderr)


IMAGE_SIZE_HELP = "side of the square model input (default: the model's own)"


def add_image_size(group, help=IMAGE_SIZE_HELP):
    group.add_argument("--image-size", type=int, default=None, help=help)


def add_epochs(group, help="default 10"):
    group.add_argument("--epochs", type=int, default=None, help=help)


def add_batch_size(group, help="default 128"):
    group.add_argument("--batch-size", type=int, default=None, help=help)


def add_learning_rate(group, help):
    group.add_argument("--learning-rate", "--lr", type=float, default=None, action=Renamed,
                       help=f"{help} (--lr: old spelling)")


def add_width_ratio(group, help="multiply every convolution's channels (default: the model's)"):
    group.add_argument("--width-ratio", type=float, default=None, help=help)


def add_encoder(group, help):
    group.add_argument("--encoder", default=None, metavar="NAME", help=help)


def add_precise_bn(group):
    """`--precise-bn N` / `--no-precise-bn`: precise BatchNorm statistics (`kmc train`,
    `compare`, `tune`); None when neither is given (the default, on)."""
    from keras_modern_cnn.choices import PRECISE_BN_BATCHES

    choice = group.add_mutually_exclusive_group()
    choice.add_argument(
        "--precise-bn", type=int, default=None, metavar="N",
        help=f"before each validation, re-estimate the BatchNorm statistics over N training "
        f"batches, as population averages (default {PRECISE_BN_BATCHES}; all batches when "
        "fewer); the saved model keeps them",
    )
    choice.add_argument(
        "--no-precise-bn", dest="precise_bn", action="store_const", const=0,
        help="keep the BatchNorm moving averages (EMA) of training",
    )


def add_output_dir(group, help, *, default=None, old_spellings=()):
    group.add_argument("--output-dir", *old_spellings, default=default, action=Renamed,
                       help=help + (f" ({', '.join(old_spellings)}: old spelling)" if old_spellings else ""))


def add_overwrite(group, help):
    group.add_argument("--overwrite", action="store_true", help=help)


def add_quiet(group, help="no progress: print only the final summary"):
    group.add_argument("--quiet", action="store_true", help=help)


def fit_verbosity(quiet):
    """`model.fit`'s verbosity: nothing when quiet, a live bar on a terminal, else one line
    per epoch (a log file gets no carriage-return frames)."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def add_verbose(parser):
    """`--verbose` on every sub-command: keep the backend's start-up logs and warnings."""
    parser.add_argument(
        "--verbose", action="store_true",
        help="show TensorFlow/JAX start-up logs and library warnings (hidden by default)",
    )
