"""`kmc tune FAMILY`: a KerasTuner search over a family's hypermodel, resumable and distributable.

Writes to OUTPUT_DIR/PROJECT_NAME: KerasTuner's trials and oracle, `executions.jsonl` (which
process ran which trial), `results.csv` (trial, status, score, hyperparameters; best first),
`trials.png` (score per trial, best so far) and `best_model.keras`; `--export DIR` also writes the best model as a SavedModel.
"""

import os

from keras_modern_cnn.choices import OPTIMIZERS
from keras_modern_cnn.cli import options
from keras_modern_cnn.cli.train import add_data_arguments
from keras_modern_cnn.registry import read_cards

DEFAULT_EPOCHS = 3  # per trial: a search runs many short trainings
# The train flags `kmc tune` takes as fixed values of the search dimension of the same name.
FIXED_DIMENSIONS = ("optimizer", "learning_rate", "width_ratio", "encoder")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tune", help="search a family's hyperparameters with KerasTuner",
        description="Search FAMILY's depth, width ratio, learning rate and optimizer (and its "
        "own dimensions) with KerasTuner. --optimizer, --learning-rate, --width-ratio and "
        "--encoder (unet) fix "
        "a dimension as in `kmc train`; --set fixes, narrows or lists any dimension. "
        "Rerunning the same command resumes the search; finished trials are not rerun. "
        "Distributed: start one `--distributed chief` and any number of `--distributed "
        "worker` with the same --oracle-address and output directory (or set "
        "KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT).",
    )
    parser.add_argument("family", choices=sorted({card["family"] for card in read_cards().values()}))
    data = add_data_arguments(
        parser, "side of the square model input (default: the family's d2l size, e.g. 28 for "
        "lenet, 96 for resnet)",
    )
    options.add_batch_size(data)
    trial = parser.add_argument_group("every trial (as `kmc train`; fixed in the search)")
    options.add_epochs(trial, "epochs per trial (hyperband: the most epochs); default 3")
    trial.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                       help="fix the optimizer (default: searched)")
    options.add_learning_rate(trial, "fix the learning rate (default: searched, log scale)")
    options.add_width_ratio(trial, "fix the width ratio (default: searched)")
    options.add_encoder(trial, "unet: fix the encoder, classic or a registered classifier "
                        "(default: searched)")
    trial.add_argument("--seed", type=int, default=0)
    options.add_precise_bn(trial)
    search = parser.add_argument_group("search")
    search.add_argument("--tuner", default="random", help="random, bayesian or hyperband")
    search.add_argument(
        "--max-trials", type=int, default=None,
        help="trials of random/bayesian searches (default 10; hyperband sets its own)",
    )
    search.add_argument("--objective", default="val_accuracy")
    search.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="fix or narrow a dimension: depth=18 (fixed), optimizer=adam,sgd "
        "(choice), learning_rate=1e-4:1e-2 (range); repeatable",
    )
    options.add_output_dir(search, "where the searches live (default runs/tune)",
                           default="runs/tune", old_spellings=("--directory",))
    search.add_argument("--project-name", default=None,
                        help="the search's folder in the output directory (default: FAMILY)")
    options.add_overwrite(search, "start over instead of resuming")
    search.add_argument("--max-consecutive-failed-trials", type=int, default=3)
    search.add_argument(
        "--max-model-size", type=int, default=None, help="fail larger models (parameters)"
    )
    search.add_argument(
        "--export", default=None, metavar="DIR",
        help="also export the best model (SavedModel); an existing export is replaced only "
        "with --overwrite",
    )
    options.add_quiet(search, "no KerasTuner or Keras progress: print only the best trial")
    distributed = parser.add_argument_group("distributed")
    distributed.add_argument("--distributed", default=None, metavar="ROLE", help="chief or worker")
    distributed.add_argument(
        "--oracle-address", default="127.0.0.1:8000", metavar="HOST:PORT",
        help="where the chief serves the oracle (gRPC)",
    )
    distributed.add_argument(
        "--tuner-id", default=None, help="a worker's unique id (default: worker-HOST-PID)"
    )
    parser.set_defaults(run=run)


