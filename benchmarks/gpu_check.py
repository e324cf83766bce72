"""GPU check (issue 17): one prepared run that proves the zoo on a GPU and measures it.

Four parts (five on the torch backend), each recorded against the issue's goals:

1. precision: every registered model's tiny configuration, forward and backward (the loss's
   gradient for every trainable variable) under `mixed_bfloat16` and `mixed_float16`; the
   outputs, the loss and every gradient must be finite.
2. chapter: the seeds' chapter models at their d2l settings (`keras_modern_cnn.recipes`: input
   size, batch size, SGD learning rate; 1-channel Fashion-MNIST-shaped synthetic images, 10
   classes) trained with `fit` for a fixed number of steps; examples/sec next to the seeds'
   printed GPU figures (goal: at least 10x).
3. twins: ResNet50 and DenseNet121 at 224x224, ours against keras.applications, interleaved in
   one process (`_timing.interleaved_throughput`), mixed precision, XLA on, the largest batch
   <= 256 that fits (goals: ResNet50 >= 2,500 img/s on an H100; ours >= 1.00x Keras's).
4. memory: peak device memory of a DenseNet121 and a DenseNet201 training step with and without
   `memory_efficient=True`, and the step-time ratio (goals: <= 0.6x and <= 0.5x, <= 1.3x time).
   TensorFlow resets its peak counter in process; JAX cannot, so on a GPU each configuration
   runs in a fresh process there (on CPU, JAX reports XLA's buffer assignment of the step).
5. torchvision (torch backend only, issue 31): ResNet50 and DenseNet121 at 224x224, ours against
   torchvision's NCHW and channels_last models, training and inference, float32, eager,
   interleaved (`benchmarks/torch_native.py`; goal: ours >= 0.90x the faster of the two).

Writes `gpu_check_<backend>.json` and `gpu_check_<backend>.md` (one table) to `--output-dir`,
after printing the device and backend. `--budget-seconds` bounds the whole run: each part may
run until its share of the budget is spent (time a part leaves unused goes to the next), is
checked before each model, and what the budget leaves out is recorded as skipped with the
reason. `--smoke` runs every part on small stand-ins, in under a minute on CPU (CI).

    KERAS_BACKEND=jax python benchmarks/gpu_check.py             # on a GPU, < 8 minutes
    KERAS_BACKEND=tensorflow python benchmarks/gpu_check.py --smoke
"""

import os

# Before any backend initialises. JAX allocates on demand (no 75 % preallocation), so the
# processes measuring memory find the device free and the peak counts what ran; TensorFlow
# grows its pool instead of taking the whole card.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _timing import interleaved_throughput, random_batch, ratio_summary  # noqa: E402
from applications import TWINS  # noqa: E402  (benchmarks/applications.py)
from densenet_memory import jax_compiled_step, jax_step_memory  # noqa: E402
import keras_modern_cnn as kmc  # noqa: E402
from keras_modern_cnn.recipes import D2L_RECIPES  # noqa: E402

PARTS = ("precision", "chapter", "twins", "memory", "torchvision")
# Run order and the cumulative share of the budget by the end of each part (time a part leaves
# unused flows to the next). Memory runs second: its fresh processes then find the card nearly
# free (a JAX process keeps the memory its steps used in its allocator's pool). The torchvision
# comparison (part 5) runs on the torch backend only, last.
PART_DEADLINES = {"precision": 0.15, "memory": 0.45, "chapter": 0.65, "twins": 1.0}
TORCH_PART_DEADLINES = {"precision": 0.15, "memory": 0.4, "chapter": 0.55, "twins": 0.8,
                        "torchvision": 1.0}
POLICIES = ("mixed_bfloat16", "mixed_float16")
CLASSES = 10
MIB = 2**20

