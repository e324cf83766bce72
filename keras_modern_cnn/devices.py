"""How a run uses its device: what `--jit-compile auto`, `--mixed-precision` (not given) and the
image layout resolve to on this backend and device, from one table; explicit flags win.

`kmc train` prints the choice in one line at the start ("device: 1 CPU device, 2 cores (jax) -
XLA on, float32, channels_last") and records it, with the reasons and the CPU's bfloat16
features, in `run.json`. The CPU rows are measured in BENCHMARKS.md ("What helped"; 2-core CPU,
TensorFlow 2.21 / JAX 0.10, Keras 3.15; "Mixed precision on CPUs with bfloat16 arithmetic").

CPUs differ in what precision pays: with bfloat16 arithmetic (AMX, AVX512_BF16; `cpu_features`)
mixed precision means `mixed_bfloat16`, and it is the default where it trained faster than
float32 on that backend with those features; elsewhere float32. `KMC_CPU_FEATURES` overrides
the detection (a comma list; empty: none), e.g. to reproduce a run of another machine (the
test suite sets it empty, so its numerics do not depend on the CI's CPU).
"""

import dataclasses
import os
from typing import Optional

import keras

ANY_BACKEND = "*"
# The CPU flags (Linux /proc/cpuinfo names) of bfloat16 arithmetic, most capable first; a CPU
# with one of them is looked up as device "cpu:FLAG" before "cpu".
BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")
CPU_FEATURES_VARIABLE = "KMC_CPU_FEATURES"
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
    ("mixed_precision", "tensorflow", "cpu:amx_bf16"): (
        True, "amx_bf16: mixed_bfloat16 trained ResNet50 1.34x (best) / 1.64x (median) float32 on "
        "TensorFlow (BENCHMARKS.md)"),
    ("mixed_precision", "tensorflow", "cpu:avx512_bf16"): (
        True, "avx512_bf16: mixed_bfloat16 trained ResNet50 1.05x / 1.16x and DenseNet121 1.56x / "
        "1.47x (best / median) float32 on TensorFlow (BENCHMARKS.md)"),
    ("mixed_precision", "jax", "cpu:avx512_bf16"): (
        False, "avx512_bf16: mixed_bfloat16 trained ResNet50 0.94x and DenseNet121 1.04x (best) "
        "float32 under XLA:CPU (BENCHMARKS.md)"),
    ("mixed_precision", "torch", "cpu:avx512_bf16"): (
        False, "avx512_bf16: mixed_bfloat16 trained ResNet50 0.78x and DenseNet121 0.87x (best) "
        "float32 on PyTorch's CPU build (BENCHMARKS.md)"),
    ("mixed_precision", ANY_BACKEND, "cpu:amx_bf16"): (
        False, "amx_bf16: bfloat16 arithmetic (AMX), but mixed_bfloat16 not measured faster than "
        "float32 on this backend"),
    ("mixed_precision", ANY_BACKEND, "cpu:avx512_bf16"): (
        False, "avx512_bf16: bfloat16 arithmetic, but mixed_bfloat16 not measured faster than "
        "float32 on this backend"),
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
    cpu_features: tuple = ()  # of BF16_CPU_FEATURES, on a CPU
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
    features = cpu_features() if device == "cpu" else ()
    # A CPU with bfloat16 arithmetic is looked up as "cpu:FLAG" first, then as any CPU.
    devices = [f"cpu:{features[0]}", "cpu"] if features else [device]

    def default(setting):
        for name in devices:
            for key in ((setting, backend, name), (setting, ANY_BACKEND, name)):
                if key in DEVICE_DEFAULTS:
                    return DEVICE_DEFAULTS[key]
        raise KeyError((setting, backend, device))

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
    elif features or (device == "gpu" and capability is not None and capability >= (8, 0)):
        policy = "mixed_bfloat16"  # bfloat16 arithmetic, no loss scaling
    else:
        policy = "mixed_float16"
    data_format, reasons["data_format"] = default("data_format")
    if keras.config.image_data_format() != data_format:
        data_format, reasons["data_format"] = keras.config.image_data_format(), (
            "Keras's configuration (keras.json or keras.config.set_image_data_format) wins")
    return DeviceSettings(
        backend, device, count, jit_compile, mixed, policy, data_format, reasons, features,
        cores=cpu_cores() if device == "cpu" else None,
    )


def cpu_cores():
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_features():
    """This CPU's bfloat16 features (of `BF16_CPU_FEATURES`, most capable first): from
    `KMC_CPU_FEATURES` when set, else the flags of /proc/cpuinfo (Linux; none elsewhere)."""
    given = os.environ.get(CPU_FEATURES_VARIABLE)
    if given is not None:
        flags = {flag.strip().lower() for flag in given.split(",") if flag.strip()}
    else:
        try:
            with open("/proc/cpuinfo") as handle:
                flags = {flag for line in handle if line.startswith("flags")
                         for flag in line.split(":", 1)[1].split()}
        except OSError:
            flags = set()
    return tuple(flag for flag in BF16_CPU_FEATURES if flag in flags)


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