def search_space(args):
    """The `--set` overrides with the fixed train flags; a dimension given twice is an error."""
    overrides = dict(parse_override(text) for text in args.overrides)
    for name in FIXED_DIMENSIONS:
        value = getattr(args, name)
        if value is None:
            continue
        if name in overrides:
            raise ValueError(
                f"`{name}` is given twice: --{name.replace('_', '-')} fixes it, --set "
                f"{name}=... sets it; keep one. Received: {name}={value!r}"
            )
        overrides[name] = value
    return overrides


def parse_override(text):
    """`NAME=VALUE` -> (name, value): `a,b` is a list (choice), `low:high` a tuple (range)."""
    name, separator, value = text.partition("=")
    if not separator or not name or not value:
        raise ValueError(f"`--set` takes NAME=VALUE. Received: --set={text!r}")
    if ":" in value:
        return name, tuple(_scalar(part) for part in value.split(":"))
    if "," in value:
        return name, [_scalar(part) for part in value.split(",")]
    return name, _scalar(value)


def _scalar(text):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(args):
    from keras_modern_cnn.config import resolve_config
    from keras_modern_cnn.registry import list_models
    from keras_modern_cnn.tuning import HYPERMODELS, TRIALS_PLOT_FILE, configure_distribution, tune

    hypermodel_class = HYPERMODELS[args.family]
    overrides = search_space(args)
    # The search's data and per-trial settings, resolved and validated as a run's are; the
    # family's first registered model stands for the family (its task, its run settings).
    config = resolve_config(
        list_models(family=args.family)[0], dataset=args.dataset, data_dir=args.data_dir,
        download=args.download, train_examples=args.train_examples,
        test_examples=args.test_examples, normalization=args.normalization,
        skip_unreadable=args.skip_unreadable, batch_size=args.batch_size,
        epochs=DEFAULT_EPOCHS if args.epochs is None else args.epochs,
        seed=args.seed, precise_bn=args.precise_bn,
        image_size=hypermodel_class.default_input_size if args.image_size is None else args.image_size,
    )
    if args.export:  # checked before the search: refused after hours of trials helps no one
        from keras_modern_cnn.export import check_export_target
        from keras_modern_cnn.validation import check_output_path

        check_export_target(check_output_path("export", args.export), directory=True,
                            overwrite=args.overwrite, argument="export")
    if args.distributed is not None:
        configure_distribution(args.distributed, args.oracle_address, args.tuner_id)
    import keras

    keras.utils.set_random_seed(config.seed)
    tuner, results_path, model_path = tune(
        hypermodel_class, config, tuner=args.tuner, objective=args.objective,
        max_trials=args.max_trials, directory=args.output_dir,
        project_name=args.family if args.project_name is None else args.project_name,
        overwrite=args.overwrite,
        overrides=overrides, max_consecutive_failed_trials=args.max_consecutive_failed_trials,
        max_model_size=args.max_model_size, verbose=options.fit_verbosity(args.quiet),
        log=(lambda line: None) if args.quiet else (lambda line: print(f"note: {line}")),
    )
    if tuner.is_worker:
        print(f"worker {tuner.tuner_id}: no trials left")
        return 0
    if model_path is None:
        print(f"no trial completed; see {results_path}")
        return 1
    print("best hyperparameters:")
    for name, value in sorted(tuner.get_best_hyperparameters(1)[0].values.items()):
        print(f"  {name}: {value}")
    print(f"results: {results_path}")
    print(f"trials plot: {os.path.join(os.path.dirname(results_path), TRIALS_PLOT_FILE)}")
    print(f"best model: {model_path}")
    if args.export:
        from keras_modern_cnn.export import export
        from keras_modern_cnn.saving import load_model

        path = export(load_model(model_path), args.export, format="saved_model",
                      overwrite=args.overwrite, source=model_path)
        print(f"exported saved_model: {path}")
    return 0
