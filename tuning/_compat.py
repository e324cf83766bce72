"""Every place `kmc tune` relies on KerasTuner internals, in one module, for KerasTuner 1.4.

Each entry names what it relies on; `tests/test_compat.py` holds one test per entry that fails
when KerasTuner changes that behaviour. (The Keras internals live in
`keras_modern_cnn._compat`.)
"""

import json
import os
import warnings

from keras_tuner.errors import FailedTrialError, FatalError

from keras_modern_cnn.files import DiskFullError, is_out_of_space, write_text
from keras_modern_cnn.signals import Interrupted, pending

KERAS_TUNER_VERSION_WRITTEN_FOR = "1.4"


def is_worker(tuner):
    """True in a worker of a distributed search. Relies on `BaseTuner._is_worker()`."""
    return tuner._is_worker()


def checkpoint_path(tuner, trial_id):
    """The weights file KerasTuner's `SaveBestEpoch` writes for a trial (h5py). Relies on
    `Tuner._get_checkpoint_fname(trial_id)`, the path `Tuner.run_trial` gives it."""
    return tuner._get_checkpoint_fname(trial_id)


def tuner_state_path(tuner):
    """The tuner's state file. Relies on `BaseTuner._get_tuner_fname()`."""
    return tuner._get_tuner_fname()


def is_worker_process():
    """True when this process would be a worker of a distributed search (before a tuner
    exists). Relies on `keras_tuner.src.distribute.utils.has_chief_oracle()` and
    `is_chief_oracle()` (the environment variables KerasTuner reads)."""
    from keras_tuner.src.distribute import utils

    return utils.has_chief_oracle() and not utils.is_chief_oracle()


# What KerasTuner's `Oracle.set_state` and `Trial.set_state` read: `oracle.json`'s and every
# `trial_*/trial.json`'s keys (KerasTuner 1.4).
ORACLE_STATE_KEYS = ("ongoing_trials", "hyperparameters", "start_order", "end_order",
                     "run_times", "retry_queue", "seed", "seed_state", "tried_so_far",
                     "id_to_hash", "display")
TRIAL_STATE_KEYS = ("trial_id", "hyperparameters", "metrics", "score", "best_step", "status",
                    "message")


def check_state_files(project_dir, tuner_file):
    """Validate a search's saved state before KerasTuner reloads it: a missing or malformed
    file is one line naming it and the field, never a search silently started over.

    Relies on the layout KerasTuner 1.4 writes: `oracle.json` (`ORACLE_STATE_KEYS`), one
    `trial_ID/trial.json` per trial (`TRIAL_STATE_KEYS`) and the tuner's `tuner_file` (written
    when a trial ends; its state is empty).
    """
    trials = sorted(name for name in os.listdir(project_dir)
                    if name.startswith("trial_") and os.path.isdir(os.path.join(project_dir, name)))
    oracle_file = os.path.join(project_dir, "oracle.json")
    started = os.path.exists(oracle_file) or trials
    if not started:
        return
    hint = "fix or restore it, or start the search over with --overwrite (overwrite=True)"
    if not os.path.exists(oracle_file):
        _bad_state(oracle_file, f"the search in {project_dir} lacks this file of its saved state", hint)
    oracle = _read_state(oracle_file, ORACLE_STATE_KEYS, hint)
    ids = set()
    for name in trials:
        path = os.path.join(project_dir, name, "trial.json")
        if not os.path.exists(path):
            continue  # a trial whose first save was interrupted: KerasTuner creates it again
        trial = _read_state(path, TRIAL_STATE_KEYS, hint)
        ids.add(str(trial["trial_id"]))
    if not isinstance(oracle["ongoing_trials"], dict):
        _bad_state(oracle_file, "field `ongoing_trials` must be an object", hint)
    for tuner_id, trial_id in oracle["ongoing_trials"].items():
        if str(trial_id) not in ids:
            _bad_state(oracle_file, f"field `ongoing_trials` names trial {trial_id!r} (of "
                       f"{tuner_id}), which has no trial.json", hint)
    if os.path.exists(tuner_file):  # absent until the first trial ends
        _read_state(tuner_file, (), hint)