# The seeds' printed GPU examples/sec (d2l chapter 8, MXNet, one GPU), at the recipe settings.
# BN-LeNet: the faster of the book's two runs (framework BatchNorm; from scratch 16,276.8).
SEED_EXAMPLES_PER_SECOND = {
    "alexnet": 3985.4, "vgg11": 1780.0, "nin": 2887.1, "googlenet": 1887.9,
    "bn_lenet": 27746.0, "resnet18": 4668.6, "densenet_d2l": 4786.4,
}
CHAPTER_GOAL = 10.0  # x the seeds' examples/sec
RESNET50_GOAL = 2500.0  # img/s, ResNet-50 224x224 mixed precision on an H100
TWIN_GOAL = 1.0  # ours / keras.applications
TORCHVISION_GOAL = 0.9  # ours / the faster of torchvision NCHW and channels_last (issue 31)
MEMORY_GOALS = {"densenet121": 0.6, "densenet201": 0.5}  # memory-efficient / plain peak
MEMORY_TIME_GOAL = 1.3  # memory-efficient / plain step time
VARIANTS = {"plain": False, "memory_efficient": True}

# Tiny configurations per family, the same as tests/test_contract.py's GOLDEN rows (which keep
# theirs per model beside the golden parameter counts; tests are not importable from here).
# Channels come from the model's default input; a new family must add its row here.
TINY = {
    "lenet": dict(side=28),
    "alexnet": dict(side=67, width_ratio=1 / 16, dense_units=(16, 16)),
    "vgg": dict(side=32, width_ratio=1 / 16, dense_units=(16, 16)),
    "nin": dict(side=67, width_ratio=1 / 16),
    "googlenet": dict(side=32, width_ratio=1 / 4),
    "resnet": dict(side=32, width_ratio=1 / 16),
    "densenet": dict(side=32, width_ratio=1 / 8),
    "unet": dict(side=32, width_ratio=1 / 16),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a run measures; `FULL` on a GPU, `SMOKE` on small stand-ins for CI."""

    precision_models: tuple  # () = every registered model
    chapter_models: tuple
    chapter_tiny: bool  # tiny configurations at batch `chapter_batch` instead of the d2l ones
    chapter_batch: int
    chapter_steps: int  # steps of the timed epoch (a first epoch warms up and compiles)
    twin_models: tuple
    twin_image_size: int
    twin_max_batch: int
    twin_rounds: int
    twin_steps: int
    memory_models: tuple
    memory_image_size: int
    memory_width_ratio: float
    memory_batch: int
    memory_steps: int
    torchvision_models: tuple = ("resnet50", "densenet121")
    torchvision_image_size: int = 224
    torchvision_batch: int = 64
    torchvision_rounds: int = 3
    torchvision_steps: int = 5
    policy: str = "mixed_bfloat16"  # parts 2-4; part 1 runs both mixed policies
    jit_compile: object = True  # True (XLA) or "auto" (Keras: XLA on JAX, not on TF's CPU)
    budget_seconds: float = 450.0


FULL = Settings(
    precision_models=(), chapter_models=tuple(D2L_RECIPES), chapter_tiny=False,
    chapter_batch=0, chapter_steps=30, twin_models=("resnet50", "densenet121"),
    twin_image_size=224, twin_max_batch=256, twin_rounds=3, twin_steps=5,
    memory_models=("densenet121", "densenet201"), memory_image_size=224,
    memory_width_ratio=1.0, memory_batch=64, memory_steps=5,
)
# The cheapest model of each part: BN-LeNet against itself with Keras's BatchNormalization
# stands in for the twins and the narrow d2l DenseNet for DenseNet121/201, whose compilation
# alone takes minutes on 2 cores (batch 16: TensorFlow's CPU allocator counts only large
# buffers); float32 and Keras's jit choice, as XLA:CPU compiles slowly.
SMOKE = Settings(
    precision_models=("bn_lenet",), chapter_models=("bn_lenet",), chapter_tiny=True,
    chapter_batch=4, chapter_steps=2, twin_models=("bn_lenet",), twin_image_size=32,
    twin_max_batch=4, twin_rounds=2, twin_steps=1, memory_models=("densenet_d2l",),
    memory_image_size=32, memory_width_ratio=1 / 8, memory_batch=16, memory_steps=1,
    policy="float32", jit_compile="auto", budget_seconds=600.0,
    torchvision_models=("resnet50",), torchvision_image_size=32, torchvision_batch=2,
    torchvision_rounds=1, torchvision_steps=1,
)


def device_info():
    """Backend, its version, and the device the run uses (the first accelerator, else CPU)."""
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return dict(backend=backend, backend_version=jax.__version__, platform=device.platform,
                    device=device.device_kind, device_count=jax.device_count())
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") \
            if gpus else "cpu"
        return dict(backend=backend, backend_version=tf.__version__,
                    platform="gpu" if gpus else "cpu", device=name, device_count=len(gpus) or 1)
    import torch

    gpus = torch.cuda.device_count()
    return dict(backend=backend, backend_version=torch.__version__,
                platform="gpu" if gpus else "cpu",
                device=torch.cuda.get_device_name(0) if gpus else "cpu", device_count=gpus or 1)


@contextlib.contextmanager
def dtype_policy(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def fresh_session():
    """Drop the previous model's graph and buffers. Not `keras.utils.set_random_seed`: it
    imports TensorFlow whenever TensorFlow is installed, seconds per process on JAX; the data
    is seeded (`random_batch`), the initial weights need not be."""
    keras.backend.clear_session()
    gc.collect()


def tiny_kwargs(name, channels=None):
    """Builder kwargs of `name`'s tiny configuration (see `TINY`)."""
    spec = kmc.get_spec(name)
    tiny = dict(TINY[spec.family])
    side = tiny.pop("side")
    channels = spec.default_input_shape[-1] if channels is None else channels
    return dict(input_shape=(side, side, channels), **tiny)


def sparse_labels(spec, batch_size, image_shape):
    """Seeded integer labels: one per image, or one per pixel for segmentation."""
    rng = np.random.default_rng(1)
    shape = (batch_size, *image_shape[:-1]) if spec.task == "segmentation" else (batch_size,)
    return rng.integers(0, CLASSES, size=shape)


def compiled(model, learning_rate, jit_compile):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        jit_compile=jit_compile,
    )
    return model


