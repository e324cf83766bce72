"""`kmc train MODEL` and `kmc compare MODEL...`: parse, resolve one `RunConfig`, run the stages."""

import argparse
import csv
import io
import os

from keras_modern_cnn.choices import JIT_COMPILE, NORMALIZATIONS, OPTIMIZERS, STRATEGIES
from keras_modern_cnn.cli import options
from keras_modern_cnn.recipes import FAMILY_DEFAULTS, RECIPES


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a registered model, evaluate it and save it",
        description="Train MODEL into --output-dir (default runs/MODEL): run.json, history.csv, "
        "curves.png, logs/ (TensorBoard), metrics.json and model.keras. Rerunning the same "
        "command on an unfinished run resumes it; a finished run or one with other settings "
        "is never replaced without --overwrite; --resume with more --epochs trains a "
        "finished run on.",
        epilog=FAMILY_DEFAULTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="registered name (see `kmc list`)")
    add_training_arguments(parser, output_dir_help="default: runs/MODEL")
    parser.set_defaults(run=run)

    compare = subparsers.add_parser(
        "compare", help="train several models and write a results table and curves",
        description="Train each MODEL into OUTPUT_DIR/MODEL (the rules of `kmc train`), then "
        "write OUTPUT_DIR/results.md and results.csv (model, params, test accuracy, "
        "examples/sec, epochs), OUTPUT_DIR/curves.png and OUTPUT_DIR/comparison.png (test "
        "accuracy and examples/sec per model).",
        epilog=FAMILY_DEFAULTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("models", nargs="+", metavar="MODEL")
    add_training_arguments(compare, output_dir_help="default: runs/compare",
                           output_dir_default="runs/compare")
    compare.set_defaults(run=run_compare)


FAMILY_DEFAULTS_EPILOG = "default optimizer and learning rate per family (`kmc info MODEL`):\n" + \
    "\n".join(f"  {family:<10} {optimizer} {rate:g}" for family, (optimizer, rate) in FAMILY_DEFAULTS.items())


def add_data_arguments(parser, image_size_help=options.IMAGE_SIZE_HELP):
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
    options.add_image_size(data, image_size_help)
    data.add_argument("--train-examples", type=int, default=None, help="use the first N training examples")
    data.add_argument("--test-examples", type=int, default=None, help="use the first N test examples")
    data.add_argument("--normalization", choices=NORMALIZATIONS, default=None,
                      help="default scale; none (raw pixels) with pretrained --weights")
    data.add_argument(
        "--skip-unreadable", action="store_true", default=None,
        help="skip image files that cannot be decoded (counted) instead of stopping",
    )
    return data


def add_training_arguments(parser, *, output_dir_help, output_dir_default=None):
    data = add_data_arguments(parser)
    data.add_argument("--augment", action="store_true", default=None,
                      help="random flip and crop (training only)")
    fit = parser.add_argument_group("training")
    fit.add_argument(
        "--recipe", choices=RECIPES, default=None,
        help="the seeds' settings per model (input size, lr, batch size, 10 epochs, SGD, "
        "Fashion-MNIST); explicit flags still win",
    )
    options.add_epochs(fit)
    options.add_batch_size(fit)
    fit.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                     help="default: the family's (below)")
    options.add_learning_rate(
        fit, "default: the family's with its optimizer (below), else Keras's for the optimizer"
    )
    options.add_width_ratio(fit)
    options.add_encoder(
        fit, "segmentation models: a registered classifier as the encoder (resnet18, vgg11, "
        "densenet121, ...; a wrong name lists them); the input side must be a multiple of 32",
    )
    fit.add_argument(
        "--weights", default=None, metavar="PRESET|FILE",
        help="fine-tune from pretrained weights: a preset of the model (imagenet, "
        "IMAGENET1K_V2, ...: `kmc info MODEL`), a weights file (.pth, .safetensors, .keras, "
        ".weights.h5, ...) or hf://owner/repo; the head is replaced when the classes differ",
    )
    fit.add_argument(
        "--freeze-batch-norm", action=argparse.BooleanOptionalAction, default=None,
        help="with --weights: keep BatchNorm's pretrained statistics, gamma and beta "
        "(default: on with --weights)",
    )
    fit.add_argument("--seed", type=int, default=None, help="default 0")
    fit.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                     help="mixed float16/bfloat16 dtype policy (default: the device's, "
                     "printed at the start)")
    fit.add_argument("--jit-compile", choices=JIT_COMPILE, default=None,
                     help="XLA compilation (default auto: the device's, printed at the start)")
    fit.add_argument("--strategy", choices=STRATEGIES, default=None, help="distribution strategy (default none)")
    options.add_precise_bn(fit)
    options.add_quiet(fit)
    run_dir = parser.add_argument_group("run directory")
    options.add_output_dir(run_dir, output_dir_help, default=output_dir_default)
    options.add_overwrite(run_dir, "start over, replacing the run in the output directory")
    run_dir.add_argument("--resume", action="store_true",
                         help="train a finished run on to more --epochs")


