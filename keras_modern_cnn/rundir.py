"""The run directory: what a run writes, when a rerun resumes, refuses or starts over.

Files (all written through `keras_modern_cnn.files.atomic_write`: a temporary sibling, fsync,
rename; every name recorded in the directory's manifest before it is written,
`keras_modern_cnn.ownership`):

    run.json      the resolved configuration and the data's description (written before training)
    history.csv   one row per finished epoch (numbered from 1), each exactly once across resumes
    backup/       the per-epoch checkpoint while training runs (removed once the model is durable)
    model.keras   the trained model
    metrics.json  the test results; its presence (with the run's epochs) marks the run finished
    curves.png, logs/   the training curves and TensorBoard logs
    .kmc-manifest.json, .kmc-lock   what kmc wrote here; the lock of the process writing it

Rules, checked before anything is written, under the directory's lock (a second writer is
refused, naming the live process; the kernel drops the lock of a killed one):
- No `run.json`: a new run, in a new or empty directory (one holding anything else is refused:
  a run never mixes its files with yours).
- `run.json` with other settings: refused, naming every differing setting (`--overwrite`
  starts over; or choose another directory).
- Unfinished (no `metrics.json` for the configured epochs): resumed from the last finished
  epoch ("resuming from epoch N of M"); `--epochs` may change but not below the epochs done.
- Finished: refused unless `--overwrite` (start over) or `--resume` with more `--epochs`
  (train on from the saved model). Fewer epochs than done is an error.
- `--overwrite` deletes only what the manifest records as the run's; anything else in the
  directory stops it with one line naming what is in the way.
- Every run file is validated when read (`run.json` through the same checks as a new run,
  `metrics.json`, `history.csv`, the checkpoint's metadata), and the run's state is decided from
  all of them together (`read_state`): a malformed file or files that disagree (a finished
  run's `metrics.json` deleted, a checkpoint without its history) are one line naming the file
  and what to do, never a silent retrain.
"""

import contextlib
import csv
import dataclasses
import io
import json
import math
import numbers
import os
import shutil
import tempfile
from typing import Optional

from keras_modern_cnn import ownership
from keras_modern_cnn.config import RUN_FILE, config_to_json, read_run_file
from keras_modern_cnn.files import temporary_path, write_text

HISTORY_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE = (
    "history.csv", "curves.png", "metrics.json", "model.keras",
)
BACKUP_DIR, LOGS_DIR = "backup", "logs"
CHECKPOINT_METADATA = "training_metadata.json"  # Keras BackupAndRestore's file name
RUN_ARTEFACTS = (
    RUN_FILE, HISTORY_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE, BACKUP_DIR, LOGS_DIR,
)
# What a run directory written before manifests may hold (its files and their temporary
# siblings, left by a kill): `ownership.read_manifest` recognises such a directory by them.
LEGACY_RUN = {"run": RUN_ARTEFACTS + tuple(temporary_path(name) for name in RUN_ARTEFACTS)}
# metrics.json: the keys every reader may rely on (`kmc compare`, `kmc evaluate`, this module),
# each with what it must hold.
METRICS_KEYS = (
    "model", "dataset", "task", "epochs", "test_accuracy", "test_loss",
    "examples_per_second", "parameters", "wall_time_seconds",
)
RUN_MODES = ("new", "resume", "extend")  # RunPlan.mode
OVERWRITE_HINT = "pass --overwrite to start over, or choose another --output-dir"


def _fail(path, problem, argument="run_file"):
    raise ValueError(f"{path}: {problem}. Received: {argument}={str(path)!r}")