def _read_state(path, keys, hint):
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (OSError, ValueError) as error:
        _bad_state(path, f"not readable JSON ({type(error).__name__}: {error})", hint)
    if not isinstance(state, dict):
        _bad_state(path, "it must hold a JSON object", hint)
    missing = [key for key in keys if key not in state]
    if missing:
        _bad_state(path, f"field `{missing[0]}` is missing", hint)
    return state


def _bad_state(path, problem, hint):
    raise ValueError(f"{path}: {problem}; {hint}. Received: state_file={path!r}")


class _OutOfSpace(FatalError):
    """Carries a `DiskFullError` through KerasTuner's trial loop, which re-raises FatalError."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class StopCleanly:
    """Mixed into a tuner: Ctrl-C, SIGTERM and a full disk stop the search, not the trial.

    KerasTuner's `BaseTuner._try_run_and_update_trial` turns any exception of a trial into a
    failed trial and goes on, and a signal can reach Python inside a TensorFlow call, which
    hands it back as its own error. Here a signal received during the trial
    (`keras_modern_cnn.signals.pending`) raises `Interrupted` instead, before the trial is
    ended, so the oracle still holds it as running and a resumed search runs it again (its
    `Oracle.reload` re-queues running trials); a full disk raises `DiskFullError`, likewise.
    Relies on `_try_run_and_update_trial(trial, ...)` calling `_run_and_update_trial` inside its
    `try` and re-raising `FatalError`.
    """

    def _run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        try:
            return super()._run_and_update_trial(trial, *fit_args, **fit_kwargs)
        except Exception as error:
            if is_out_of_space(error):
                disk_error = error if isinstance(error, DiskFullError) else DiskFullError(
                    self.get_trial_dir(trial.trial_id), _free(self.project_dir))
                raise _OutOfSpace(disk_error) from None
            raise

    def _try_run_and_update_trial(self, trial, *fit_args, **fit_kwargs):
        where = (f"during trial {trial.trial_id} in {self.project_dir}; rerun the same command "
                 f"to resume (the trial runs again)")
        try:
            super()._try_run_and_update_trial(trial, *fit_args, **fit_kwargs)
        except Interrupted as interruption:
            raise interruption.at(where) from None
        except _OutOfSpace as error:
            raise error.error from None
        if pending() is not None:
            raise Interrupted(pending(), where)


def _free(path):
    from keras_modern_cnn.files import free_bytes

    return free_bytes(path)


class AtomicOracleState:
    """Mixed into an oracle: `oracle.json` and every `trial.json` are replaced atomically, and
    no trial is left running forever.

    KerasTuner writes them in place, so a `kill -9` during a write left an empty `oracle.json`
    and a search that could not resume. Relies on `Oracle.save()` writing the state to
    `Oracle._get_oracle_fname()` and on `Oracle._save_trial(trial)` writing
    `Oracle._get_trial_dir(trial_id)/trial.json`.

    `Oracle.create_trial` saves a new trial's `trial.json` before `oracle.json`: a kill between
    the two left a trial running on disk that `Oracle.reload` (which retries only the trials
    `oracle.json` lists as ongoing) never ran again. `reload` here queues every trial still
    running for a retry as well. Relies on `Oracle.reload` filling `trials` and `_retry_queue`.
    """

    def reload(self):
        super().reload()
        for trial_id, trial in self.trials.items():
            if trial.status == "RUNNING" and trial_id not in self._retry_queue:
                self._retry_queue.append(trial_id)

    def save(self):
        write_text(self._get_oracle_fname(), _json(self.get_state()))

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        write_text(path, _json(trial.get_state()))


class TolerantInitialSpace:
    """Mixed into a tuner: a default configuration that cannot be built is a warning.

    KerasTuner registers `declare_hyperparameters`, then builds the default configuration to
    discover more (`BaseTuner._populate_initial_space`); our hypermodels declare everything,
    so an invalid default is one more failed trial, not a crash.
    """

    def _populate_initial_space(self):
        try:
            super()._populate_initial_space()
        except FailedTrialError as error:
            warnings.warn(
                f"The default configuration cannot be built; trials like it fail. {error}",
                stacklevel=2,
            )


def _json(state):
    import json

    return json.dumps(state)


def is_rand_augment(hypermodel):
    """`keras_tuner.applications.HyperImageAugment` in its RandAugment mode (`augment_layers`
    > 0): KerasTuner 1.4 records the mode only in `model_name` ("image_rand_augment")."""
    return getattr(hypermodel, "model_name", None) == "image_rand_augment"
