"""The run directory: what a run writes, when a rerun resumes, refuses or starts over.

Files (all written through `keras_modern_cnn.files.atomic_write`: a temporary sibling, fsync,
rename):

    run.json      the resolved configuration and the data's description (written before training)
    history.csv   one row per finished epoch (numbered from 1), each exactly once across resumes
    backup/       the per-epoch checkpoint while training runs (removed once the model is durable)
    model.keras   the trained model
    metrics.json  the test results; its presence (with the run's epochs) marks the run finished
    curves.png, logs/   the training curves and TensorBoard logs

Rules, checked before anything is written:
- No `run.json`: a new run (a directory holding another run's files without one is refused).
- `run.json` with other settings: refused, naming every differing setting (`--overwrite`
  starts over; or choose another directory).
- Unfinished (no `metrics.json` for the configured epochs): resumed from the last finished
  epoch ("resuming from epoch N of M"); `--epochs` may change but not below the epochs done.
- Finished: refused unless `--overwrite` (start over) or `--resume` with more `--epochs`
  (train on from the saved model). Fewer epochs than done is an error.
"""

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import tempfile

from keras_modern_cnn.config import RUN_FILE, config_to_json, read_run_file
from keras_modern_cnn.files import write_text

HISTORY_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE = (
    "history.csv", "curves.png", "metrics.json", "model.keras",
)
BACKUP_DIR, LOGS_DIR = "backup", "logs"
CHECKPOINT_METADATA = "training_metadata.json"  # Keras BackupAndRestore's file name
RUN_ARTEFACTS = (
    RUN_FILE, HISTORY_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE, BACKUP_DIR, LOGS_DIR,
)
# metrics.json: the keys every reader may rely on (`kmc compare`, `kmc evaluate`, this module).
METRICS_KEYS = (
    "model", "dataset", "task", "epochs", "test_accuracy", "test_loss",
    "examples_per_second", "parameters", "wall_time_seconds",
)
RUN_MODES = ("new", "resume", "extend")  # RunPlan.mode


def read_history(path):
    """Rows of a `history.csv` as dicts (epoch as int, metrics as float); [] if absent.

    Epochs count from 1, as the progress lines and `curves.png` do. Files written before
    version 0.2 counted from 0 (their first row is epoch 0): they are read renumbered, so a
    run started then resumes with one numbering.
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        rows = [
            {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]
    if rows and rows[0].get("epoch") == 0:
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
    """The `metrics.json` of a finished run, checked against `METRICS_KEYS`."""
    try:
        with open(path) as handle:
            metrics = json.load(handle, parse_constant=_reject_constant)
        missing = [key for key in METRICS_KEYS if key not in metrics]
        if missing:
            raise KeyError(f"missing {missing}")
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{path} is not a readable metrics file ({type(error).__name__}: {error}). "
            f"Received: metrics_file={str(path)!r}"
        ) from None
    return metrics


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def finished_epochs(output_dir):
    """Epochs finished so far: the checkpoint's count, else the saved model's, else 0."""
    metadata = os.path.join(output_dir, BACKUP_DIR, CHECKPOINT_METADATA)
    if os.path.exists(metadata):
        with open(metadata) as handle:
            return int(json.load(handle)["epoch"])
    metrics = os.path.join(output_dir, METRICS_FILE)
    if os.path.exists(metrics):
        return int(read_metrics(metrics)["epochs"])
    return 0


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What `train` does in the run directory: start a new run, resume one, or extend one.

    Attributes:
        mode: one of RUN_MODES: "new", "resume" (same settings, unfinished) or "extend"
            (finished, `resume=True`).
        epochs_done: epochs already finished (0 for a new run).
        from_saved_model: continue from `model.keras` (an extended run) rather than build.
        overwrite: remove the previous run's files when the run begins.
    """

    output_dir: str
    mode: str
    epochs_done: int
    from_saved_model: bool
    overwrite: bool

    def message(self, epochs):
        if self.mode == "new":
            return None
        if self.epochs_done >= epochs:
            return f"resuming: all {epochs} epochs trained in {self.output_dir}; saving the results"
        return f"resuming from epoch {self.epochs_done + 1} of {epochs} in {self.output_dir}"

    def begin(self, config, data_info, device=None):
        """Clear the old run when overwriting, create the directory, write `run.json` (the
        configuration, the data's and the device's description)."""
        if self.overwrite:
            for name in RUN_ARTEFACTS:
                path = os.path.join(self.output_dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
        os.makedirs(self.output_dir, exist_ok=True)
        write_text(os.path.join(self.output_dir, RUN_FILE), config_to_json(config, data_info, device))

    def finish(self):
        """The model and metrics are durable: the checkpoint can go."""
        shutil.rmtree(os.path.join(self.output_dir, BACKUP_DIR), ignore_errors=True)


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
    """Decide, before touching anything, what a run of `config` does in its directory."""
    output_dir = config.output_dir
    check_writable("output_dir", output_dir)
    run_file = os.path.join(output_dir, RUN_FILE)
    if overwrite or not os.path.isdir(output_dir):
        return RunPlan(output_dir, "new", 0, False, overwrite)
    if not os.path.exists(run_file):
        leftovers = [name for name in RUN_ARTEFACTS if os.path.exists(os.path.join(output_dir, name))]
        if leftovers:
            raise ValueError(
                f"{output_dir} holds files of a run without its {RUN_FILE} ({', '.join(leftovers)}); "
                f"pass --overwrite to replace them or choose another directory. "
                f"Received: output_dir={output_dir!r}"
            )
        return RunPlan(output_dir, "new", 0, False, False)
    previous, _ = read_run_file(run_file)
    differences = previous.differences(config)
    if differences:
        listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in differences)
        raise ValueError(
            f"{output_dir} holds a run with other settings ({listed}); pass --overwrite to "
            f"start over or choose another --output-dir. Received: output_dir={output_dir!r}"
        )
    done = finished_epochs(output_dir)
    finished = os.path.exists(os.path.join(output_dir, METRICS_FILE)) and done == previous.epochs
    if config.epochs < done:
        raise ValueError(
            f"{output_dir} already holds {done} trained epochs; --epochs cannot be fewer "
            f"(--overwrite starts over). Received: epochs={config.epochs}"
        )
    if finished and not resume:
        raise ValueError(
            f"{output_dir} holds a finished run of {done} epochs; pass --overwrite to start "
            f"over, --resume with more --epochs to train on, or another --output-dir. "
            f"Received: output_dir={output_dir!r}"
        )
    if finished and config.epochs == done:
        raise ValueError(
            f"{output_dir} has finished its {done} epochs; --resume trains on only with more "
            f"--epochs. Received: epochs={config.epochs}"
        )
    from_saved_model = os.path.exists(os.path.join(output_dir, MODEL_FILE))
    return RunPlan(output_dir, "extend" if finished else "resume", done, from_saved_model, False)


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

