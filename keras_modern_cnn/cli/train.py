"""`kmc train MODEL` and `kmc compare MODEL...`: train registered models, evaluate, save."""

import os

from keras_modern_cnn.data.pipeline import NORMALIZATIONS
from keras_modern_cnn.recipes import RECIPES
from keras_modern_cnn.training import JIT_COMPILE, OPTIMIZERS, STRATEGIES


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a registered model, evaluate it and save it",
        description="Train MODEL; writes history.csv, curves.png, logs/ (TensorBoard), "
        "metrics.json and model.keras to --output-dir. Rerunning the same command after an "
        "interruption resumes from the last finished epoch.",
    )
    parser.add_argument("model", help="registered name (see `kmc list`)")
    add_training_arguments(parser)
    parser.add_argument("--output-dir", default="runs/demo")
    parser.set_defaults(run=run)

    compare = subparsers.add_parser(
        "compare", help="train several models and write a results table and curves",
        description="Train each MODEL into OUTPUT_DIR/MODEL, then write OUTPUT_DIR/results.md "
        "(model, params, test accuracy, examples/sec, epochs) and OUTPUT_DIR/curves.png.",
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
        "--no-download", dest="download", action="store_false",
        help="never download: use only data already prepared in the data directory",
    )
    data.add_argument("--image-size", type=int, default=None, help=image_size_help)
    data.add_argument("--train-examples", type=int, default=None, help="use the first N training examples")
    data.add_argument("--test-examples", type=int, default=None, help="use the first N test examples")
    data.add_argument("--normalization", choices=NORMALIZATIONS, default="scale")
    return data


def add_training_arguments(parser):
    data = add_data_arguments(parser)
    data.add_argument("--augment", action="store_true", help="random flip and crop (training only)")
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
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--mixed-precision", action="store_true", help="mixed_float16 dtype policy")
    fit.add_argument("--jit-compile", choices=JIT_COMPILE, default="auto", help="XLA compilation")
    fit.add_argument("--strategy", choices=STRATEGIES, default="none", help="distribution strategy")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")


def training_kwargs(args):
    return dict(
        dataset=args.dataset, recipe=args.recipe, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
        image_size=args.image_size, width_ratio=args.width_ratio, data_dir=args.data_dir,
        download=args.download, train_examples=args.train_examples,
        test_examples=args.test_examples, normalization=args.normalization,
        augment=args.augment, seed=args.seed, mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile, strategy=args.strategy,
        verbose=0 if args.quiet else "auto",
    )


def run(args):
    from keras_modern_cnn.training import train

    metrics = train(args.model, output_dir=args.output_dir, **training_kwargs(args))
    print(f"test accuracy: {metrics['test_accuracy']:.3f}")
    print(f"examples/sec: {metrics['examples_per_second']:.0f}")
    print(f"saved model: {metrics['model_path']}")
    print(f"curves: {metrics['curves_path']}  history: {metrics['history_path']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(args.output_dir, 'logs')}")


def results_table(all_metrics):
    """Markdown table: model, params, test accuracy, examples/sec, epochs."""
    lines = [
        "| model | params | test accuracy | examples/sec | epochs |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in all_metrics:
        lines.append(
            f"| `{m['model']}` | {m['parameters']:,} | {m['test_accuracy']:.3f} | "
            f"{m['examples_per_second']:.0f} | {m['epochs']} |"
        )
    return "\n".join(lines) + "\n"


def run_compare(args):
    import keras

    from keras_modern_cnn.registry import get_spec
    from keras_modern_cnn.training import plot_curves, read_history, train

    names = [get_spec(name).name for name in args.models]  # unknown names fail before training
    kwargs = training_kwargs(args)
    all_metrics = []
    for name in names:
        print(f"== {name}", flush=True)
        all_metrics.append(train(name, output_dir=os.path.join(args.output_dir, name), **kwargs))
        keras.backend.clear_session()
    table = results_table(all_metrics)
    with open(os.path.join(args.output_dir, "results.md"), "w") as handle:
        handle.write(table)
    curves = plot_curves(
        {m["model"]: read_history(m["history_path"]) for m in all_metrics},
        os.path.join(args.output_dir, "curves.png"),
    )
    print(table)
    print(f"results: {os.path.join(args.output_dir, 'results.md')}  curves: {curves}")