def json_number(value):
    """A finite float, or its name ("nan", "inf") where JSON has no number for it."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def to_float32(tensor):
    return keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32"))


def out_of_memory(error):
    text = f"{type(error).__name__} {error}"
    return any(mark in text for mark in ("RESOURCE_EXHAUSTED", "ResourceExhausted", "OOM",
                                         "out of memory"))


def error_text(error):
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}" if str(error) \
        else type(error).__name__


# --- part 1: precision ------------------------------------------------------------------


def loss_and_gradients(model, images, labels):
    """Training-mode outputs, loss and the gradient of every trainable variable."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    if keras.config.backend() == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_and_outputs(trainable):
            outputs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
            return loss_fn(labels, outputs), outputs

        step = jax.jit(jax.value_and_grad(loss_and_outputs, has_aux=True))
        (loss, outputs), gradients = step([v.value for v in model.trainable_variables])
        return outputs, loss, gradients
    if keras.config.backend() == "torch":
        import torch

        outputs = model(images, training=True)
        loss = loss_fn(labels, outputs)
        trainable = [v.value for v in model.trainable_variables]
        return outputs, loss, torch.autograd.grad(loss, trainable, allow_unused=True)
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = loss_fn(labels, outputs)
    return outputs, loss, tape.gradient(loss, model.trainable_variables)


def precision_item(name, policy):
    spec = kmc.get_spec(name)
    kwargs = tiny_kwargs(name)
    fresh_session()
    with dtype_policy(policy):
        model = kmc.get_model(name, classes=CLASSES, **kwargs)
    images = random_batch(2, kwargs["input_shape"][0], CLASSES, kwargs["input_shape"][-1])[0]
    labels = sparse_labels(spec, 2, kwargs["input_shape"])
    start = time.perf_counter()
    outputs, loss, gradients = loss_and_gradients(model, images, labels)
    missing = sum(g is None for g in gradients)
    gradients = [to_float32(g) for g in gradients if g is not None]
    finite = (
        missing == 0
        and bool(np.isfinite(to_float32(outputs)).all())
        and bool(np.isfinite(to_float32(loss)))
        and all(np.isfinite(g).all() for g in gradients)
    )
    return dict(
        model=name, policy=policy, finite=finite,
        output_dtype=keras.backend.standardize_dtype(outputs.dtype),
        loss=json_number(to_float32(loss)), missing_gradients=missing,
        gradient_norm=json_number(math.sqrt(sum(float(np.sum(g.astype("float64") ** 2))
                                                for g in gradients))),
        seconds=round(time.perf_counter() - start, 2),
    )