def read_history(path):
    """Rows of a `history.csv` as dicts (epoch as int, metrics as float); [] if absent.

    Epochs count from 1, as the progress lines and `curves.png` do, each once and in order; a
    malformed file is an error naming the row and the field. Files written before version 0.2
    counted from 0 (their first row is epoch 0): they are read renumbered, so a run started
    then resumes with one numbering.
    """
    if not os.path.exists(path):
        return []
    rows: list = []
    try:
        with open(path, newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                parsed = {}
                for key, value in row.items():
                    if key is None or value is None:
                        _fail(path, f"line {number} has {'more' if key is None else 'fewer'} "
                              f"fields than the header", "history_file")
                    try:
                        parsed[key] = int(value) if key == "epoch" else float(value)
                    except ValueError:
                        _fail(path, f"line {number}, field `{key}` is not a number: {value!r}",
                              "history_file")
                first = rows[0]["epoch"] if rows else 0 if parsed.get("epoch") == 0 else 1
                expected = first + len(rows)
                if parsed.get("epoch") != expected:
                    _fail(path, f"line {number}, field `epoch` must be {expected} (one row per "
                          f"epoch, in order, from 1); it is {parsed.get('epoch')!r}", "history_file")
                rows.append(parsed)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        _fail(path, f"not a readable history file ({type(error).__name__}: {error})", "history_file")
    if rows and rows[0]["epoch"] == 0:
        rows = [{**row, "epoch": row["epoch"] + 1} for row in rows]
    return rows


def write_history(rows, path):
    """Write `history.csv` rows atomically (a kill mid-write leaves the previous complete file)."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def write_metrics(path, metrics):
    """Write `metrics.json` (strict JSON: a non-finite value is an error, not `NaN`)."""
    missing = [key for key in METRICS_KEYS if key not in metrics]
    if missing:
        raise ValueError(f"metrics.json needs {missing}. Received: metrics={sorted(metrics)}")
    return write_text(path, json.dumps(metrics, indent=2, allow_nan=False) + "\n")


def read_metrics(path):
    """The `metrics.json` of a finished run, checked against `METRICS_KEYS` and their types."""
    try:
        with open(path) as handle:
            metrics = json.load(handle, parse_constant=_reject_constant)
    except (OSError, ValueError) as error:
        _fail(path, f"not a readable metrics file ({type(error).__name__}: {error})", "metrics_file")
    if not isinstance(metrics, dict):
        _fail(path, "not a metrics file (it must hold a JSON object)", "metrics_file")
    missing = [key for key in METRICS_KEYS if key not in metrics]
    if missing:
        _fail(path, f"field(s) {', '.join(missing)} missing", "metrics_file")
    for key, (kind, check) in _METRIC_TYPES.items():
        value = metrics[key]
        if not check(value):
            _fail(path, f"field `{key}` must be {kind}; it is {value!r}", "metrics_file")
    return metrics


def _is_integer(value, minimum):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _is_finite(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


_METRIC_TYPES = {
    "model": ("a string", lambda v: isinstance(v, str) and v),
    "dataset": ("a string", lambda v: isinstance(v, str) and v),
    "task": ("a string", lambda v: isinstance(v, str) and v),
    "epochs": ("an integer >= 1", lambda v: _is_integer(v, 1)),
    "test_accuracy": ("a number in [0, 1]", lambda v: _is_finite(v) and 0 <= v <= 1),
    "test_loss": ("a finite number", _is_finite),
    "examples_per_second": ("a number or null", lambda v: v is None or _is_finite(v)),
    "parameters": ("an integer >= 0", lambda v: _is_integer(v, 0)),
    "wall_time_seconds": ("a number >= 0", lambda v: _is_finite(v) and v >= 0),
}


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_checkpoint_epochs(output_dir):
    """Epochs the per-epoch checkpoint holds (`backup/training_metadata.json`), or None."""
    path = os.path.join(output_dir, BACKUP_DIR, CHECKPOINT_METADATA)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            metadata = json.load(handle)
    except (OSError, ValueError) as error:
        _fail(path, f"not a readable checkpoint record ({type(error).__name__}: {error}); "
              f"delete {os.path.dirname(path)} to resume from the start, or "
              f"{OVERWRITE_HINT}", "checkpoint_file")
    epoch = metadata.get("epoch") if isinstance(metadata, dict) else None
    if not _is_integer(epoch, 0):
        _fail(path, f"field `epoch` must be an integer >= 0; it is {epoch!r}", "checkpoint_file")
    return int(epoch)


def finished_epochs(output_dir):
    """Epochs finished so far: the checkpoint's count, else the saved model's, else 0."""
    epochs = read_checkpoint_epochs(output_dir)
    if epochs is not None:
        return epochs
    metrics = os.path.join(output_dir, METRICS_FILE)
    if os.path.exists(metrics):
        return int(read_metrics(metrics)["epochs"])
    return 0


@dataclasses.dataclass(frozen=True)
class RunState:
    """What the files of a run directory say, all of them agreeing (`read_state`).

    Attributes:
        config: the run's `RunConfig` (`run.json`).
        epochs_done: epochs trained and checkpointed (or saved, for a finished run).
        finished: `metrics.json` holds the results of all of `config.epochs`.
        has_model: `model.keras` is there (a finished run's, or one being extended).
    """

    config: object
    epochs_done: int
    finished: bool
    has_model: bool


def read_state(output_dir):
    """The state of the run in `output_dir`, decided from every file together.

    Consistent states: a run in progress (a checkpoint of N epochs, N or N + 1 history rows,
    no model unless all epochs are done), a finished run (model, metrics of all epochs, one
    history row per epoch), and a finished run being extended (its model and metrics, a
    checkpoint beyond them). Anything else is an error saying what is wrong and what to do.
    """
    run_file = os.path.join(output_dir, RUN_FILE)
    config, _ = read_run_file(run_file)
    epochs = config.epochs
    checkpoint = read_checkpoint_epochs(output_dir)
    metrics_file = os.path.join(output_dir, METRICS_FILE)
    metrics = read_metrics(metrics_file) if os.path.exists(metrics_file) else None
    has_model = os.path.isfile(os.path.join(output_dir, MODEL_FILE))
    history = read_history(os.path.join(output_dir, HISTORY_FILE))

    def inconsistent(problem):
        raise ValueError(
            f"{output_dir} holds an inconsistent run: {problem}; {OVERWRITE_HINT}. "
            f"Received: output_dir={output_dir!r}"
        )

    if checkpoint is not None and checkpoint > epochs:
        inconsistent(f"its checkpoint holds {checkpoint} epochs but {RUN_FILE} asks for {epochs}")
    if metrics is not None:
        trained = metrics["epochs"]
        if trained > epochs:
            inconsistent(f"{METRICS_FILE} reports {trained} epochs but {RUN_FILE} asks for {epochs}")
        if not has_model:
            inconsistent(f"{METRICS_FILE} reports a finished run but {MODEL_FILE} is missing")
        if checkpoint is not None and checkpoint < trained:
            inconsistent(f"its checkpoint holds {checkpoint} epochs, fewer than the "
                         f"{trained} of {METRICS_FILE}")
        done = trained if checkpoint is None else checkpoint
    else:
        if has_model and checkpoint != epochs:
            inconsistent(f"it holds {MODEL_FILE} but no {METRICS_FILE} (deleted?) and no "
                         f"checkpoint of its {epochs} epochs")
        done = checkpoint or 0
    if len(history) not in (done, done + 1):
        what = "no history.csv" if not history else f"{len(history)} epoch(s) in {HISTORY_FILE}"
        inconsistent(f"{what} but {done} epoch(s) trained")
    finished = metrics is not None and metrics["epochs"] == epochs and done == epochs
    return RunState(config, done, finished, has_model)


def run_manifest(output_dir):
    """The run directory's manifest (or an older run's, inferred), else None."""
    return ownership.read_manifest(output_dir, LEGACY_RUN)


@dataclasses.dataclass
class RunPlan:
    """What `train` does in the run directory: start a new run, resume one, or extend one.

    Attributes:
        mode: one of RUN_MODES: "new", "resume" (same settings, unfinished) or "extend"
            (finished, `resume=True`).
        epochs_done: epochs already finished (0 for a new run).
        from_saved_model: continue from `model.keras` (an extended run) rather than build.
        overwrite: remove the previous run's files when the run begins.
        manifest: what kmc recorded in the directory (None: a new directory).
        lock: the directory's lock, held from planning to the end of the run (`release`).
    """

    output_dir: str
    mode: str
    epochs_done: int
    from_saved_model: bool
    overwrite: bool
    manifest: Optional[ownership.Manifest] = None
    lock: Optional[ownership.DirectoryLock] = None
    begun: bool = False

    def message(self, epochs):
        if self.mode == "new":
            return None
        if self.epochs_done >= epochs:
            return f"resuming: all {epochs} epochs trained in {self.output_dir}; saving the results"
        return f"resuming from epoch {self.epochs_done + 1} of {epochs} in {self.output_dir}"

    def begin(self, config, data_info, device=None, names=RUN_ARTEFACTS):
        """Take the directory (create and lock it if new), clear the old run when overwriting
        (only what kmc recorded), record `names` in the manifest, write `run.json` (the
        configuration, the data's and the device's description)."""
        if self.lock is None:
            os.makedirs(self.output_dir, exist_ok=True)
            self.lock = ownership.DirectoryLock(self.output_dir).acquire()
            others = ownership.visible_entries(self.output_dir)
            if others:  # another process filled it since `plan_run` looked
                raise ValueError(
                    f"{self.output_dir} was filled by another process while this run prepared "
                    f"(it now holds {ownership.describe(others)}); rerun the command. "
                    f"Received: output_dir={self.output_dir!r}"
                )
        if self.overwrite and self.manifest is not None:
            ownership.remove_owned(self.output_dir, self.manifest)
        else:
            ownership.adopt(self.output_dir, self.manifest)
        self.begun = True
        ownership.record(self.output_dir, "run", names)
        write_text(os.path.join(self.output_dir, RUN_FILE), config_to_json(config, data_info, device))

    def finish(self):
        """The model and metrics are durable: the checkpoint can go."""
        shutil.rmtree(os.path.join(self.output_dir, BACKUP_DIR), ignore_errors=True)

    def release(self):
        """Drop the directory's lock (the kernel drops it anyway when the process ends)."""
        if self.lock is not None:
            self.lock.release()


@contextlib.contextmanager
def private_copy(output_dir):
    """Yield a temporary copy of the run in `output_dir` (what a resume reads); removed on exit.

    A multi-process run's processes other than 0 train on one: they run every step of writing
    (JAX saves collectively, so all must) without touching the run directory.
    """
    root = tempfile.mkdtemp(prefix="kmc-run-")
    copy = os.path.join(root, "run")
    try:
        os.makedirs(copy)
        for name in RUN_ARTEFACTS:
            path = os.path.join(output_dir, name)
            if name == LOGS_DIR or not os.path.exists(path):
                continue
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(copy, name))
            else:
                shutil.copy2(path, copy)
        yield copy
    finally:
        shutil.rmtree(root, ignore_errors=True)


