"""Searches over the hypermodels with KerasTuner's own tuners, resumable and distributable.

`make_tuner` pairs KerasTuner's random-search, Bayesian-optimization or Hyperband oracle with
a KerasTuner tuner (as `keras_tuner.RandomSearch` & co. do), adding these things:

- The oracle, trial and tuner state files are written atomically (temporary file, then
  rename): KerasTuner writes them in place, so a `kill -9` during a write left an empty
  `oracle.json` and a search that could not resume.
- Resuming a search whose hypermodel's search space has changed raises
  `SearchSpaceChangedError` naming every added, removed or changed dimension (KerasTuner
  itself reloads the saved space and silently ignores the new one).
- Every process appends one line per trial it ran to `executions.jsonl` in the project
  directory (trial id, tuner id, process id, status), which shows what ran where in a
  distributed search (KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT).
- The project directory is kmc's (`keras_modern_cnn.ownership`): its name is one plain folder
  name (never `.`, `..` or a path), `overwrite` deletes only what a search recorded there (a
  folder holding anything else is refused, naming it; KerasTuner's own overwrite removes the
  whole folder), and a search holds the project's lock while it runs (only the chief of a
  distributed search: the workers share its folder).
- The saved state is validated before KerasTuner reloads it (`_compat.check_state_files`);
  Ctrl-C, SIGTERM and a full disk stop the search with the trial left running, so a resumed
  search runs it again (`_compat.StopCleanly`), never a trial marked failed forever.

Reference: KerasTuner, https://keras.io/keras_tuner/ ("Distributed hyperparameter tuning").
"""

import contextlib
import csv
import io
import json
import os
import socket

import keras_tuner
from keras_modern_cnn.tuning._compat import (
    AtomicOracleState,
    StopCleanly,
    TolerantInitialSpace,
    check_state_files,
    checkpoint_path,
    is_worker,
    is_worker_process,
    tuner_state_path,
)
from keras_tuner.errors import FailedTrialError

from keras_modern_cnn import ownership, plots
from keras_modern_cnn.callbacks import BlockMidEpoch, CheckSpaceBeforeSaving
from keras_modern_cnn.files import BLOCK_AT_VARIABLE, append_line, temporary_path, write_text
from keras_modern_cnn.rundir import check_writable
from keras_modern_cnn.saving import save_model
from keras_modern_cnn.validation import (
    check_bool,
    check_choice,
    check_folder_name,
    check_output_path,
    check_positive_int,
)

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
# What a search writes in its project folder: KerasTuner's oracle, tuner states ("tuner0.json",
# a distributed search's "chief.json" and workers'), trial folders, and ours (with the
# temporary siblings a kill can leave).
PROJECT_FILES = ("oracle.json", "*.json", "trial_*", EXECUTIONS_FILE, RESULTS_FILE,
                 BEST_MODEL_FILE, TRIALS_PLOT_FILE)
PROJECT_ENTRIES = PROJECT_FILES + tuple(temporary_path(name) for name in PROJECT_FILES if "*" not in name)
LEGACY_PROJECT = {"tuning": PROJECT_ENTRIES}


class SearchSpaceChangedError(ValueError):
    """The hypermodel of a resumed search declares a different search space."""


class _ResumableSearch(StopCleanly, TolerantInitialSpace):
    """Mixed into a KerasTuner tuner: atomic state, validated and space-checked on reload,
    execution log, the project's lock while searching, clean stops."""

    def search(self, *fit_args, **fit_kwargs):
        if self.is_worker:  # the chief holds the project's lock; workers share its folder
            return super().search(*fit_args, **fit_kwargs)
        with ownership.DirectoryLock(self.project_dir, "project_name"):
            return super().search(*fit_args, **fit_kwargs)

    def run_trial(self, trial, *args, **kwargs):
        # The space for KerasTuner's checkpoint is checked before h5py writes it.
        kwargs["callbacks"] = [*kwargs.get("callbacks", []),
                               CheckSpaceBeforeSaving(checkpoint_path(self, trial.trial_id))]
        return super().run_trial(trial, *args, **kwargs)

    def _populate_initial_space(self):
        # KerasTuner reloads a project only when the tuner's state file exists. A search
        # stopped before its first trial ended has the oracle's state but not that file: it
        # is reloaded too, not started over in the trials' folders.
        if not self.is_worker and os.path.exists(os.path.join(self.project_dir, "oracle.json")):
            self.reload()
            return
        super()._populate_initial_space()

    def reload(self):
        given = self.oracle.hyperparameters.copy()  # the tuner's `hyperparameters` argument
        if not self.is_worker:
            check_state_files(self.project_dir, tuner_state_path(self))
        try:
            if os.path.exists(tuner_state_path(self)):
                super().reload()
            else:  # KerasTuner 1.4's tuner state is empty: the oracle's is the search's
                self.oracle.reload()
        except (KeyError, TypeError, RuntimeError, AttributeError) as error:  # what set_state raises
            raise ValueError(
                f"The saved search in {self.project_dir} cannot be reloaded ({type(error).__name__}: "
                f"{error}); start it over with --overwrite (overwrite=True). "
                f"Received: project_dir={self.project_dir!r}"
            ) from None
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
        append_line(os.path.join(self.project_dir, EXECUTIONS_FILE), json.dumps(record))


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
        directory: the search lives in `directory/project_name`; rerunning resumes it
            (finished trials are not rerun) unless `overwrite`, which deletes only what a
            search recorded there (`prepare_project`).
        project_name: see `directory`; one plain folder name.
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
    directory = check_output_path("directory", directory)
    project_name = check_folder_name("project_name", project_name)
    if not is_worker_process():
        prepare_project(os.path.join(directory, project_name), overwrite)
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
    # KerasTuner's overwrite would delete the whole folder: `prepare_project` cleared ours.
    return tuner_class(
        oracle=oracle_class(**oracle_options), hypermodel=hypermodel,
        max_model_size=max_model_size, directory=directory, project_name=project_name,
        overwrite=False, **tuner_kwargs,
    )


