"""Searches over the hypermodels with KerasTuner's own tuners, resumable and distributable.

`make_tuner` pairs KerasTuner's random-search, Bayesian-optimization or Hyperband oracle with
a KerasTuner tuner (as `keras_tuner.RandomSearch` & co. do), adding three things:

- The oracle, trial and tuner state files are written atomically (temporary file, then
  rename): KerasTuner writes them in place, so a `kill -9` during a write left an empty
  `oracle.json` and a search that could not resume.
- Resuming a search whose hypermodel's search space has changed raises
  `SearchSpaceChangedError` naming every added, removed or changed dimension (KerasTuner
  itself reloads the saved space and silently ignores the new one).
- Every process appends one line per trial it ran to `executions.jsonl` in the project
  directory (trial id, tuner id, process id, status), which shows what ran where in a
  distributed search (KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT).

Reference: KerasTuner, https://keras.io/keras_tuner/ ("Distributed hyperparameter tuning").
"""

import csv
import io
import json
import os
import socket

import keras_tuner
from keras_modern_cnn.tuning._compat import (
    AtomicOracleState,
    TolerantInitialSpace,
    is_worker,
    tuner_state_path,
)
from keras_tuner.errors import FailedTrialError

from keras_modern_cnn import plots
from keras_modern_cnn.files import write_text
from keras_modern_cnn.rundir import check_writable
from keras_modern_cnn.saving import save_model
from keras_modern_cnn.validation import check_bool, check_choice, check_positive_int

__all__ = [
    "TUNERS",
    "Tuner",
    "Hyperband",
    "SearchSpaceChangedError",
    "make_tuner",
    "search_space_changes",
    "write_results",
    "plot_trials",
    "tune",
    "configure_distribution",
    "EXECUTIONS_FILE",
    "RESULTS_FILE",
    "BEST_MODEL_FILE",
    "TRIALS_PLOT_FILE",
    "DISTRIBUTED_ROLES",
]

EXECUTIONS_FILE, RESULTS_FILE, BEST_MODEL_FILE = "executions.jsonl", "results.csv", "best_model.keras"
TRIALS_PLOT_FILE = "trials.png"
DISTRIBUTED_ROLES = ("chief", "worker")


class SearchSpaceChangedError(ValueError):
    """The hypermodel of a resumed search declares a different search space."""


class _ResumableSearch(TolerantInitialSpace):
    """Mixed into a KerasTuner tuner: atomic state, space check on reload, execution log."""

    def reload(self):
        given = self.oracle.hyperparameters.copy()  # the tuner's `hyperparameters` argument
        super().reload()
        if self.is_worker or self.hypermodel is None:
            return
        fresh = _fresh_space(self.hypermodel, given)
        changes = search_space_changes(self.oracle.hyperparameters, fresh)
        if changes:
            raise SearchSpaceChangedError(
                f"The search space changed since the search in {self.project_dir} started: "
                f"{'; '.join(changes)}. Resume with the same search space, or start a new "
                f"search (another project name, or overwrite=True / --overwrite)."
            )

    def save(self):
        if not self.is_worker:
            self.oracle.save()
        write_text(tuner_state_path(self), json.dumps(self.get_state()))

    @property
    def is_worker(self):
        """True in a worker of a distributed search (the chief holds the oracle and results)."""
        return is_worker(self)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        record = {
            "trial_id": trial.trial_id,
            "tuner_id": self.tuner_id,
            "pid": os.getpid(),
            "status": str(trial.status),
        }
        # One short line per write: appends from several processes do not interleave.
        with open(os.path.join(self.project_dir, EXECUTIONS_FILE), "a") as handle:
            handle.write(json.dumps(record) + "\n")


class Tuner(_ResumableSearch, keras_tuner.Tuner):
    """`keras_tuner.Tuner` with the additions; with a random or Bayesian oracle (as KerasTuner)."""