def run_config(args, model, output_dir):
    """The `RunConfig` of the parsed flags: the CLI's only job before the stages."""
    from keras_modern_cnn.config import resolve_config

    return resolve_config(
        model, recipe=args.recipe, dataset=args.dataset, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.learning_rate,
        image_size=args.image_size, width_ratio=args.width_ratio, encoder=args.encoder,
        weights=args.weights, freeze_batch_norm=args.freeze_batch_norm, data_dir=args.data_dir,
        download=args.download, train_examples=args.train_examples,
        test_examples=args.test_examples, normalization=args.normalization,
        augment=args.augment, skip_unreadable=args.skip_unreadable, seed=args.seed,
        mixed_precision=args.mixed_precision, jit_compile=args.jit_compile,
        strategy=args.strategy, precise_bn=args.precise_bn, output_dir=output_dir,
    )


def _train(args, config):
    from keras_modern_cnn.training import train

    return train(config, overwrite=args.overwrite, resume=args.resume,
                 verbose=options.fit_verbosity(args.quiet),
                 log=(lambda line: None) if args.quiet else print)


def run(args):
    from keras_modern_cnn.training import SEGMENTATION_METRICS

    config = run_config(args, args.model, args.output_dir)
    metrics = _train(args, config)
    print(f"test accuracy: {metrics['test_accuracy']:.3f}")
    precise = metrics.get("precise_bn")
    if precise is not None and metrics.get("ema_test_accuracy") is not None:
        print(f"  BatchNorm statistics: precise, over {precise['batches']} training batches "
              f"({precise['seconds']:.1f} s in all); with the moving averages (EMA): "
              f"{metrics['ema_test_accuracy']:.3f}")
    for name in SEGMENTATION_METRICS:
        if f"test_{name}" in metrics:
            print(f"test {name.replace('_', ' ')}: {metrics[f'test_{name}']:.3f}")
    print(f"examples/sec: {_throughput(metrics)}")
    print(f"saved model: {metrics['model_path']}")
    print(f"curves: {metrics['curves_path']}  history: {metrics['history_path']}")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(config.output_dir, 'logs')}")


def _throughput(metrics):
    """Examples/sec, or "n/a" when this process trained no epoch (a run resumed to save)."""
    value = metrics["examples_per_second"]
    return "n/a" if value is None else f"{value:.0f}"


RESULT_COLUMNS = ("model", "parameters", "test_accuracy", "test_loss", "examples_per_second",
                  "epochs", "optimizer", "learning_rate", "batch_size", "image_size")


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


def results_csv(all_metrics):
    """CSV of every model's metrics and the settings that produced them (`RESULT_COLUMNS`)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(RESULT_COLUMNS)
    for metrics in all_metrics:
        writer.writerow(["" if metrics[key] is None else metrics[key] for key in RESULT_COLUMNS])
    return text.getvalue()


def run_compare(args):
    import keras

    from keras_modern_cnn import ownership
    from keras_modern_cnn.files import write_text
    from keras_modern_cnn.plots import compare_title, plot_comparison, plot_curves
    from keras_modern_cnn.registry import get_spec
    from keras_modern_cnn.rundir import read_history

    # Every configuration resolved (and so validated) before the first model trains.
    configs = [
        run_config(args, name, os.path.join(args.output_dir, get_spec(name).name))
        for name in args.models
    ]
    names = [config.model for config in configs]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise ValueError(f"`kmc compare` trains each model once; {duplicate} is named twice. "
                         f"Received: models={args.models!r}")
    summary = ("results.md", "results.csv", "curves.png", "comparison.png")
    _check_summary_folder(args.output_dir, summary)
    all_metrics = []
    for config in configs:
        if not args.quiet:
            print(f"== {config.model}", flush=True)
        all_metrics.append(_train(args, config))
        keras.backend.clear_session()
    title = compare_title(configs, all_metrics)
    ownership.record(args.output_dir, "compare", [*summary, *names])
    paths = {name: os.path.join(args.output_dir, name) for name in summary}
    table = results_table(all_metrics)
    write_text(paths["results.md"], table)
    write_text(paths["results.csv"], results_csv(all_metrics))
    plot_curves({m["model"]: read_history(m["history_path"]) for m in all_metrics},
                paths["curves.png"], title=title)
    plot_comparison(all_metrics, paths["comparison.png"], title=title)
    print(table)
    print("results: " + "  ".join(paths.values()))


def _check_summary_folder(output_dir, summary):
    """`kmc compare`'s folder: not another kind of kmc folder, and its summary files either
    absent or written by an earlier `kmc compare` (recorded): never a file of yours."""
    from keras_modern_cnn import ownership

    ownership.check_not_other_folder(output_dir, "output_dir", allowed=("compare",))
    manifest = ownership.read_manifest(output_dir) if os.path.isdir(output_dir) else None
    in_the_way = [name for name in summary if os.path.lexists(os.path.join(output_dir, name))
                  and (manifest is None or not manifest.records(name))]
    if in_the_way:
        raise ValueError(
            f"{output_dir} holds {', '.join(in_the_way)}, which kmc compare did not write and "
            f"would replace; move them away or choose another --output-dir. "
            f"Received: output_dir={output_dir!r}"
        )
