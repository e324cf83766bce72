"""What kmc wrote in a directory, and which process is writing it now.

kmc deletes or replaces only what it wrote and recorded. Every directory a command fills (a
run, a `kmc compare` summary, a tuning project, a SavedModel export, a folder of predicted
masks) holds a manifest, `.kmc-manifest.json`:

    {"format": 1, "kind": "run", "entries": {"run.json": "own", "logs": "own", "model.onnx": "output"}}

`kind` says what the directory is (`KINDS`); each entry is a name kmc created there, recorded
*before* it is written (a kill in between leaves a recorded name that does not exist yet,
never an unrecorded file of kmc's): role "own" for the directory's own artefacts, which
`--overwrite` replaces, and "output" for what another command put there (an export or a
predictions file beside a run), which `--overwrite` keeps. Anything else is the user's:
`--overwrite` refuses, naming it. A directory kmc created is kmc's whole (TensorBoard's
`logs/`, a SavedModel); names a file manager hides (`files.is_hidden`) are never in the way.

Directories written before manifests existed are recognised by their marker file (a run's
`run.json`, a tuning project's `oracle.json`): the names that kind writes are taken as kmc's,
anything else in them as the user's.

A directory being written is locked (`DirectoryLock`): `fcntl.flock` on `.kmc-lock` inside it,
which the kernel releases when the process ends, however it ends, so a `kill -9` never leaves
a stale lock. The file records the holder (pid, host, command, start) for the message a second
writer gets. Readers (`kmc evaluate`, `predict`, `summary`, `export`'s model) never lock.
"""

import contextlib
import dataclasses
import datetime
import fnmatch
import json
import os
import shlex
import socket
import sys
from typing import Optional

from keras_modern_cnn.files import is_hidden, remove_path, temporary_path, write_text

MANIFEST_FILE, LOCK_FILE = ".kmc-manifest.json", ".kmc-lock"
MANIFEST_FORMAT = 1
# run: `kmc train`; compare: `kmc compare`'s summary folder; tuning: a `kmc tune` project;
# export: a SavedModel directory of `kmc export`; predictions: `kmc predict`'s masks.
KINDS = ("run", "compare", "tuning", "export", "predictions")
ROLES = ("own", "output")
# A directory written before manifests: its marker, and the names its kind writes.
LEGACY_MARKERS = {"run": "run.json", "tuning": "oracle.json"}


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The record of a directory kmc fills: its `kind` and `{name: role}` of what kmc created."""

    kind: str
    entries: dict
    legacy: bool = False  # inferred from a marker file (no manifest on disk)

    def owned(self, role="own"):
        """The recorded names (or name patterns, such as a tuning project's `trial_*`) of `role`."""
        return sorted(name for name, recorded in self.entries.items() if recorded == role)

    def records(self, name):
        """Whether `name` (or the temporary sibling a kill left of it) is recorded."""
        return any(fnmatch.fnmatchcase(name, entry) or fnmatch.fnmatchcase(name, temporary_path(entry))
                   for entry in self.entries)


class DirectoryBusyError(ValueError):
    """Another live process holds the directory's lock."""


def manifest_path(directory):
    return os.path.join(directory, MANIFEST_FILE)


def read_manifest(directory, legacy_patterns=None) -> Optional[Manifest]:
    """The directory's manifest; None when it has none (and is not a recognised older one).

    `legacy_patterns`: `{kind: name patterns}` of what each kind writes, to recognise a
    directory written before manifests by its `LEGACY_MARKERS` file.
    A malformed manifest is an error naming the file and the field, never ignored.
    """
    path = manifest_path(directory)
    if not os.path.exists(path):
        return _legacy_manifest(directory, legacy_patterns or {})
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError) as error:
        _bad_manifest(path, f"it is not readable JSON ({type(error).__name__}: {error})")
    if not isinstance(record, dict):
        _bad_manifest(path, "it must hold a JSON object")
    if record.get("format") != MANIFEST_FORMAT:
        _bad_manifest(path, f"field `format` must be {MANIFEST_FORMAT}; it is {record.get('format')!r}")
    if record.get("kind") not in KINDS:
        _bad_manifest(path, f"field `kind` must be one of {', '.join(KINDS)}; it is {record.get('kind')!r}")
    entries = record.get("entries")
    if not isinstance(entries, dict):
        _bad_manifest(path, f"field `entries` must be an object; it is {entries!r}")
    for name, role in entries.items():
        if not _plain_name(name) or role not in ROLES:
            _bad_manifest(path, f"field `entries` holds {name!r}: {role!r}; entries are plain names "
                          f"with a role in {', '.join(ROLES)}")
    return Manifest(record["kind"], dict(entries))


def _bad_manifest(path, problem):
    raise ValueError(
        f"{path} is not a kmc manifest: {problem}. It records what kmc wrote in the folder; "
        f"delete it only if kmc did not write the folder. Received: manifest_file={path!r}"
    )


