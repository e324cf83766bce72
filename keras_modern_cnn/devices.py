"""How a run uses its device: what `--jit-compile auto`, `--mixed-precision` (not given) and the
image layout resolve to on this backend and device, from one table; explicit flags win.

`kmc train` prints the choice in one line at the start ("device: 1 CPU device, 2 cores (jax) -
XLA on, float32, channels_last") and records it, with the reasons, in `run.json`. The CPU rows are
measured in BENCHMARKS.md ("What helped"; 2-core CPU, TensorFlow 2.21 / JAX 0.10, Keras 3.15).
"""

import dataclasses
import os
from typing import Optional

import keras

ANY_BACKEND = "*"
# (setting, backend, device) -> (default, reason). Device "gpu": any accelerator.
DEVICE_DEFAULTS = {
    ("jit_compile", "tensorflow", "cpu"): (
        False, "XLA slowed TensorFlow's CPU training 0.60-0.85x (BENCHMARKS.md)"),
    ("jit_compile", "jax", "cpu"): (
        True, "XLA is JAX's compiler: 1.2-2.5x faster than op by op on CPU (BENCHMARKS.md)"),
    ("jit_compile", "torch", "cpu"): (
        False, "torch.compile splits Keras's model at every layer (Layer.__call__ binds its "
        "arguments with inspect.signature, which dynamo cannot trace): minutes of first step, "
        "not faster after (BENCHMARKS.md, PyTorch backend vs torchvision)"),
    ("jit_compile", "tensorflow", "gpu"): (True, "XLA fuses the ops of a step on a GPU"),
    ("jit_compile", "jax", "gpu"): (True, "XLA is JAX's compiler"),
    ("jit_compile", "torch", "gpu"): (
        False, "as on CPU, torch.compile gets one graph per Keras layer (not measured on a GPU)"),
    ("mixed_precision", ANY_BACKEND, "cpu"): (
        False, "no float16/bfloat16 arithmetic on this CPU: mixed_bfloat16 trained 0.26-0.36x "
        "(BENCHMARKS.md)"),
    ("mixed_precision", ANY_BACKEND, "gpu"): (
        True, "tensor cores; bfloat16 (no loss scaling) from compute capability 8.0, else float16"),
    ("data_format", ANY_BACKEND, "cpu"): (
        "channels_last", "Keras's convolutions run NHWC on CPU (TensorFlow's CPU kernels train "
        "only in NHWC, BENCHMARKS.md) and under XLA"),
    ("data_format", ANY_BACKEND, "gpu"): (
        "channels_last", "tensor-core convolutions and XLA run NHWC"),
}
TF_DISTRIBUTE_NO_XLA = "Keras turns XLA off under tf.distribute"
EXPLICIT = "given explicitly"


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
    """The device a run trains on and how: `summary()` is the line `kmc train` prints."""

    backend: str
    device: str  # "cpu" or "gpu"
    count: int  # devices the run trains on (replicas), every process's included
    jit_compile: bool
    mixed_precision: bool
    dtype_policy: str
    data_format: str
    reasons: dict
    cores: Optional[int] = None  # CPU cores this process may use (CPU runs)

    def summary(self):
        """"device: 1 CPU device, 2 cores (jax) - XLA on, float32, channels_last": the devices
        the run trains on (a backend's CPU device uses every core; JAX's host platform can be
        split into several), the cores on a CPU, and the settings."""
        compiler = "torch.compile" if self.backend == "torch" else "XLA"
        plural = "" if self.count == 1 else "s"
        if self.device == "cpu":
            where = f"{self.count} CPU device{plural}, {self.cores} core{'' if self.cores == 1 else 's'}"
        else:
            where = f"{self.count} GPU{plural}"
        return (f"device: {where} ({self.backend}) - {compiler} "
                f"{'on' if self.jit_compile else 'off'}, {self.dtype_policy}, {self.data_format}")

    def to_dict(self):
        return dataclasses.asdict(self)


def device_settings(config, count):
    """The `DeviceSettings` of `config` (a `RunConfig`) on this machine's device, `count` of
    them; call it after the run's distribution has started (JAX sees every process's devices)."""
    backend = keras.config.backend()
    device, capability = detect_device(backend)

    def default(setting):
        key = (setting, backend, device)
        return DEVICE_DEFAULTS.get(key) or DEVICE_DEFAULTS[(setting, ANY_BACKEND, device)]

    reasons = {}
    if config.jit_compile == "auto":
        jit_compile, reasons["jit_compile"] = default("jit_compile")
        if jit_compile and config.strategy in ("mirrored", "multi-worker"):
            jit_compile, reasons["jit_compile"] = False, TF_DISTRIBUTE_NO_XLA
    else:
        jit_compile, reasons["jit_compile"] = config.jit_compile == "on", EXPLICIT
    if config.mixed_precision is None:
        mixed, reasons["dtype_policy"] = default("mixed_precision")
    else:
        mixed, reasons["dtype_policy"] = config.mixed_precision, EXPLICIT
    if not mixed:
        policy = keras.config.dtype_policy().name  # float32 unless set in Python
    elif device == "gpu" and capability is not None and capability >= (8, 0):
        policy = "mixed_bfloat16"
    else:
        policy = "mixed_float16"
    data_format, reasons["data_format"] = default("data_format")
    if keras.config.image_data_format() != data_format:
        data_format, reasons["data_format"] = keras.config.image_data_format(), (
            "Keras's configuration (keras.json or keras.config.set_image_data_format) wins")
    return DeviceSettings(
        backend, device, count, jit_compile, mixed, policy, data_format, reasons,
        cores=cpu_cores() if device == "cpu" else None,
    )


def cpu_cores():
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def detect_device(backend):
    """`("cpu", None)`, or `("gpu", compute capability as (major, minor) or None)`."""
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform == "cpu":
            return "cpu", None
        capability = getattr(first, "compute_capability", None)  # "9.0" on CUDA
        return "gpu", tuple(int(part) for part in capability.split(".")) if capability else None
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return "cpu", None
        return "gpu", tuple(torch.cuda.get_device_capability(0))
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu", None
    return "gpu", tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