def precision_part(settings, deadline):
    names = settings.precision_models or tuple(kmc.list_models())
    return [
        measure_or_skip(deadline, dict(model=name, policy=policy), precision_item, name, policy)
        for name in names for policy in POLICIES
    ]


# --- part 2: the seeds' chapter models ------------------------------------------------------


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each training epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def chapter_item(name, settings):
    recipe = D2L_RECIPES[name]
    spec = kmc.get_spec(name)
    if settings.chapter_tiny:
        kwargs, batch_size = tiny_kwargs(name, channels=1), settings.chapter_batch
    else:
        side, batch_size = recipe["image_size"], recipe["batch_size"]
        kwargs = dict(input_shape=(side, side, 1))
        if "width_ratio" in recipe:
            kwargs["width_ratio"] = recipe["width_ratio"]
    fresh_session()
    with dtype_policy(settings.policy):
        model = compiled(kmc.get_model(name, classes=CLASSES, **kwargs),
                         recipe["learning_rate"], settings.jit_compile)
    images = random_batch(batch_size, kwargs["input_shape"][0], CLASSES, 1)[0]
    images = np.concatenate([images] * settings.chapter_steps)
    labels = sparse_labels(spec, len(images), kwargs["input_shape"])
    timer = EpochTimer()
    model.fit(images, labels, batch_size=batch_size, epochs=2, shuffle=False, verbose=0,
              callbacks=[timer])
    examples_per_second = len(images) / timer.seconds[1]
    seeds = SEED_EXAMPLES_PER_SECOND[name]
    return dict(
        model=name, image_size=kwargs["input_shape"][0], batch_size=batch_size,
        steps=settings.chapter_steps, examples_per_second=round(examples_per_second, 1),
        seeds_examples_per_second=seeds, ratio_to_seeds=round(examples_per_second / seeds, 3),
        goal_ratio=CHAPTER_GOAL, meets_goal=examples_per_second >= CHAPTER_GOAL * seeds,
        first_epoch_seconds=round(timer.seconds[0], 2),
    )


def chapter_part(settings, deadline):
    return [measure_or_skip(deadline, dict(model=name), chapter_item, name, settings)
            for name in settings.chapter_models]


# --- part 3: ours vs keras.applications ----------------------------------------------------


def reference_model(name, **kwargs):
    """keras.applications' twin of `name`, else `name` built with Keras's BatchNormalization."""
    if name in TWINS:
        return TWINS[name](weights=None, **kwargs)
    with kmc.batch_norm_implementation("keras"):
        return kmc.get_model(name, **kwargs)


def twin_run(name, batch_size, settings):
    """Interleaved training throughput of ours and the reference `name` at `batch_size`."""
    side = settings.twin_image_size
    fresh_session()
    shape = (side, side, 3)
    with dtype_policy(settings.policy):
        models = {
            "ours": kmc.get_model(name, input_shape=shape, classes=1000),
            "keras": reference_model(name, input_shape=shape, classes=1000),
        }
    images, labels = random_batch(batch_size, side, 1000)
    images, labels = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels)
    first_step = {}
    for label, model in models.items():
        compiled(model, 0.01, settings.jit_compile)
        start = time.perf_counter()
        model.train_on_batch(images, labels)  # traces and compiles
        first_step[label] = round(time.perf_counter() - start, 2)
    results = interleaved_throughput(
        {label: (lambda m=m: m.train_on_batch(images, labels)) for label, m in models.items()},
        rounds=settings.twin_rounds, steps=settings.twin_steps, batch_size=batch_size, warmup=1,
    )
    median, low, high = ratio_summary(results, "ours", "keras")
    return dict(
        ours_img_per_s=round(statistics.median(results["ours"]), 1),
        keras_img_per_s=round(statistics.median(results["keras"]), 1),
        ratio_median=round(median, 3), ratio_min=round(low, 3), ratio_max=round(high, 3),
        first_step_seconds=first_step,
    )