def prepare_project(project_dir, overwrite):
    """Make `project_dir` a tuning project of kmc's, under its lock: refuse another kmc folder or
    one holding files a search did not write (a new search needs a new or empty folder;
    `overwrite` names what is in the way), delete what an earlier search recorded when
    `overwrite`, and record the names a search writes."""
    manifest = check_project(project_dir, overwrite)
    os.makedirs(project_dir, exist_ok=True)
    with ownership.DirectoryLock(project_dir, "project_name"):
        manifest = check_project(project_dir, overwrite)  # again, under the lock
        if overwrite and manifest is not None:
            ownership.remove_owned(project_dir, manifest)
        else:
            ownership.adopt(project_dir, manifest)
        ownership.record(project_dir, "tuning", PROJECT_FILES)


def check_project(project_dir, overwrite):
    """Refuse, writing nothing, a tuning project folder a search may not use (see
    `prepare_project`); returns its manifest (None for a new folder)."""
    if os.path.exists(project_dir) and not os.path.isdir(project_dir):
        raise ValueError(f"The tuning project must be a folder; {project_dir} is a file. "
                         f"Received: project_dir={project_dir!r}")
    if not os.path.isdir(project_dir):
        return None
    try:
        manifest = ownership.read_manifest(project_dir, LEGACY_PROJECT)
        kind = manifest.kind if manifest is not None else ownership.directory_kind(project_dir)
        if kind not in (None, "tuning"):
            raise ValueError(
                f"{project_dir} is a {kind} folder of kmc, not a tuning project; choose another "
                f"--project-name or --output-dir. Received: project_dir={project_dir!r}"
            )
        foreign = ownership.foreign_entries(project_dir, manifest)
        if foreign:
            what = ("--overwrite replaces only what kmc wrote, and" if overwrite
                    else "a new search needs a new or empty folder, and")
            raise ValueError(
                f"{what} {project_dir} holds {ownership.describe(foreign)} (not written by a kmc "
                f"search): move it away or choose another --project-name. "
                f"Received: project_dir={project_dir!r}"
            )
    except ValueError:
        ownership.raise_if_busy(project_dir, "project_name")
        raise
    return manifest


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
    objective = tuner.oracle.objective.name
    # Guessing's accuracy, for a classifier (a segmentation's pixel accuracy is not uniform).
    classes = getattr(tuner.hypermodel, "classes", None)
    classifier = getattr(tuner.hypermodel, "family", None) != "unet"
    chance = 1 / classes if classes and classifier and objective.endswith("accuracy") else None
    return plots.plot_trials(
        trials, objective, tuner.oracle.objective.direction == "max", path,
        title=tuner.project_name, chance=chance,
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
    log=print,
):
    """Search `hypermodel_class`'s space on the data and settings of `config`, on the stages
    of `keras_modern_cnn.training` (`prepare_data`, `make_pipelines`).

    `config` is a `RunConfig`: its dataset, image size, batch size, normalisation, seed,
    epochs (per trial; Hyperband's most epochs) and precise BatchNorm statistics (trials are
    scored with them, `HyperCNN(precise_bn=...)`) are the search's. Returns `(tuner, results
    path, best model path)`; the paths are None in a worker or when no trial completed. The
    project folder is locked for the whole search (not by a distributed search's workers);
    `log` hears the data's notices.
    """
    from keras_modern_cnn.training import input_shape, make_pipelines, prepare_data

    if tuner == "hyperband" and max_trials is not None:
        raise ValueError(
            "Hyperband sets its own number of trials from the epochs; leave out max_trials. "
            f"Received: max_trials={max_trials}"
        )
    directory = check_output_path("directory", directory)
    project_dir = os.path.join(directory, check_folder_name("project_name", project_name))
    check_writable("directory", directory)
    ownership.check_not_other_folder(directory, "directory")
    data = prepare_data(config)
    for notice in data.notices:
        log(notice)
    hypermodel = hypermodel_class(
        input_shape=input_shape(config.image_size, data.channels), classes=data.num_classes,
        precise_bn=config.precise_bn, **(overrides or {}),
    )
    with contextlib.ExitStack() as held:
        if not is_worker_process():  # the whole search under the project's lock
            check_project(project_dir, overwrite)  # a refused search writes nothing
            ownership.raise_if_busy(project_dir, "project_name")
            os.makedirs(project_dir, exist_ok=True)
            held.enter_context(ownership.DirectoryLock(project_dir, "project_name"))
        search = make_tuner(
            hypermodel, tuner, objective=objective,
            max_trials=None if tuner == "hyperband" else 10 if max_trials is None else max_trials,
            max_epochs=config.epochs if tuner == "hyperband" else None,
            directory=directory, project_name=project_name, overwrite=overwrite, seed=config.seed,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            max_model_size=max_model_size,
        )
        pipelines = make_pipelines(config, data)
        callbacks = [BlockMidEpoch()] if BLOCK_AT_VARIABLE in os.environ else []
        search.search(
            pipelines["train"], validation_data=pipelines["test"], epochs=config.epochs,
            verbose=verbose, shuffle=False,  # the pipeline shuffles (Keras warns otherwise)
            callbacks=callbacks,
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
