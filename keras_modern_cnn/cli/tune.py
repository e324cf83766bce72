"""`kmc tune FAMILY`: a KerasTuner search over a family's hypermodel, resumable and distributable.

Writes to DIRECTORY/PROJECT_NAME: KerasTuner's trials and oracle, `executions.jsonl` (which
process ran which trial), `results.csv` (trial, status, score, hyperparameters) and
`best_model.keras`; `--export DIR` also writes the best model as a SavedModel.
"""

import os
import socket

from keras_modern_cnn.cli.train import add_data_arguments

FAMILIES = ("lenet", "alexnet", "vgg", "nin", "googlenet", "resnet", "densenet", "unet")
TUNER_NAMES = ("random", "bayesian", "hyperband")
DISTRIBUTED_ROLES = ("chief", "worker")
RESULTS_FILE, BEST_MODEL_FILE = "results.csv", "best_model.keras"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "tune", help="search a family's hyperparameters with KerasTuner",
        description="Search FAMILY's depth, width ratio, learning rate and optimizer (and its "
        "own dimensions) with KerasTuner. Rerunning the same command resumes the search; "
        "finished trials are not rerun. Distributed: start one `--distributed chief` and any "
        "number of `--distributed worker` with the same --oracle-address and directory "
        "(or set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT).",
    )
    parser.add_argument("family", choices=FAMILIES)
    data = add_data_arguments(
        parser,
        image_size_help="input side (default: the family's d2l size, e.g. 28 for lenet, 96 for resnet)",
    )
    data.add_argument("--batch-size", type=int, default=128)
    search = parser.add_argument_group("search")
    search.add_argument("--tuner", choices=TUNER_NAMES, default="random")
    search.add_argument(
        "--max-trials", type=int, default=None,
        help="trials of random/bayesian searches (default 10; hyperband sets its own)",
    )
    search.add_argument(
        "--epochs", type=int, default=3, help="epochs per trial (hyperband: the most epochs)"
    )
    search.add_argument("--objective", default="val_accuracy")
    search.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="fix or narrow a dimension: width_ratio=0.5 (fixed), optimizer=adam,sgd "
        "(choice), learning_rate=1e-4:1e-2 (range); repeatable",
    )
    search.add_argument("--directory", default="runs/tune")
    search.add_argument("--project-name", default=None, help="default: FAMILY")
    search.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--max-consecutive-failed-trials", type=int, default=3)
    search.add_argument(
        "--max-model-size", type=int, default=None, help="fail larger models (parameters)"
    )
    search.add_argument(
        "--export", default=None, metavar="DIR", help="also export the best model (SavedModel)"
    )
    search.add_argument("--quiet", action="store_true", help="no KerasTuner or Keras progress")
    distributed = parser.add_argument_group("distributed")
    distributed.add_argument("--distributed", choices=DISTRIBUTED_ROLES, default=None)
    distributed.add_argument(
        "--oracle-address", default="127.0.0.1:8000", metavar="HOST:PORT",
        help="where the chief serves the oracle (gRPC)",
    )
    distributed.add_argument(
        "--tuner-id", default=None, help="a worker's unique id (default: worker-HOST-PID)"
    )
    parser.set_defaults(run=run)


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


def _configure_distribution(args):
    """Set KerasTuner's environment variables for `--distributed chief|worker`."""
    if args.distributed is None:
        return
    host, _, port = args.oracle_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            "`--oracle-address` must be HOST:PORT. "
            f"Received: --oracle-address={args.oracle_address!r}"
        )
    if args.distributed == "chief":
        tuner_id = "chief"
    else:
        tuner_id = args.tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        if "chief" in tuner_id:  # KerasTuner takes any id containing "chief" for the chief
            raise ValueError(
                f"A worker's id must not contain 'chief'. Received: --tuner-id={tuner_id!r}"
            )
    os.environ.update(
        KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=port
    )


def run(args):
    import keras

    from keras_modern_cnn.data import load_data, make_pipeline
    from keras_modern_cnn.export import export
    from keras_modern_cnn.rundir import check_writable
    from keras_modern_cnn.tuning import HYPERMODELS, make_tuner, write_results
    from keras_modern_cnn.validation import check_positive_int

    check_writable("directory", args.directory)
    overrides = dict(parse_override(text) for text in args.overrides)
    hypermodel_class = HYPERMODELS[args.family]
    image_size = check_positive_int(
        "image_size",
        hypermodel_class.default_input_size if args.image_size is None else args.image_size,
    )
    epochs = check_positive_int("epochs", args.epochs)
    batch_size = check_positive_int("batch_size", args.batch_size)
    if args.tuner == "hyperband" and args.max_trials is not None:
        raise ValueError(
            "Hyperband sets its own number of trials from --epochs; leave out --max-trials. "
            f"Received: max_trials={args.max_trials}"
        )
    _configure_distribution(args)
    keras.utils.set_random_seed(args.seed)

    task = "segmentation" if args.family == "unet" else "classification"
    data = load_data(
        args.dataset, task=task, data_dir=args.data_dir, download=args.download is not False,
        image_size=image_size, train_examples=args.train_examples,
        test_examples=args.test_examples, seed=args.seed,
        skip_unreadable=bool(args.skip_unreadable),
    )
    shape = (image_size, image_size, data.channels)
    if keras.config.image_data_format() == "channels_first":
        shape = (data.channels, image_size, image_size)
    hypermodel = hypermodel_class(input_shape=shape, classes=data.num_classes, **overrides)
    tuner = make_tuner(
        hypermodel, args.tuner, objective=args.objective,
        max_trials=None if args.tuner == "hyperband" else 10 if args.max_trials is None else args.max_trials,
        max_epochs=epochs if args.tuner == "hyperband" else None,
        directory=args.directory, project_name=args.project_name or args.family,
        overwrite=args.overwrite, seed=args.seed,
        max_consecutive_failed_trials=args.max_consecutive_failed_trials,
        max_model_size=args.max_model_size,
    )
    pipelines = {
        split: make_pipeline(
            getattr(data, split), image_size=image_size, batch_size=batch_size,
            training=split == "train", task=data.task,
            normalization=args.normalization or "scale",
            seed=args.seed, shuffle_buffer=min(data.num_train, 50000),
        )
        for split in ("train", "test")
    }
    verbose = 0 if args.quiet else 1
    tuner.search(
        pipelines["train"], validation_data=pipelines["test"], epochs=epochs, verbose=verbose
    )
    if tuner.is_worker:
        print(f"worker {tuner.tuner_id}: no trials left")
        return 0

    project_dir = tuner.project_dir
    results_path = write_results(tuner, os.path.join(project_dir, RESULTS_FILE))
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    if not completed:
        print(f"no trial completed; see {results_path}")
        return 1
    best_hp = tuner.get_best_hyperparameters(1)[0]
    print("best hyperparameters:")
    for name, value in sorted(best_hp.values.items()):
        print(f"  {name}: {value}")
    model = tuner.get_best_models(1)[0]
    model_path = os.path.join(project_dir, BEST_MODEL_FILE)
    model.save(model_path)
    print(f"results: {results_path}")
    print(f"best model: {model_path}")
    if args.export:
        path = export(model, args.export, format="saved_model", overwrite=True)
        print(f"exported saved_model: {path}")
    return 0
