"""`kmc train MODEL` and `kmc compare MODEL...`: parse, resolve one `RunConfig`, run the stages."""

import os

from keras_modern_cnn.config import JIT_COMPILE, OPTIMIZERS, STRATEGIES
from keras_modern_cnn.data.pipeline import NORMALIZATIONS
from keras_modern_cnn.recipes import RECIPES


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a registered model, evaluate it and save it",
        description="Train MODEL into --output-dir (default runs/MODEL): run.json, history.csv, "
        "curves.png, logs/ (TensorBoard), metrics.json and model.keras. Rerunning the same "
        "command on an unfinished run resumes it; a finished run or one with other settings "
        "is never replaced without --overwrite; --resume with more --epochs trains a "
        "finished run on.",
    )
    parser.add_argument("model", help="registered name (see `kmc list`)")
    add_training_arguments(parser)
    parser.add_argument("--output-dir", default=None, help="default: runs/MODEL")
    parser.set_defaults(run=run)

    compare = subparsers.add_parser(
        "compare", help="train several models and write a results table and curves",
        description="Train each MODEL into OUTPUT_DIR/MODEL (the rules of `kmc train`), then "
        "write OUTPUT_DIR/results.md (model, params, test accuracy, examples/sec, epochs) and "
        "OUTPUT_DIR/curves.png.",
    )
    compare.add_argument("models", nargs="+", metavar="MODEL")
    add_training_arguments(compare)
    compare.add_argument("--output-dir", default="runs/compare")
    compare.set_defaults(run=run_compare)


def add_data_arguments(parser, image_size_help="input side (default: the model's)"):
    """The data options `kmc train`, `compare` and `tune` share; returns the argument group."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset", default=None,
        help="TFDS name (fashion_mnist, mnist, cifar10, ...), a .npz file, an image folder "
        "(one sub-folder per class), or 'shapes' (embedded, the default; no network)",
    )
    data.add_argument("--data-dir", default=None, help="TFDS data directory (or TFDS_DATA_DIR)")
    data.add_argument(
        "--no-download", dest="download", action="store_false", default=None,
        help="never download: use only data already prepared in the data directory",
    )
    data.add_argument("--image-size", type=int, default=None, help=image_size_help)
    data.add_argument("--train-examples", type=int, default=None, help="use the first N training examples")
    data.add_argument("--test-examples", type=int, default=None, help="use the first N test examples")
    data.add_argument("--normalization", choices=NORMALIZATIONS, default=None, help="default scale")
    data.add_argument(
        "--skip-unreadable", action="store_true", default=None,
        help="skip image files that cannot be decoded (counted) instead of stopping",
    )
    return data


def add_training_arguments(parser):
    data = add_data_arguments(parser)
    data.add_argument("--augment", action="store_true", default=None,
                      help="random flip and crop (training only)")
    fit = parser.add_argument_group("training")
    fit.add_argument(
        "--recipe", choices=RECIPES, default=None,
        help="the seeds' settings per model (input size, lr, batch size, 10 epochs, SGD, "
        "Fashion-MNIST); explicit flags still win",
    )
    fit.add_argument("--epochs", type=int, default=None, help="default 10")
    fit.add_argument("--batch-size", type=int, default=None, help="default 128")
    fit.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default sgd")
    fit.add_argument("--lr", type=float, default=None, help="learning rate (sgd default 1.0, d2l BN-LeNet)")
    fit.add_argument("--width-ratio", type=float, default=None, help="multiply every conv's channels")
    fit.add_argument("--seed", type=int, default=None, help="default 0")
    fit.add_argument("--mixed-precision", action="store_true", default=None,
                     help="mixed_float16 dtype policy")
    fit.add_argument("--jit-compile", choices=JIT_COMPILE, default=None, help="XLA compilation (default auto)")
    fit.add_argument("--strategy", choices=STRATEGIES, default=None, help="distribution strategy (default none)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    run_dir = parser.add_argument_group("run directory")
    run_dir.add_argument("--overwrite", action="store_true",
                         help="start over, replacing the run in the output directory")
    run_dir.add_argument("--resume", action="store_true",
                         help="train a finished run on to more --epochs")


def run_config(args, model, output_dir):
    """The `RunConfig` of the parsed flags: the CLI's only job before the stages."""
    from keras_modern_cnn.config import resolve_config

    return resolve_config(
        model, recipe=args.recipe, dataset=args.dataset, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
        image_size=args.image_size, width_ratio=args.width_ratio, data_dir=args.data_dir,
        download=args.download, train_examples=args.train_examples,
        test_examples=args.test_examples, normalization=args.normalization,
        augment=args.augment, skip_unreadable=args.skip_unreadable, seed=args.seed,
        mixed_precision=args.mixed_precision, jit_compile=args.jit_compile,
        strategy=args.strategy, output_dir=output_dir,
    )


def _train(args, config):
    from keras_modern_cnn.training import train

    return train(config, overwrite=args.overwrite, resume=args.resume,
                 verbose=0 if args.quiet else "auto")


def run(args):
    config = run_config(args, args.model, args.output_dir)
    metrics = _train(args, config)
    print(f"test accuracy: {metrics['test_accuracy']:.3f}")
    print(f"examples/sec: {_throughput(metrics)}")
    print(f"saved model: {metrics['model_path']}")
    print(f"curves: {metrics['curves_path']}  history: {metrics['history_path']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(config.output_dir, 'logs')}")


def _throughput(metrics):
    """Examples/sec, or "n/a" when this process trained no epoch (a run resumed to save)."""
    value = metrics["examples_per_second"]
    return "n/a" if value is None else f"{value:.0f}"


def results_table(all_metrics):
    """Markdown table: model, params, test accuracy, examples/sec, epochs."""
    lines = [
        "| model | params | test accuracy | examples/sec | epochs |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in all_metrics:
        lines.append(
            f"| `{m['model']}` | {m['parameters']:,} | {m['test_accuracy']:.3f} | "
            f"{_throughput(m)} | {m['epochs']} |"
        )
    return "\n".join(lines) + "\n"


def run_compare(args):
    import keras

    from keras_modern_cnn.registry import get_spec
    from keras_modern_cnn.rundir import write_text
    from keras_modern_cnn.training import plot_curves, read_history

    # Every configuration resolved (and so validated) before the first model trains.
    configs = [
        run_config(args, name, os.path.join(args.output_dir, get_spec(name).name))
        for name in args.models
    ]
    all_metrics = []
    for config in configs:
        print(f"== {config.model}", flush=True)
        all_metrics.append(_train(args, config))
        keras.backend.clear_session()
    table = results_table(all_metrics)
    write_text(os.path.join(args.output_dir, "results.md"), table)
    curves = plot_curves(
        {m["model"]: read_history(m["history_path"]) for m in all_metrics},
        os.path.join(args.output_dir, "curves.png"),
    )
    print(table)
    print(f"results: {os.path.join(args.output_dir, 'results.md')}  curves: {curves}")