def twin_item(name, settings):
    """The largest batch <= `twin_max_batch` (halving on out-of-memory) and its figures."""
    batch_size, oom = settings.twin_max_batch, []
    while True:
        try:
            figures = twin_run(name, batch_size, settings)
            break
        except Exception as error:  # the backends raise different out-of-memory types
            if not out_of_memory(error) or batch_size == 1:
                raise
            oom.append(batch_size)
            batch_size //= 2
    goals = dict(ratio=TWIN_GOAL, **({"img_per_s_h100": RESNET50_GOAL} if name == "resnet50"
                                     else {}))
    return dict(model=name, image_size=settings.twin_image_size, batch_size=batch_size,
                out_of_memory_batches=oom, **figures, goals=goals,
                meets_ratio_goal=figures["ratio_median"] >= TWIN_GOAL)


def twins_part(settings, deadline):
    return [measure_or_skip(deadline, dict(model=name), twin_item, name, settings)
            for name in settings.twin_models]


# --- part 4: DenseNet memory ------------------------------------------------------------


def memory_config(name, memory_efficient, settings):
    """Peak device memory and seconds per step of one DenseNet training configuration.

    TensorFlow: `train_on_batch` steps, peak from its allocator after a reset. JAX: the jitted
    gradient step of `densenet_memory.py` (forward and backward; no optimizer update), compiled
    once; peak from the device allocator (a fresh process) or, on CPU, XLA's buffer assignment.
    PyTorch: `train_on_batch` steps in a fresh process; peak from the CUDA caching allocator,
    or on CPU the process's peak resident memory (includes the libraries: a weaker ratio).
    """
    side, batch_size = settings.memory_image_size, settings.memory_batch
    fresh_session()
    kwargs = dict(input_shape=(side, side, 3), classes=1000, memory_efficient=memory_efficient)
    if settings.memory_width_ratio != 1.0:
        kwargs["width_ratio"] = settings.memory_width_ratio
    with dtype_policy(settings.policy):
        model = kmc.get_model(name, **kwargs)
    images, labels = random_batch(batch_size, side, 1000)
    images, labels = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels)
    platform = device_info()["platform"]
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        device = "GPU:0" if platform == "gpu" else "CPU:0"
        compiled(model, 0.01, settings.jit_compile)
        tf.config.experimental.reset_memory_stats(device)

        def step():
            model.train_on_batch(images, labels)  # returns host values: synchronises

        def peak():
            return tf.config.experimental.get_memory_info(device)["peak"], (
                f"TensorFlow allocator peak ({device}) over train_on_batch steps")
    elif keras.config.backend() == "torch":
        import resource

        import torch

        compiled(model, 0.01, settings.jit_compile)
        if platform == "gpu":
            torch.cuda.reset_peak_memory_stats()

        def step():
            model.train_on_batch(images, labels)

        def peak():
            if platform == "gpu":
                return torch.cuda.max_memory_allocated(), (
                    "PyTorch CUDA allocator peak over train_on_batch steps, fresh process")
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, (
                "peak resident memory of a fresh process (CPU) over train_on_batch steps")
    else:
        import jax

        executable, arguments = jax_compiled_step(model, images, labels)

        def step():
            jax.block_until_ready(executable(*arguments))

        def peak():
            if platform == "gpu":
                return jax.local_devices()[0].memory_stats()["peak_bytes_in_use"], (
                    "JAX device peak_bytes_in_use over gradient steps, fresh process")
            return jax_step_memory(executable)["step_mib"] * MIB, (
                "XLA:CPU buffer assignment of the jitted gradient step")
    for _ in range(2):  # trace, compile and warm up
        step()
    start = time.perf_counter()
    for _ in range(settings.memory_steps):
        step()
    step_seconds = (time.perf_counter() - start) / settings.memory_steps
    peak_bytes, source = peak()
    return dict(peak_mib=round(peak_bytes / MIB, 3), step_seconds=round(step_seconds, 4),
                source=source)