def _plain_name(name):
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _legacy_manifest(directory, legacy_patterns):
    """An older directory, recognised by its marker: its kind's names are kmc's (anything
    else in it is not)."""
    for kind, patterns in legacy_patterns.items():
        if not os.path.isfile(os.path.join(directory, LEGACY_MARKERS[kind])):
            continue
        names = [name for name in visible_entries(directory)
                 if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)]
        return Manifest(kind, {name: "own" for name in names}, legacy=True)
    return None


def visible_entries(directory):
    """The names in `directory` that count: not hidden, not kmc's own bookkeeping."""
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if not is_hidden(name))


def foreign_entries(directory, manifest):
    """The visible entries of `directory` that kmc did not record there (the temporary sibling
    of a recorded file, left by a kill mid-write, counts as recorded)."""
    if manifest is None:
        return visible_entries(directory)
    return [name for name in visible_entries(directory) if not manifest.records(name)]


def describe(names, limit=3):
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def directory_kind(path, legacy_patterns=None):
    """The kind of kmc directory `path` is (`KINDS`), or None (not one, or not a directory)."""
    if not os.path.isdir(path):
        return None
    manifest = read_manifest(path, legacy_patterns)
    if manifest is not None:
        return manifest.kind
    for kind, marker in LEGACY_MARKERS.items():  # an older directory: its marker tells
        if os.path.isfile(os.path.join(path, marker)):
            return kind
    return None


def check_not_other_folder(path, argument, allowed=()):
    """Refuse, in one line, a `path` that is a kmc folder of a kind other than `allowed`
    (a run directory used as a tuning output folder, a SavedModel as a mask folder, ...)."""
    kind = directory_kind(path)
    if kind is not None and kind not in allowed:
        raise ValueError(
            f"{path} is a {kind} folder of kmc; choose another folder. Received: {argument}={os.fspath(path)!r}"
        )


def claim_outputs(directory, kind, paths, *, overwrite, argument="output_dir"):
    """Check that `paths` (relative to `directory`) may be written, then record them.

    A path that exists is replaced only if kmc recorded it (or the folder holding it) in
    `directory` and `overwrite` is given; otherwise one line names it. Records the top-level
    names before anything is written.
    """
    manifest = read_manifest(directory)
    if manifest is not None and manifest.kind != kind:
        raise ValueError(f"{directory} is a {manifest.kind} folder of kmc; choose another folder. "
                         f"Received: {argument}={os.fspath(directory)!r}")
    existing = [path for path in paths if os.path.lexists(os.path.join(directory, path))]
    foreign = [path for path in existing
               if manifest is None or not manifest.records(_top(path))]
    if foreign:
        raise ValueError(
            f"{os.path.join(directory, foreign[0])} is in the way: kmc did not write it "
            f"({len(foreign)} such file(s)); move them away or choose another folder. "
            f"Received: {argument}={os.fspath(directory)!r}"
        )
    if existing and not overwrite:
        raise ValueError(
            f"`{argument}` already holds {os.path.join(directory, existing[0])} (and "
            f"{len(existing) - 1} more); pass --overwrite to replace them. "
            f"Received: {argument}={os.fspath(directory)!r}"
        )
    os.makedirs(directory, exist_ok=True)
    return record(directory, kind, sorted({_top(path) for path in paths}))


