"""Writing files so that a crash or `kill -9` at any instant leaves the old file or the new one.

The one home of the package's atomic writes: every artefact (run files, checkpoints' metadata,
models, plots, tuning state, predictions, mask images) is written to a temporary sibling, made
durable (fsync) and renamed over its target. Imports nothing of the package.
"""

import contextlib
import os
import sys
import tempfile
import time

# Test hook (`block_point`): the kill tests stop a real command at a named moment instead of racing it.
BLOCK_AT_VARIABLE, BLOCK_MARKER_VARIABLE = "KMC_TEST_BLOCK_AT", "KMC_TEST_MARKER"
BLOCK_POINTS = ("mid-epoch", "epoch-checkpoint", "model-save")


def atomic_write(path, write):
    """Call `write(temporary_path)`, make the file durable, then rename it over `path`.

    The temporary name keeps the extension (`model.tmp.keras`): Keras and matplotlib choose
    the format by it. A kill at any moment leaves either the previous file or the new one.
    """
    path = os.fspath(path)
    root, extension = os.path.splitext(path)
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


@contextlib.contextmanager
def native_stderr_held():
    """Hold what native code writes to file descriptor 2 (C++ logging: TensorFlow's start-up
    lines, the LiteRT converter's and interpreter's INFO lines) aside in a temporary file, and
    replay it on standard error if the block raises, so a failure still shows its cause."""
    with tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore_stderr(saved)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        _restore_stderr(saved)


def _restore_stderr(saved):
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