def memory_config_in_child(name, memory_efficient, settings, deadline):
    """`memory_config` in a fresh process (see `memory_part`)."""
    job = dict(name=name, memory_efficient=memory_efficient,
               settings=dataclasses.asdict(settings))
    timeout = max(deadline - time.monotonic(), 1.0) + 15.0
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child", json.dumps(job)],
        capture_output=True, text=True, timeout=timeout,
    )
    lines = [line for line in child.stdout.splitlines() if line.startswith(CHILD_PREFIX)]
    if child.returncode != 0 or not lines:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory child exited with {child.returncode}: {tail[:300]}")
    return json.loads(lines[-1][len(CHILD_PREFIX):])


CHILD_PREFIX = "GPU_CHECK_CHILD "


def memory_part(settings, deadline):
    # JAX on a GPU cannot reset its peak counter, and a process's peak resident memory (torch
    # on CPU) never goes down: one fresh process per configuration.
    fresh_process = keras.config.backend() == "torch" or (
        keras.config.backend() == "jax" and device_info()["platform"] == "gpu")
    measure = memory_config_in_child if fresh_process else (
        lambda name, flag, settings, deadline: memory_config(name, flag, settings))
    items = []
    for name in settings.memory_models:
        figures = {
            variant: measure_or_skip(deadline, {}, measure, name, flag, settings, deadline)
            for variant, flag in VARIANTS.items()
        }
        done = all(figures[variant]["status"] == "done" for variant in VARIANTS)
        item = dict(model=name, image_size=settings.memory_image_size,
                    batch_size=settings.memory_batch, **figures,
                    status="done" if done else "incomplete")
        if done and not figures["plain"]["peak_mib"] > 0:
            item.update(status="incomplete", reason="the allocator reported no peak")
        elif done:
            plain, efficient = figures["plain"], figures["memory_efficient"]
            item["memory_ratio"] = round(efficient["peak_mib"] / plain["peak_mib"], 3)
            item["time_ratio"] = round(efficient["step_seconds"] / plain["step_seconds"], 3)
            goal = MEMORY_GOALS.get(name)
            item["goals"] = dict(memory_ratio=goal, time_ratio=MEMORY_TIME_GOAL)
            item["meets_goal"] = None if goal is None else (
                item["memory_ratio"] <= goal and item["time_ratio"] <= MEMORY_TIME_GOAL)
        items.append(item)
    return items


# --- part 5: ours vs torchvision on the torch backend (issue 31) -------------------------


def torchvision_item(name, settings):
    """Training and inference of ours against torchvision's NCHW and channels_last models,
    interleaved (`benchmarks/torch_native.py`), float32, eager (Keras's default on torch)."""
    import torch

    import torch_native  # benchmarks/torch_native.py; imports torchvision on a CPU torch too

    device = "cuda" if torch.cuda.is_available() else "cpu"
    fresh_session()
    candidates = ("ours", *torch_native.REFERENCES)
    runs = torch_native.runners(name, settings.torchvision_image_size, candidates, 1000,
                                settings.torchvision_batch, device=device)
    item = dict(model=name, image_size=settings.torchvision_image_size,
                batch_size=settings.torchvision_batch, device=device, goal=TORCHVISION_GOAL)
    for mode in torch_native.MODES:
        torch_native.set_mode(runs, mode)
        results = torch_native.interleaved(
            {c: (run.train_step if mode == "train" else run.predict) for c, run in runs.items()},
            rounds=settings.torchvision_rounds, steps=settings.torchvision_steps,
            batch_size=settings.torchvision_batch, warmup=1,
        )["wall"]
        report = torch_native.summary(results, candidates)
        median, low, high = report["ours/tv_best"]
        item[mode] = dict(ratio_median=median, ratio_min=low, ratio_max=high,
                          **{key: value for key, value in report.items() if "img_per_s" in key})
    item["meets_goal"] = all(item[mode]["ratio_median"] >= TORCHVISION_GOAL
                             for mode in torch_native.MODES)
    return item


def torchvision_part(settings, deadline):
    return [measure_or_skip(deadline, dict(model=name), torchvision_item, name, settings)
            for name in settings.torchvision_models]


# --- running, recording --------------------------------------------------------------------


