"""Every place `kmc tune` relies on KerasTuner internals, in one module, for KerasTuner 1.4.

Each entry names what it relies on; `tests/test_compat.py` holds one test per entry that fails
when KerasTuner changes that behaviour. (The Keras internals live in
`keras_modern_cnn._compat`.)
"""

import os
import warnings

from keras_tuner.errors import FailedTrialError

from keras_modern_cnn.files import write_text

KERAS_TUNER_VERSION_WRITTEN_FOR = "1.4"


def is_worker(tuner):
    """True in a worker of a distributed search. Relies on `BaseTuner._is_worker()`."""
    return tuner._is_worker()


def tuner_state_path(tuner):
    """The tuner's state file. Relies on `BaseTuner._get_tuner_fname()`."""
    return tuner._get_tuner_fname()


class AtomicOracleState:
    """Mixed into an oracle: `oracle.json` and every `trial.json` are replaced atomically.

    KerasTuner writes them in place, so a `kill -9` during a write left an empty `oracle.json`
    and a search that could not resume. Relies on `Oracle.save()` writing the state to
    `Oracle._get_oracle_fname()` and on `Oracle._save_trial(trial)` writing
    `Oracle._get_trial_dir(trial_id)/trial.json`.
    """

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
