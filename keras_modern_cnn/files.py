"""Writing files so that a crash or `kill -9` at any instant leaves the old file or the new one.

The one home of the package's atomic writes: every artefact (run files, checkpoints' metadata,
models, plots, tuning state, predictions, mask images) is written to a temporary sibling, made
durable (fsync) and renamed over its target. Imports nothing of the package.
"""

import os
import time

# Test hook (`block_point`): the kill tests stop a real command at a named moment instead of racing it.
BLOCK_AT_VARIABLE, BLOCK_MARKER_VARIABLE = "KMC_TEST_BLOCK_AT", "KMC_TEST_MARKER"
BLOCK_POINTS = ("mid-epoch", "epoch-checkpoint", "model-save")


def atomic_write(path, write):
    """Call `write(temporary_path)`, make the file durable, then rename it over `path`.

    The temporary name keeps the extension (`model.tmp.keras`, `model.tmp.weights.h5`): Keras
    and matplotlib choose the format by it. A kill at any moment leaves either the previous
    file or the new one.
    """
    path = os.fspath(path)
    root, extension = os.path.splitext(path)
    if root.endswith(".weights"):  # Keras's `.weights.h5` is one extension
        root, extension = root[: -len(".weights")], ".weights" + extension
    temporary = f"{root}.tmp{extension}"
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:  # a failed write leaves no half file (a kill leaves one, overwritten next time)
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fsync_directory(os.path.dirname(path) or ".")
    return path


def write_text(path, text):
    """`atomic_write` of a text file."""

    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            handle.write(text)

    return atomic_write(path, write)


def fsync_directory(directory):
    """Make a directory's entries (a rename into it) durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def block_point(name):
    """Test hook: with KMC_TEST_BLOCK_AT=`name`, write KMC_TEST_MARKER and wait to be killed.

    Lets the kill tests stop a real `kmc train` at a named moment (BLOCK_POINTS) instead of
    racing it; a no-op otherwise.
    """
    if os.environ.get(BLOCK_AT_VARIABLE) != name:
        return
    write_text(os.environ[BLOCK_MARKER_VARIABLE], name)
    while True:
        time.sleep(60)