def measure_or_skip(deadline, identity, function, *args):
    """`function(*args)`, or why not: the budget was spent, or the error it raised."""
    if time.monotonic() >= deadline:
        return dict(identity, status="skipped", reason="time budget spent")
    try:
        return dict(function(*args), status="done")
    except subprocess.TimeoutExpired:
        return dict(identity, status="skipped", reason="time budget spent while running")
    except Exception as error:
        return dict(identity, status="error", reason=error_text(error))


PART_FUNCTIONS = {"precision": precision_part, "chapter": chapter_part, "twins": twins_part,
                  "memory": memory_part, "torchvision": torchvision_part}
PART_TITLES = {
    "precision": "1. tiny models, forward + backward, mixed precision: finite",
    "chapter": f"2. d2l chapter models, examples/sec vs the seeds' GPU figures (goal >= {CHAPTER_GOAL:g}x)",
    "twins": "3. ours vs keras.applications, training, mixed precision, XLA",
    "memory": "4. DenseNet peak training memory, memory_efficient=True vs plain",
    "torchvision": f"5. PyTorch backend: ours vs torchvision (the faster of NCHW and "
                   f"channels_last), float32, eager (goal >= {TORCHVISION_GOAL:.2f}x)",
}


def run(settings, parts):
    start = time.monotonic()
    report = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **device_info(), keras_version=keras.__version__, settings=dataclasses.asdict(settings),
        parts={},
    )
    print(f"gpu_check: device {report['device']} ({report['platform']}, "
          f"{report['device_count']} device(s)), backend {report['backend']} "
          f"{report['backend_version']}, Keras {report['keras_version']}", flush=True)
    deadlines = TORCH_PART_DEADLINES if keras.config.backend() == "torch" else PART_DEADLINES
    for part in deadlines:
        if part not in parts:
            continue
        deadline = start + deadlines[part] * settings.budget_seconds
        part_start = time.monotonic()
        items = PART_FUNCTIONS[part](settings, deadline)
        report["parts"][part] = dict(title=PART_TITLES[part], items=items,
                                     seconds=round(time.monotonic() - part_start, 1))
        print(f"gpu_check: {part} done in {report['parts'][part]['seconds']} s", flush=True)
    report["seconds"] = round(time.monotonic() - start, 1)
    return report


def _ratio(value):
    return f"{value:.2f}x"


def markdown_rows(part, item):
    """(what, measured, goal, verdict) for one item of one part."""
    status = item["status"]
    what = {
        "precision": lambda: f"`{item['model']}` {item['policy']}",
        "chapter": lambda: f"`{item['model']}`" + (
            f" {item['image_size']}px, batch {item['batch_size']}" if "image_size" in item else ""),
        "twins": lambda: f"`{item['model']}`" + (
            f" {item['image_size']}px, batch {item['batch_size']}" if "batch_size" in item else ""),
        "memory": lambda: f"`{item['model']}` {item['image_size']}px, batch {item['batch_size']}",
        "torchvision": lambda: f"`{item['model']}`" + (
            f" {item['image_size']}px, batch {item['batch_size']}, {item['device']}"
            if "device" in item else ""),
    }[part]()
    if status != "done":
        reasons = item.get("reason") or "; ".join(
            f"{variant}: {item[variant].get('reason')}" for variant in VARIANTS
            if item.get(variant, {}).get("status") != "done")
        return what, f"{status}: {reasons}", "", "not measured"
    if part == "precision":
        loss, norm = (f"{v:.3g}" if isinstance(v, float) else v
                      for v in (item["loss"], item["gradient_norm"]))
        measured = f"loss {loss}, gradient norm {norm}, outputs {item['output_dtype']}"
        return what, measured, "finite", "finite" if item["finite"] else "**NOT FINITE**"
    if part == "chapter":
        measured = f"{item['examples_per_second']:,.0f} ex/s"
        goal = f"seeds {item['seeds_examples_per_second']:,.1f}; 10x = {CHAPTER_GOAL * item['seeds_examples_per_second']:,.0f}"
        return what, measured, goal, _ratio(item["ratio_to_seeds"]) + (
            " (met)" if item["meets_goal"] else " (short)")
    if part == "twins":
        measured = (f"ours {item['ours_img_per_s']:,.1f} / keras {item['keras_img_per_s']:,.1f} img/s")
        goal = f">= {TWIN_GOAL:.2f}x" + (f"; ours >= {RESNET50_GOAL:,.0f} img/s (H100)"
                                         if item["model"] == "resnet50" else "")
        verdict = f"{_ratio(item['ratio_median'])} ({item['ratio_min']:.2f}-{item['ratio_max']:.2f})"
        return what, measured, goal, verdict
    if part == "torchvision":
        measured = "; ".join(
            f"{mode} ours {item[mode]['ours_img_per_s']:,.1f} / tv NCHW "
            f"{item[mode]['tv_nchw_img_per_s']:,.1f} / tv channels_last "
            f"{item[mode]['tv_cl_img_per_s']:,.1f} img/s" for mode in ("train", "predict"))
        verdict = ", ".join(
            f"{mode} {_ratio(item[mode]['ratio_median'])} ({item[mode]['ratio_min']:.2f}-"
            f"{item[mode]['ratio_max']:.2f})" for mode in ("train", "predict"))
        return what, measured, f">= {TORCHVISION_GOAL:.2f}x", verdict
    plain, efficient = item["plain"], item["memory_efficient"]
    measured = (f"{plain['peak_mib']:,.4g} -> {efficient['peak_mib']:,.4g} MiB; step "
                f"{plain['step_seconds']:.3g} -> {efficient['step_seconds']:.3g} s")
    goal = (f"<= {item['goals']['memory_ratio']}x memory" if item["goals"]["memory_ratio"]
            else "(no goal)") + f", <= {MEMORY_TIME_GOAL}x time"
    verdict = f"memory {_ratio(item['memory_ratio'])}, time {_ratio(item['time_ratio'])}"
    return what, measured, goal, verdict


