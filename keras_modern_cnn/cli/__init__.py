"""The `kmc` command line: `kmc list`, `kmc summary MODEL`, `kmc train MODEL`, ...

Each sub-command lives in its own module exposing `add_parser(subparsers)`, which registers
the arguments and sets `run` (a function taking the parsed arguments) as the default, and
`needs_backend=False` where the command reads only the model cards. Building the parser imports
no Keras: `kmc --help` and `kmc list` answer at once; the backend is loaded (quietly, see
`cli.backend`) just before a command that needs it runs. Every error a user can cause,
argparse's included, is one line on stderr and exit status 2. Ctrl-C and SIGTERM stop a
command with one line saying where (`keras_modern_cnn.signals`) and exit status 130 or 143; an
unexpected error is one line and exit status 1 (`--verbose` shows its traceback).
"""

import argparse
import sys

from keras_modern_cnn.cli import convert, data, evaluate, export, models, options, train, tune
from keras_modern_cnn.cli.backend import load_backend

SUBCOMMAND_MODULES = [models, train, evaluate, export, convert, tune, data]


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`kmc train: error: ...`), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser():
    parser = OneLineErrorParser(
        prog="kmc",
        description="keras-modern-cnn: build, train, tune and export the d2l 'Modern CNNs'.",
        epilog="Backend: set KERAS_BACKEND to tensorflow (the default), jax or torch.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMAND_MODULES:
        module.add_parser(subparsers)
    for subparser in subparsers.choices.values():
        options.add_verbose(subparser)
        if subparser.get_default("needs_backend") is None:
            subparser.set_defaults(needs_backend=True)
    return parser


def main(argv=None):
    """Entry point of the `kmc` console script; returns the process exit status."""
    from keras_modern_cnn.signals import Interrupted, stop_on_signals

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with stop_on_signals():
            if args.needs_backend:
                load_backend(args.verbose)
            return args.run(args) or 0
    except Interrupted as interruption:
        where = interruption.where or "before it finished (nothing was half-written)"
        print(f"kmc {args.command}: interrupted ({interruption.signal_name}) {where}",
              file=sys.stderr)
        return interruption.exit_status
    except (ValueError, OSError) as error:
        # Problems found past argparse (bad values, data, files): one clear line.
        print(f"kmc {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug or a library's failure: still one line, unless --verbose
        if args.verbose:
            raise
        from keras_modern_cnn.files import disk_full_error

        disk_full = disk_full_error(error)  # a library's own "No space left on device"
        if disk_full is not None:
            print(f"kmc {args.command}: error: {_one_line(disk_full)}", file=sys.stderr)
            return 2
        print(f"kmc {args.command}: unexpected error: {type(error).__name__}: {_one_line(error)} "
              f"(rerun with --verbose for the traceback)", file=sys.stderr)
        return 1


def _one_line(error):
    return " ".join(str(error).split())[:2000] or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