def check_output_file(path, *, overwrite, argument="output", legacy_patterns=None):
    """A file a command writes by the name given (`kmc predict --output`): never a folder nor a
    file a kmc folder owns (a run's `metrics.json`); an existing one only with `overwrite`.
    Records it in its folder when that is a kmc folder (as an "output", which the folder's own
    `--overwrite` keeps). Call before writing."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"`{argument}` names a file to write; {path} is a folder. "
                         f"Received: {argument}={path!r}")
    parent = os.path.dirname(os.path.abspath(path))
    manifest = read_manifest(parent, legacy_patterns)
    name = os.path.basename(path)
    if manifest is not None and manifest.records(name) and manifest.entries.get(name) != "output":
        raise ValueError(
            f"{path} belongs to the {manifest.kind} in {os.path.dirname(path) or '.'}; write "
            f"elsewhere. Received: {argument}={path!r}"
        )
    if os.path.lexists(path) and not overwrite:
        raise ValueError(f"`{argument}` exists; pass --overwrite to replace it. "
                         f"Received: {argument}={path!r}")
    return manifest


def record_output_file(path, manifest):
    """Record a file written by name into a kmc folder (`check_output_file`'s manifest)."""
    if manifest is not None:
        parent = os.path.dirname(os.path.abspath(os.fspath(path)))
        adopt(parent, manifest)
        record(parent, manifest.kind, [os.path.basename(os.fspath(path))], role="output")


def _top(path):
    return os.path.normpath(path).split(os.sep)[0]


def record(directory, kind, names, role="own"):
    """Record `names` as created by kmc in `directory` (a `kind` directory), before writing them.

    Creates the manifest when missing; `role` "output" marks what a command put into another
    command's directory (kept by that one's `--overwrite`). Atomic, and serialised between
    processes by a short lock, so concurrent commands never lose each other's entries.
    """
    if role not in ROLES:
        raise ValueError(f"`role` must be one of {ROLES}. Received: role={role!r}")
    with _manifest_lock(directory):
        manifest = read_manifest(directory)
        entries = dict(manifest.entries) if manifest is not None else {}
        missing = [name for name in names if entries.get(name) != role and not (
            role == "output" and entries.get(name) == "own")]
        if manifest is not None and not missing:
            return manifest
        entries.update({name: role for name in missing})
        kind = manifest.kind if manifest is not None else kind
        _write_manifest(directory, kind, entries)
        return Manifest(kind, entries)


def adopt(directory, manifest):
    """Write a legacy (inferred) manifest to disk, so the directory is recorded from now on."""
    if manifest is not None and manifest.legacy:
        with _manifest_lock(directory):
            _write_manifest(directory, manifest.kind, manifest.entries)


def remove_owned(directory, manifest, role="own"):
    """Delete the entries `manifest` records with `role` (what kmc wrote) and forget them."""
    names = manifest.owned(role)
    for entry in names:
        for name in visible_entries(directory):  # hidden files (the manifest itself) stay
            if fnmatch.fnmatchcase(name, entry) or fnmatch.fnmatchcase(name, temporary_path(entry)):
                remove_path(os.path.join(directory, name))
    with _manifest_lock(directory):
        current = read_manifest(directory)
        if current is not None:
            entries = {name: r for name, r in current.entries.items() if name not in names}
            _write_manifest(directory, current.kind, entries)
    return names


def _write_manifest(directory, kind, entries):
    record = {"format": MANIFEST_FORMAT, "kind": kind, "entries": dict(sorted(entries.items()))}
    write_text(manifest_path(directory), json.dumps(record, indent=2) + "\n")


@contextlib.contextmanager
def _manifest_lock(directory):
    """A short exclusive lock on the directory itself (flock on its descriptor)."""
    import fcntl

    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


# The locks this process holds: real path -> [descriptor, holds]. A process re-taking a lock it
# holds (`kmc tune` around KerasTuner's search) counts, rather than locking itself out.
_HELD: dict = {}


class DirectoryLock:
    """An exclusive, non-blocking lock on a directory a process writes (see the module doc).

    `acquire` raises `DirectoryBusyError` naming the live holder; the kernel releases the lock
    when the holder ends, so a killed process never leaves it stuck. Re-entrant within a
    process.
    """

    def __init__(self, directory, argument="output_dir"):
        self.directory = os.fspath(directory)
        self.argument = argument
        self._key = None

    @property
    def held(self):
        return self._key is not None

    def acquire(self):
        import fcntl

        if self.held:
            return self
        key = os.path.realpath(self.directory)
        if key in _HELD:
            _HELD[key][1] += 1
            self._key = key
            return self
        path = os.path.join(self.directory, LOCK_FILE)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise DirectoryBusyError(
                f"{self.directory} is being written by another kmc process ({holder}); wait for "
                f"it to end or stop it, or choose another directory. "
                f"Received: {self.argument}={self.directory!r}"
            ) from None
        # The holder's record, written in place: renaming a new file over it would split the lock.
        record = json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "command": shlex.join([os.path.basename(sys.argv[0]) or "python", *sys.argv[1:]]),
            "since": datetime.datetime.now().isoformat(timespec="seconds"),
        }).encode()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record, 0)
        _HELD[key] = [descriptor, 1]
        self._key = key
        return self

    def release(self):
        if self._key is None:
            return
        held = _HELD[self._key]
        held[1] -= 1
        if held[1] == 0:
            os.close(held[0])  # closing releases the flock
            del _HELD[self._key]
        self._key = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def raise_if_busy(directory, argument="output_dir"):
    """Raise `DirectoryBusyError` if another process holds `directory`'s lock; creates nothing
    (a refused command leaves no lock file behind)."""
    import fcntl

    path = os.path.join(directory, LOCK_FILE)
    if os.path.realpath(directory) in _HELD or not os.path.exists(path):
        return
    try:
        descriptor = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read_holder(descriptor)
        raise DirectoryBusyError(
            f"{directory} is being written by another kmc process ({holder}); wait for it to "
            f"end or stop it, or choose another directory. Received: {argument}={os.fspath(directory)!r}"
        ) from None
    finally:
        os.close(descriptor)


def _read_holder(descriptor):
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0).decode())
        return (f"pid {holder['pid']} on {holder['host']} since {holder['since']}: "
                f"{holder['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"