def plan_run(config, *, overwrite=False, resume=False):
    """Decide, before writing anything, what a run of `config` does in its directory.

    Takes the directory's lock when it exists (`RunPlan.lock`; `RunPlan.begin` takes it for a
    new directory): a directory another process is writing is refused, naming that process.
    """
    output_dir = config.output_dir
    check_writable("output_dir", output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"`output_dir` must be a directory; it is a file. Received: output_dir={output_dir!r}")
    if not os.path.isdir(output_dir):
        return RunPlan(output_dir, "new", 0, False, overwrite)
    manifest = run_manifest(output_dir)
    kind = manifest.kind if manifest is not None else ownership.directory_kind(output_dir)
    if kind not in (None, "run"):
        raise ValueError(
            f"{output_dir} is a {kind} folder of kmc, not a run directory; choose another "
            f"--output-dir. Received: output_dir={output_dir!r}"
        )
    try:  # first without the lock: a refused run leaves not even a lock file behind
        _plan(config, output_dir, manifest, None, overwrite, resume)
    except ValueError:
        ownership.raise_if_busy(output_dir)  # a writer's transient state is not the reason
        raise
    lock = ownership.DirectoryLock(output_dir).acquire()
    try:  # again under the lock: what is on disk now cannot change under this run
        return _plan(config, output_dir, run_manifest(output_dir), lock, overwrite, resume)
    except BaseException:
        lock.release()
        raise


