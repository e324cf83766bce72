"""Fetching pretrained weights with the ecosystem's own clients, where those clients cache.

- https URLs: `keras.utils.get_file` (progress bar, cache in `$KERAS_HOME/models`, default
  `~/.keras/models`, shared with keras.applications). keras.applications' md5 hashes are checked
  by `get_file` itself (a bad cached file is fetched again); torchvision's file names carry the
  first hex digits of the file's SHA-256 (what `torch.hub`'s `check_hash` verifies), checked here
  on every use, so a download cut short is fetched again, never loaded. A file torchvision already downloaded (`$TORCH_HOME/hub/checkpoints`) is used
  in place.
- `hf://owner/repo[/path/in/repo][@revision]`: `huggingface_hub.hf_hub_download` (its cache,
  its progress bar, `HF_HUB_OFFLINE=1` honoured). Without a path, the repository's
  `model.safetensors` (timm's), else its `pytorch_model.bin`.

Without a network, each fails at once with one line naming the address and what to do.
"""

import contextlib
import hashlib
import os
import socket
from typing import Optional

from keras_modern_cnn.weights.presets import Preset

HF_PREFIX = "hf://"
HF_DEFAULT_FILES = ("model.safetensors", "pytorch_model.bin")
# Seconds a silent connection may stall before the download fails (the client's own default
# is no limit at all).
CONNECT_TIMEOUT = 30


def keras_cache_dir() -> str:
    """Where `keras.utils.get_file` caches: `$KERAS_HOME` (read now, not at Keras's import),
    else `~/.keras`; created if missing (`get_file` falls back to /tmp for a missing one)."""
    path = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    os.makedirs(path, exist_ok=True)
    return path


def torch_hub_checkpoints() -> str:
    """torchvision's download cache (`torch.hub.get_dir()/checkpoints`), without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch"
    )
    return os.path.join(home, "hub", "checkpoints")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DownloadError(ConnectionError):
    """A file could not be fetched (no network, an HTTP error, a server refusing)."""


@contextlib.contextmanager
def _connect_timeout(seconds):
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_url(url: str, *, file_hash: Optional[str] = None, hash_algorithm: str = "md5",
              label: Optional[str] = None) -> str:
    """The local path of `url`, downloaded once into Keras's cache (`keras_cache_dir()/models`).

    `file_hash` is a full md5 (checked by `keras.utils.get_file`) or, with
    `hash_algorithm="sha256"`, a full hash or a prefix of one (torchvision's file names); a
    file whose hash differs is deleted and reported.
    """
    import keras

    name = os.path.basename(url)
    label = label or url
    prefix = file_hash if hash_algorithm == "sha256" else None
    target = os.path.join(keras_cache_dir(), "models", name)
    if prefix is not None:
        cached = os.path.join(torch_hub_checkpoints(), name)
        if os.path.isfile(cached) and sha256_of(cached).startswith(prefix):
            return cached
        if os.path.isfile(target) and not sha256_of(target).startswith(prefix):
            _remove(target)  # a download cut short (kill -9): fetched again below
    try:
        with _connect_timeout(CONNECT_TIMEOUT):
            path = keras.utils.get_file(
                name, url, cache_subdir="models", cache_dir=keras_cache_dir(),
                file_hash=None if prefix is not None else file_hash,
                hash_algorithm=hash_algorithm if prefix is None else "auto",
            )
    except ValueError as error:  # get_file's hash check: the file stays; remove it
        _remove(target)
        raise ValueError(f"{_one_line(error)} The file was deleted. Received: weights={label!r}") from None
    except OSError as error:  # the cache's disk (full, read-only), not the network
        raise OSError(
            f"Could not save {url} to {os.path.dirname(target)} ({_one_line(error)}). "
            f"Received: weights={label!r}"
        ) from None
    except Exception as error:  # get_file raises a bare Exception for URL errors
        raise DownloadError(
            f"Could not download {url} ({_one_line(error)}). Check the network (or a proxy), or "
            f"fetch the file elsewhere and pass its path as `weights`. Received: weights={label!r}"
        ) from None
    if prefix is not None:
        actual = sha256_of(path)
        if not actual.startswith(prefix):
            _remove(path)
            raise ValueError(
                f"The file downloaded from {url} is corrupt or not the published one: its "
                f"SHA-256 starts with {actual[:len(prefix)]}, the source publishes {prefix}. "
                f"The file was deleted; try again. Received: weights={label!r}"
            )
    return path


def parse_hub_reference(reference: str) -> tuple[str, Optional[str], Optional[str]]:
    """(repo_id, filename or None, revision or None) of `hf://owner/repo[/file][@revision]`."""
    body = reference[len(HF_PREFIX):]
    body, _, revision = body.partition("@")
    parts = [part for part in body.split("/") if part]
    if not reference.startswith(HF_PREFIX) or len(parts) < 2:
        raise ValueError(
            "A Hugging Face reference reads 'hf://owner/repo', 'hf://owner/repo/file' or "
            f"'hf://owner/repo@revision'. Received: weights={reference!r}"
        )
    filename = "/".join(parts[2:]) or None
    return f"{parts[0]}/{parts[1]}", filename, revision or None


def fetch_hub(reference: str) -> str:
    """The local path of a Hugging Face Hub file (`hf://...`), through `huggingface_hub`."""
    repo_id, filename, revision = parse_hub_reference(reference)
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:
        raise ValueError(
            "`hf://` weights need the `huggingface_hub` package: pip install "
            f"\"keras-modern-cnn[weights]\". Received: weights={reference!r}"
        ) from None
    candidates = [filename] if filename is not None else list(HF_DEFAULT_FILES)
    unreachable = False
    for candidate in candidates:
        try:
            return huggingface_hub.hf_hub_download(repo_id, candidate, revision=revision)
        except LocalEntryNotFoundError:  # offline, or no network: and not in the cache
            unreachable = True
        except EntryNotFoundError:  # the Hub answered: no such file in the repository
            pass
        except Exception as error:  # an unknown or gated repository, a server error
            raise DownloadError(
                f"Could not fetch {candidate} of {repo_id} from the Hugging Face Hub "
                f"({_one_line(error)[:300]}). Received: weights={reference!r}"
            ) from None
    files = " nor ".join(candidates)
    if unreachable:
        cause = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE
                 else "the Hub could not be reached")
        raise DownloadError(
            f"Could not fetch {files} of {repo_id} from the Hugging Face Hub ({cause}, and the "
            "client's cache does not hold it). Check the network, or download it elsewhere "
            f"(`huggingface-cli download {repo_id}`) and pass the file's path as `weights`. "
            f"Received: weights={reference!r}"
        )
    raise ValueError(f"The Hub repository {repo_id} has no {files}. Received: weights={reference!r}")


def fetch(preset: Preset, *, include_top: bool = True) -> str:
    """The local path of a preset's file (keras.applications' file without the top when
    `include_top=False` and it has one)."""
    label = preset.qualified_name
    if preset.url.startswith(HF_PREFIX):
        return fetch_hub(preset.url)
    if not include_top and preset.url_notop is not None:
        return fetch_url(preset.url_notop, file_hash=preset.file_hash_notop,
                         hash_algorithm=preset.hash_algorithm, label=label)
    return fetch_url(preset.url, file_hash=preset.file_hash, hash_algorithm=preset.hash_algorithm,
                     label=label)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__