def markdown(report):
    lines = [
        f"GPU check, {report['date']}: {report['device']} ({report['platform']}), "
        f"{report['backend']} {report['backend_version']}, Keras {report['keras_version']}, "
        f"policy {report['settings']['policy']}, jit_compile {report['settings']['jit_compile']}, "
        f"{report['seconds']:.0f} s of a {report['settings']['budget_seconds']:.0f} s budget.",
        "",
        "| part | what | measured | goal | result |",
        "|---|---|---|---|---|",
    ]
    for part in (part for part in PARTS if part in report["parts"]):
        for item in report["parts"][part]["items"]:
            cells = (cell.replace("|", "/") for cell in markdown_rows(part, item))
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    directory = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="every part on small stand-ins (CPU, CI), under a minute")
    parser.add_argument("--output-dir", default="runs/gpu_check")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help=f"whole-run budget (default {FULL.budget_seconds:g}; smoke "
                        f"{SMOKE.budget_seconds:g})")
    parser.add_argument("--policy", choices=("mixed_bfloat16", "mixed_float16", "float32"),
                        default=None, help="dtype policy of parts 2-4 (default mixed_bfloat16)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    parts = tuple(args.parts.split(","))
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        parser.error(f"`--parts` takes a comma-separated subset of {', '.join(PARTS)}. "
                     f"Received: parts={args.parts!r}")
    if args.budget_seconds is not None and not args.budget_seconds > 0:
        parser.error(f"`--budget-seconds` must be positive. Received: "
                     f"budget_seconds={args.budget_seconds}")
    return args, parts


def main():
    args, parts = parse_args()
    if args.memory_child:
        job = json.loads(args.memory_child)
        figures = memory_config(job["name"], job["memory_efficient"], Settings(**{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in job["settings"].items()
        }))
        print(CHILD_PREFIX + json.dumps(figures), flush=True)
        return
    settings = SMOKE if args.smoke else FULL
    overrides = {key: value for key, value in (("budget_seconds", args.budget_seconds),
                                               ("policy", args.policy)) if value is not None}
    settings = dataclasses.replace(settings, **overrides)
    os.makedirs(args.output_dir, exist_ok=True)
    report = run(settings, parts)
    base = os.path.join(args.output_dir, f"gpu_check_{report['backend']}")
    write_atomically(base + ".json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_atomically(base + ".md", table)
    print(table)
    print(f"gpu_check: wrote {base}.json and {base}.md", flush=True)


if __name__ == "__main__":
    main()
