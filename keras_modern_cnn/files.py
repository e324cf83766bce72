"""Writing files so that a crash, `kill -9` or a full disk at any instant leaves the old file or
the new one.

The one home of the package's atomic writes: every artefact (run files, checkpoints, models,
plots, tuning state, predictions, mask images) is written to a temporary sibling, made
durable (fsync) and renamed over its target. A write that runs out of space (ENOSPC, EDQUOT,
or a library's message saying so) removes its temporary file and raises `DiskFullError`: one
line naming the path and the space left, the previous file intact. Imports nothing of the
package.
"""

import contextlib
import errno
import math
import os
import re
import shutil
import sys
import tempfile
import time

# Test hook (`block_point`): the kill tests stop a real command at a named moment instead of racing it.
BLOCK_AT_VARIABLE, BLOCK_MARKER_VARIABLE = "KMC_TEST_BLOCK_AT", "KMC_TEST_MARKER"
BLOCK_POINTS = ("mid-epoch", "epoch-checkpoint", "model-save")

OUT_OF_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How libraries that do not raise an OSError say it (h5py, TensorFlow's file system).
OUT_OF_SPACE_MESSAGES = ("No space left on device", "Disk quota exceeded", "errno = 28")
# Room kept free beyond a write's own size (file-system metadata, the temporary copy's blocks).
SPACE_MARGIN = 1 << 20


class DiskFullError(OSError):
    """A write ran out of space: nothing half-written is left, the previous file is intact."""

    def __init__(self, path, free, needed=None):
        self.path, self.free, self.needed = os.fspath(path), free, needed
        needs = "" if needed is None else f"; it needs about {format_bytes(needed)}"
        message = (
            f"No space left to write {self.path} ({format_bytes(free)} free on its device"
            f"{needs}); nothing was half-written and the previous file, if any, is intact: free "
            f"some space and rerun the same command. Received: path={self.path!r}"
        )
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self):
        return self.message


def format_bytes(count):
    """`1.5 MB`-style size (decimal units, as `df -H`)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count} bytes" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000


def free_bytes(path):
    """Bytes free to an unprivileged writer on the device holding `path` (or its nearest
    existing parent)."""
    path = os.path.abspath(os.fspath(path))
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def is_out_of_space(error):
    """Whether `error` (or an exception it was raised from) says the device is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFullError):
            return True
        if isinstance(error, OSError) and error.errno in OUT_OF_SPACE_ERRNOS:
            return True
        if any(text in str(error) for text in OUT_OF_SPACE_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_error(error):
    """A library's out-of-space failure (`is_out_of_space`: TensorBoard's event writer, h5py) as
    a `DiskFullError` naming the first path its message gives and that device's free space;
    None when `error` is not one or names no path."""
    if not is_out_of_space(error):
        return None
    if isinstance(error, DiskFullError):
        return error
    match = re.search(r"(/[^\s;,'\"]+)", str(error))
    if match is None:
        return None
    return DiskFullError(match.group(1), free_bytes(match.group(1)))


def variables_bytes(variables):
    """Bytes the values of `variables` (anything with `shape` and `dtype`) take: what a
    weights file or model archive of them needs, about."""
    total = 0
    for variable in variables:
        dtype = str(getattr(variable.dtype, "name", variable.dtype))
        size = next((int(dtype[len(prefix):]) // 8 for prefix in ("float", "int", "uint", "bfloat")
                     if dtype.startswith(prefix) and dtype[len(prefix):].isdigit()), 4)
        total += math.prod(int(d) for d in variable.shape) * size
    return total


def ensure_space(path, needed):
    """Raise `DiskFullError` before writing `needed` bytes to `path` when the device lacks them.

    Some writers cannot fail cleanly on a full disk (h5py may crash the process), so the large
    writes (checkpoints, models, exports) check first.
    """
    free = free_bytes(path)
    if needed is not None and free < needed + SPACE_MARGIN:
        raise DiskFullError(path, free, needed)


# What operating systems and notebooks leave in folders on their own: never a class, an image,
# or something in the way of an output (`is_hidden`).
SYSTEM_FILES = ("__MACOSX", "Thumbs.db", "desktop.ini")


def is_hidden(name):
    """A file or folder name a file manager hides (`.DS_Store`, `._x.jpg`, `.ipynb_checkpoints`)
    or that a system writes on its own (`__MACOSX`, `Thumbs.db`, `desktop.ini`)."""
    return name.startswith(".") or name in SYSTEM_FILES


def remove_path(path):
    """Remove a file, link or directory tree if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


# Extensions of more than one part, kept whole by `temporary_path` (Keras checks the full suffix).
COMPOUND_EXTENSIONS = (".weights.h5",)


def temporary_path(path):
    """Where `atomic_write` writes `path` first: `model.keras` -> `model.tmp.keras`,
    `latest.weights.h5` -> `latest.tmp.weights.h5`."""
    path = os.fspath(path)
    extension = next((e for e in COMPOUND_EXTENSIONS if path.endswith(e)), None)
    if extension is None or len(path) == len(extension):
        root, extension = os.path.splitext(path)
    else:
        root = path[: -len(extension)]
    return f"{root}.tmp{extension}"


def atomic_write(path, write, *, expected_bytes=None):
    """Call `write(temporary_path)`, make the file durable, then rename it over `path`.

    The temporary name keeps the extension (`model.tmp.keras`,
    `model.tmp.weights.h5`): Keras and matplotlib choose
    the format by it. A kill at any moment leaves either the previous file or the new one; a
    full disk (checked up front against `expected_bytes` when given) raises `DiskFullError`
    and leaves the previous file.
    """
    path = os.fspath(path)
    temporary = temporary_path(path)
    try:
        ensure_space(path, expected_bytes)
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:  # a failed write leaves no half file (a kill leaves one, overwritten next time)
        remove_path(temporary)
        if is_out_of_space(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path, free_bytes(path)) from None
        raise
    fsync_directory(os.path.dirname(path) or ".")
    return path


def write_text(path, text):
    """`atomic_write` of a text file."""

    def write(temporary):
        with open(temporary, "w", newline="") as handle:
            handle.write(text)

    return atomic_write(path, write)


def append_line(path, line):
    """Append one line to a log file (one short `write` per line: appends from several
    processes do not interleave); a full disk is a `DiskFullError`."""
    try:
        with open(path, "a") as handle:
            handle.write(line.rstrip("\n") + "\n")
    except OSError as error:
        if is_out_of_space(error):
            raise DiskFullError(path, free_bytes(path)) from None
        raise


def fsync_directory(directory):
    """Make a directory's entries (a rename into it) durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def block_point(name):
    """Test hook: with KMC_TEST_BLOCK_AT=`name`, write KMC_TEST_MARKER and wait to be killed
    (or signalled).

    Lets the kill, signal and lock tests stop a real `kmc` command at a named moment
    (BLOCK_POINTS) instead of racing it; a no-op otherwise. The wait is a Python sleep, so a
    signal handler runs at once.
    """
    if os.environ.get(BLOCK_AT_VARIABLE) != name:
        return
    write_text(os.environ[BLOCK_MARKER_VARIABLE], name)
    while True:
        time.sleep(0.1)


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
