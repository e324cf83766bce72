"""Matmul peak vs training throughput: what fraction of this machine's FLOP/s training reaches.

In one process on the current backend, round after round (alternating order, the machine is
noisy), measures:
- the matrix-multiply peak: best of several 2048x2048 float32 matmuls (2 n^3 FLOPs each);
- `train_on_batch` throughput (64x64x3, batch 32, SGD) of our ResNet50 (the
  keras.applications twin, conv bias), our ResNet50 without conv bias before BN, the same
  with the stride in the 3x3 (torchvision v1.5), Keras's ResNet50, our DenseNet121 and
  Keras's DenseNet121, each with jit_compile on and off, under each dtype policy asked for;
and converts images/s to achieved FLOP/s with `keras_modern_cnn.utils.flops` (training step
~ 3x forward FLOPs), reported as % of the peak. Other work on the machine only ever slows a
measurement down, so capability is the best round: % of peak = best training round / best
matmul round (medians are printed too). `--predict` times `predict_on_batch` instead (forward
FLOPs only), which separates the forward pass from the backward one.

    KERAS_BACKEND=tensorflow python benchmarks/peak.py --quick
    KERAS_BACKEND=jax python benchmarks/peak.py --models ours_resnet50 --jit on \
        --policies float32,mixed_bfloat16
"""

import argparse
import json
import statistics
import time

import keras
import numpy as np

from _timing import best_seconds, random_batch
from keras_modern_cnn import ResNet, get_model
from keras_modern_cnn.utils import flops

MODELS = {
    "ours_resnet50": lambda shape: get_model("resnet50", input_shape=shape, classes=10),
    "ours_resnet50_nobias": lambda shape: ResNet(
        (3, 4, 6, 3), "bottleneck", conv_bias=False, input_shape=shape, classes=10,
        name="resnet50_nobias",
    ),
    # torchvision's v1.5 layout: no conv bias, stride in the 3x3 instead of the 1x1.
    "ours_resnet50_v1.5": lambda shape: ResNet(
        (3, 4, 6, 3), "bottleneck", conv_bias=False, stride_in="3x3", input_shape=shape,
        classes=10, name="resnet50_v1_5",
    ),
    "keras_resnet50": lambda shape: keras.applications.ResNet50(
        weights=None, input_shape=shape, classes=10
    ),
    "ours_densenet121": lambda shape: get_model("densenet121", input_shape=shape, classes=10),
    "keras_densenet121": lambda shape: keras.applications.DenseNet121(
        weights=None, input_shape=shape, classes=10
    ),
}
QUICK_MODELS = ("ours_resnet50", "keras_resnet50", "ours_densenet121")


def matmul_flops_per_second(size=2048, repeats=5):
    """Best of `repeats` float32 `size`x`size` matmuls, in FLOP/s (2 size^3 per matmul)."""
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.normal(size=(size, size)).astype("float32"))
    b = keras.ops.convert_to_tensor(rng.normal(size=(size, size)).astype("float32"))
    seconds = best_seconds(
        lambda: keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.matmul(a, b))), repeats
    )
    return 2 * size**3 / seconds


def build_candidate(model_name, jit_compile, policy, image_size):
    """A compiled model and its forward FLOPs per example."""
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = MODELS[model_name]((image_size, image_size, 3))
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit_compile,
    )
    return model, flops(model)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 models, 2 rounds of 2 steps")
    parser.add_argument("--models", default=None, help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--jit", default="on,off", help="comma list of on/off")
    parser.add_argument("--policies", default="float32", help="comma list of dtype policies")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--steps", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--predict", action="store_true", help="forward passes, not training")
    args = parser.parse_args()
    model_names = args.models.split(",") if args.models else (
        QUICK_MODELS if args.quick else tuple(MODELS)
    )
    rounds = args.rounds or (2 if args.quick else 3)
    steps = args.steps or (2 if args.quick else 3)

    images, labels = random_batch(args.batch_size, args.image_size, classes=10)
    passes_per_image = 1 if args.predict else 3  # a training step ~ 3 forward passes

    def step(model):
        if args.predict:
            return model.predict_on_batch(images)
        return model.train_on_batch(images, labels)

    candidates = {}
    for model_name in model_names:
        for policy in args.policies.split(","):
            for jit in args.jit.split(","):
                label = f"{model_name} jit={jit}" + ("" if policy == "float32" else f" {policy}")
                model, forward_flops = build_candidate(
                    model_name, jit == "on", policy, args.image_size
                )
                start = time.perf_counter()
                step(model)  # traces and compiles
                first_step = time.perf_counter() - start
                step(model)
                candidates[label] = dict(model=model, flops=forward_flops, first_step_s=first_step)
                print(f"built {label}: first step {first_step:.1f}s", flush=True)

    peaks, throughput = [], {label: [] for label in candidates}
    labels_order = list(candidates)
    for round_index in range(rounds):
        peaks.append(matmul_flops_per_second())
        for label in labels_order if round_index % 2 == 0 else labels_order[::-1]:
            model = candidates[label]["model"]
            start = time.perf_counter()
            for _ in range(steps):
                step(model)
            throughput[label].append(steps * args.batch_size / (time.perf_counter() - start))
        print(f"round {round_index + 1}/{rounds} done", flush=True)

    peak = max(peaks)
    report = {
        "backend": keras.config.backend(),
        "mode": "predict" if args.predict else "train",
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "matmul_gflops_rounds": [round(p / 1e9, 1) for p in peaks],
        "candidates": {},
    }
    for label, candidate in candidates.items():
        step_flops = passes_per_image * candidate["flops"]
        best = max(throughput[label])
        report["candidates"][label] = {
            "forward_gflops_per_image": round(candidate["flops"] / 1e9, 3),
            "first_step_s": round(candidate["first_step_s"], 1),
            "img_per_s_best": round(best, 2),
            "img_per_s_median": round(statistics.median(throughput[label]), 2),
            "achieved_gflops_best": round(best * step_flops / 1e9, 1),
            "percent_of_peak": round(100 * best * step_flops / peak, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