def _plan(config, output_dir, manifest, lock, overwrite, resume):
    foreign = ownership.foreign_entries(output_dir, manifest)
    if overwrite:
        if foreign:
            raise ValueError(
                f"--overwrite replaces only what kmc wrote, and {output_dir} also holds "
                f"{ownership.describe(foreign)} (not written by kmc): move it away or choose "
                f"another --output-dir. Received: output_dir={output_dir!r}"
            )
        return RunPlan(output_dir, "new", 0, False, True, manifest, lock)
    run_file = os.path.join(output_dir, RUN_FILE)
    if not os.path.exists(run_file):
        leftovers = [name for name in RUN_ARTEFACTS if os.path.exists(os.path.join(output_dir, name))]
        if leftovers:
            raise ValueError(
                f"{output_dir} holds files of a run without its {RUN_FILE} ({', '.join(leftovers)}); "
                f"pass --overwrite to replace them or choose another directory. "
                f"Received: output_dir={output_dir!r}"
            )
        if foreign:
            raise ValueError(
                f"{output_dir} holds {ownership.describe(foreign)}, which kmc did not write: a run "
                f"needs a new or empty directory (it never mixes its files with yours); choose "
                f"another --output-dir. Received: output_dir={output_dir!r}"
            )
        return RunPlan(output_dir, "new", 0, False, False, manifest, lock)
    state = read_state(output_dir)
    differences = state.config.differences(config)
    if differences:
        listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in differences)
        raise ValueError(
            f"{output_dir} holds a run with other settings ({listed}); pass --overwrite to "
            f"start over or choose another --output-dir. Received: output_dir={output_dir!r}"
        )
    done = state.epochs_done
    if config.epochs < done:
        raise ValueError(
            f"{output_dir} already holds {done} trained epochs; --epochs cannot be fewer "
            f"(--overwrite starts over). Received: epochs={config.epochs}"
        )
    if state.finished and not resume:
        raise ValueError(
            f"{output_dir} holds a finished run of {done} epochs; pass --overwrite to start "
            f"over, --resume with more --epochs to train on, or another --output-dir. "
            f"Received: output_dir={output_dir!r}"
        )
    if state.finished and config.epochs == done:
        raise ValueError(
            f"{output_dir} has finished its {done} epochs; --resume trains on only with more "
            f"--epochs. Received: epochs={config.epochs}"
        )
    mode = "extend" if state.finished else "resume"
    return RunPlan(output_dir, mode, done, state.has_model, False, manifest, lock)


def check_writable(name, directory):
    """`directory` must be a directory we can create and write, or say so in one line."""
    parent = directory
    while not os.path.exists(parent):
        parent = os.path.dirname(parent) or "."
    reason = None
    if not os.path.isdir(parent):
        reason = f"{parent} is a file"
    elif not os.access(parent, os.W_OK | os.X_OK):
        reason = f"{parent} is not writable"
    if reason:
        raise ValueError(
            f"`{name}` must be a writable directory ({reason}). Received: {name}={directory!r}"
        )

