"""Peak training memory of DenseNet121 with and without `memory_efficient=True`.

Both models (same weights, same function; `tests/test_densenet_memory.py`) train at the same
batch on 224x224x3 images. Prints the training-step memory of each and the ratio
memory-efficient / plain (target: 0.5 or less); on TensorFlow also the step-time ratio (the
price of the recomputation; rounds alternate, but each process runs alone, so it is noisier).

- JAX: XLA's own buffer assignment for the jitted gradient step (`memory_analysis()` of the
  compiled function): the exact bytes of temporaries (activations kept for the backward pass,
  workspace) and of the whole step. Deterministic, so one compile per model is enough.
- TensorFlow: resident memory sampled every 2 ms during `train_on_batch` steps after warm-up,
  in one fresh process per model and round (rounds alternate the order), minus the resident
  memory just before the steps. glibc is told to serve every large allocation with mmap
  (`MALLOC_MMAP_THRESHOLD_`) so freed activations leave the resident set and the sampled peak
  follows the live tensors.

    KERAS_BACKEND=jax python benchmarks/densenet_memory.py
    KERAS_BACKEND=tensorflow python benchmarks/densenet_memory.py --rounds 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import keras

from _timing import random_batch
from keras_modern_cnn import get_model

VARIANTS = {"plain": False, "memory_efficient": True}
MIB = 2**20


def build(memory_efficient, image_size):
    keras.utils.set_random_seed(0)
    return get_model(
        "densenet121", input_shape=(image_size, image_size, 3), memory_efficient=memory_efficient
    )


def jax_compiled_step(model, images, labels):
    """The jitted gradient step of `model` (training-mode loss, its value and gradients),
    compiled for one batch, and the arguments it takes."""
    import jax

    loss = keras.losses.SparseCategoricalCrossentropy()

    def loss_and_state(trainable, non_trainable, x, y):
        predictions, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss(y, predictions), non_trainable

    step = jax.jit(jax.value_and_grad(loss_and_state, has_aux=True))
    arguments = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        images,
        labels,
    )
    return step.lower(*arguments).compile(), arguments


def jax_step_memory(compiled):
    """Bytes XLA assigns to a compiled step: temporaries and the whole step."""
    analysis = compiled.memory_analysis()
    total = (
        analysis.temp_size_in_bytes
        + analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
    )
    return {"temporaries_mib": analysis.temp_size_in_bytes / MIB, "step_mib": total / MIB}


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tensorflow_step_memory(memory_efficient, batch_size, image_size, steps):
    """Peak resident bytes above the pre-step level while `train_on_batch` runs (this process)."""
    model = build(memory_efficient, image_size)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    images, labels = random_batch(batch_size, image_size, classes=1000)
    for _ in range(2):  # trace and warm up
        model.train_on_batch(images, labels)
    before = resident_bytes()
    peak = before
    running = True

    def sample():
        nonlocal peak
        while running:
            peak = max(peak, resident_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    seconds = (time.perf_counter() - start) / steps
    running = False
    sampler.join()
    return {"step_mib": (peak - before) / MIB, "step_seconds": seconds}


def tensorflow_rounds(args):
    """One fresh child process per model and round, alternating the order each round."""
    results = {name: [] for name in VARIANTS}
    seconds = {name: [] for name in VARIANTS}
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    for round_index in range(args.rounds):
        order = list(VARIANTS) if round_index % 2 == 0 else list(VARIANTS)[::-1]
        for name in order:
            child = subprocess.run(
                [sys.executable, __file__, "--child", name, "--batch-size", str(args.batch_size),
                 "--image-size", str(args.image_size), "--steps", str(args.steps)],
                env=environment, check=True, capture_output=True, text=True,
            )
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            results[name].append(figures["step_mib"])
            seconds[name].append(figures["step_seconds"])
    ratios = [e / p for e, p in zip(results["memory_efficient"], results["plain"])]
    time_ratios = [e / p for e, p in zip(seconds["memory_efficient"], seconds["plain"])]
    return {
        "step_mib": results,
        "ratio_median": statistics.median(ratios),
        "ratio_min_max": [min(ratios), max(ratios)],
        "step_seconds": seconds,
        "step_time_ratio_median": statistics.median(time_ratios),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=2, help="TensorFlow: processes per model")
    parser.add_argument("--steps", type=int, default=2, help="TensorFlow: sampled steps")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    backend = keras.config.backend()
    if args.child:
        print(json.dumps(tensorflow_step_memory(
            VARIANTS[args.child], args.batch_size, args.image_size, args.steps
        )))
        return
    report = {"backend": backend, "batch_size": args.batch_size, "image_size": args.image_size}
    if backend == "jax":
        batch = random_batch(args.batch_size, args.image_size, classes=1000)
        figures = {
            name: jax_step_memory(jax_compiled_step(build(flag, args.image_size), *batch)[0])
            for name, flag in VARIANTS.items()
        }
        report.update(figures)
        report["ratio_temporaries"] = (
            figures["memory_efficient"]["temporaries_mib"] / figures["plain"]["temporaries_mib"]
        )
        report["ratio_step"] = figures["memory_efficient"]["step_mib"] / figures["plain"]["step_mib"]
    elif backend == "tensorflow":
        report.update(tensorflow_rounds(args))
    else:
        raise SystemExit(f"Backend {backend!r}: run with KERAS_BACKEND=jax or tensorflow.")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