class Hyperband(_ResumableSearch, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` taking its (atomic) oracle, plus the space check and the log."""

    def __init__(self, oracle, hypermodel=None, **kwargs):
        # keras_tuner.Hyperband.__init__ only builds its own oracle; skip to Tuner's.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


class RandomSearchOracle(AtomicOracleState, keras_tuner.oracles.RandomSearchOracle):
    """`keras_tuner.oracles.RandomSearchOracle` with atomic state files."""


class BayesianOptimizationOracle(AtomicOracleState, keras_tuner.oracles.BayesianOptimizationOracle):
    """`keras_tuner.oracles.BayesianOptimizationOracle` with atomic state files."""


class HyperbandOracle(AtomicOracleState, keras_tuner.oracles.HyperbandOracle):
    """`keras_tuner.oracles.HyperbandOracle` with atomic state files."""


TUNERS = {
    "random": (RandomSearchOracle, Tuner),
    "bayesian": (BayesianOptimizationOracle, Tuner),
    "hyperband": (HyperbandOracle, Hyperband),
}


def _fresh_space(hypermodel, given):
    """The space a new search would start from: `given`, then what the hypermodel declares."""
    space = given.copy()
    hypermodel.declare_hyperparameters(space)
    try:
        hypermodel.build(space)  # entries a subclass registers only while building
    except FailedTrialError:
        pass  # an invalid default configuration: the declared space is what counts
    return space


def _describe(hp):
    config = hp.get_config()
    details = ", ".join(
        f"{key}={value!r}"
        for key, value in sorted(config.items())
        if key not in ("name", "conditions")
    )
    return f"{type(hp).__name__}({details})"


def search_space_changes(saved, fresh):
    """Differences between two `HyperParameters` spaces, one readable line per dimension."""
    before = {hp.name: _describe(hp) for hp in saved.space if not hp.name.startswith("tuner/")}
    after = {hp.name: _describe(hp) for hp in fresh.space if not hp.name.startswith("tuner/")}
    changes = [f"added {name} {after[name]}" for name in after if name not in before]
    changes += [f"removed {name} {before[name]}" for name in before if name not in after]
    changes += [
        f"changed {name} from {before[name]} to {after[name]}"
        for name in before
        if name in after and before[name] != after[name]
    ]
    return changes


def make_tuner(
    hypermodel,
    tuner="random",
    *,
    objective="val_accuracy",
    max_trials=10,
    max_epochs=None,
    directory="runs/tune",
    project_name="search",
    overwrite=False,
    hyperparameters=None,
    seed=None,
    max_consecutive_failed_trials=3,
    max_model_size=None,
    oracle_kwargs=None,
    **tuner_kwargs,
):
    """A KerasTuner tuner over `hypermodel`, resuming any search already in the project.

    Args:
        hypermodel: a `keras_tuner.HyperModel`, e.g. `HyperResNet(input_shape=..., classes=...)`.
        tuner: "random", "bayesian" or "hyperband".
        objective: the metric to optimise (direction inferred by KerasTuner).
        max_trials: trials of random and Bayesian searches (Hyperband sets its own).
        max_epochs: Hyperband's most epochs for one model (required for "hyperband").
        directory, project_name: the search lives in `directory/project_name`; rerunning
            resumes it (finished trials are not rerun) unless `overwrite`.
        hyperparameters: a `keras_tuner.HyperParameters` of overrides (e.g. `hp.Fixed`).
        seed: seed of the oracle.
        max_consecutive_failed_trials: stop the search after this many failed trials in a row.
        max_model_size: fail trials whose model has more trainable parameters.
        oracle_kwargs: more arguments of the KerasTuner oracle (e.g. Hyperband's `factor`).
        **tuner_kwargs: passed to the KerasTuner tuner (e.g. `executions_per_trial`).
    """
    check_choice("tuner", tuner, tuple(TUNERS))
    if oracle_kwargs is not None and not isinstance(oracle_kwargs, dict):
        raise ValueError(f"`oracle_kwargs` must be a dict. Received: oracle_kwargs={oracle_kwargs!r}")
    check_bool("overwrite", overwrite)
    check_positive_int("max_consecutive_failed_trials", max_consecutive_failed_trials)
    if max_model_size is not None:
        check_positive_int("max_model_size", max_model_size)
    for name, value in (("directory", directory), ("project_name", project_name)):
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ValueError(f"`{name}` must be a non-empty path. Received: {name}={value!r}")
    oracle_options = dict(
        objective=objective, hyperparameters=hyperparameters, seed=seed,
        max_consecutive_failed_trials=max_consecutive_failed_trials, **(oracle_kwargs or {}),
    )
    if tuner == "hyperband":
        if max_epochs is None:
            raise ValueError("The hyperband tuner needs `max_epochs`. Received: max_epochs=None")
        oracle_options["max_epochs"] = check_positive_int("max_epochs", max_epochs, minimum=2)
    else:
        oracle_options["max_trials"] = check_positive_int("max_trials", max_trials)
        if max_epochs is not None:
            raise ValueError(
                f"`max_epochs` is for tuner='hyperband' only; pass `epochs` to `search`. "
                f"Received: max_epochs={max_epochs!r}"
            )
    oracle_class, tuner_class = TUNERS[tuner]
    return tuner_class(
        oracle=oracle_class(**oracle_options), hypermodel=hypermodel,
        max_model_size=max_model_size, directory=os.fspath(directory),
        project_name=os.fspath(project_name), overwrite=overwrite, **tuner_kwargs,
    )


def write_results(tuner, path):
    """Write `path` (CSV, atomically): trial, status, score, one column per hyperparameter;
    best score first, trials without a score (failed, running) last by trial id."""
    trials = sorted(tuner.oracle.trials.values(), key=lambda trial: int(trial.trial_id))
    maximize = tuner.oracle.objective.direction == "max"
    scored = sorted((t for t in trials if t.score is not None), key=lambda t: t.score,
                    reverse=maximize)
    names = list(dict.fromkeys(name for trial in trials for name in trial.hyperparameters.values))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["trial", "status", "score", *names])
    for trial in scored + [t for t in trials if t.score is None]:
        values = trial.hyperparameters.values
        writer.writerow(
            [trial.trial_id, trial.status, "" if trial.score is None else trial.score]
            + [values.get(name, "") for name in names]
        )
    return write_text(path, text.getvalue())


def plot_trials(tuner, path):
    """Score of each trial in the order they ran, and the best score so far (`trials.png`)."""
    trials = [(int(trial.trial_id), trial.score) for trial in tuner.oracle.trials.values()]
    return plots.plot_trials(
        trials, tuner.oracle.objective.name, tuner.oracle.objective.direction == "max", path,
        title=tuner.project_name,
    )


def configure_distribution(role, oracle_address, tuner_id=None):
    """Set KerasTuner's environment variables for a distributed search (`role` chief/worker)."""
    check_choice("distributed", role, DISTRIBUTED_ROLES)
    host, _, port = oracle_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"`--oracle-address` must be HOST:PORT. Received: --oracle-address={oracle_address!r}"
        )
    if role == "chief":
        tuner_id = "chief"
    else:
        tuner_id = tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        if "chief" in tuner_id:  # KerasTuner takes any id containing "chief" for the chief
            raise ValueError(
                f"A worker's id must not contain 'chief'. Received: --tuner-id={tuner_id!r}"
            )
    os.environ.update(
        KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=port
    )


def tune(
    hypermodel_class,
    config,
    *,
    tuner="random",
    objective="val_accuracy",
    max_trials=None,
    directory="runs/tune",
    project_name="search",
    overwrite=False,
    overrides=None,
    max_consecutive_failed_trials=3,
    max_model_size=None,
    verbose=1,
):
    """Search `hypermodel_class`'s space on the data and settings of `config`, on the stages
    of `keras_modern_cnn.training` (`prepare_data`, `make_pipelines`).

    `config` is a `RunConfig`: its dataset, image size, batch size, normalisation, seed,
    epochs (per trial; Hyperband's most epochs) and precise BatchNorm statistics (trials are
    scored with them, `HyperCNN(precise_bn=...)`) are the search's. Returns `(tuner, results
    path, best model path)`; the paths are None in a worker or when no trial completed.
    """
    from keras_modern_cnn.training import input_shape, make_pipelines, prepare_data

    if tuner == "hyperband" and max_trials is not None:
        raise ValueError(
            "Hyperband sets its own number of trials from the epochs; leave out max_trials. "
            f"Received: max_trials={max_trials}"
        )
    check_writable("directory", os.fspath(directory))
    data = prepare_data(config)
    hypermodel = hypermodel_class(
        input_shape=input_shape(config.image_size, data.channels), classes=data.num_classes,
        precise_bn=config.precise_bn, **(overrides or {}),
    )
    search = make_tuner(
        hypermodel, tuner, objective=objective,
        max_trials=None if tuner == "hyperband" else 10 if max_trials is None else max_trials,
        max_epochs=config.epochs if tuner == "hyperband" else None,
        directory=directory, project_name=project_name, overwrite=overwrite, seed=config.seed,
        max_consecutive_failed_trials=max_consecutive_failed_trials,
        max_model_size=max_model_size,
    )
    pipelines = make_pipelines(config, data)
    search.search(
        pipelines["train"], validation_data=pipelines["test"], epochs=config.epochs,
        verbose=verbose, shuffle=False,  # the pipeline shuffles (Keras warns otherwise)
    )
    if search.is_worker:
        return search, None, None
    results_path = write_results(search, os.path.join(search.project_dir, RESULTS_FILE))
    plot_trials(search, os.path.join(search.project_dir, TRIALS_PLOT_FILE))
    if not any(t.status == "COMPLETED" for t in search.oracle.trials.values()):
        return search, results_path, None
    model = search.get_best_models(1)[0]
    model_path = save_model(model, os.path.join(search.project_dir, BEST_MODEL_FILE))
    return search, results_path, model_path
