"""Where a CPU forward pass of ResNet50 spends its time: every convolution of the model, timed
alone in XLA:CPU (JAX) and in TensorFlow's kernels (oneDNN), interleaved in one process.

Issue 17 found the JAX forward pass of ResNet50 at ~8-10 % of the matmul peak (Keras's own
ResNet50 alike), below its own training rate. This profile takes the model apart: for each
distinct Conv2D of `get_model("resnet50")` (input shape, kernel, stride, filters) it times the
bare convolution, `jax.lax.conv_general_dilated` under `jax.jit` against `tf.nn.conv2d` under
`tf.function`, on the same float32 NHWC data, alternating, best of `--repeats` after a warm-up.
It prints GFLOP/s per convolution, the sum over the whole network (each convolution counted as
often as the model uses it) next to the measured forward pass of the model on JAX, and both
runtimes' matmul peak. No Keras backend is needed for the kernels: both libraries are imported.

    python benchmarks/conv_profile.py --image-size 64 --batch-size 32
"""

import argparse
import collections
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_modern_cnn as kmc  # noqa: E402
from _timing import best_seconds  # noqa: E402
from peak import matmul_flops_per_second  # noqa: E402


def conv_shapes(model, batch_size):
    """Counter of (input NHWC, kernel HWIO, stride, padding, output height x width) over the
    model's Conv2D layers."""
    shapes = collections.Counter()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels = layer.input.shape
            _, out_height, out_width, _ = layer.output.shape
            kernel = (*layer.kernel_size, channels, layer.filters)
            shapes[((batch_size, height, width, channels), kernel, layer.strides[0],
                    layer.padding.upper(), out_height * out_width)] += 1
    return shapes


def jax_conv(images, kernel, stride, padding):
    run = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")))
    x, w = jax.numpy.asarray(images), jax.numpy.asarray(kernel)
    return lambda: run(x, w).block_until_ready()


def tf_conv(images, kernel, stride, padding):
    run = tf.function(lambda x, w: tf.nn.conv2d(x, w, stride, padding))
    x, w = tf.constant(images), tf.constant(kernel)
    return lambda: run(x, w).numpy()


def matmul_peaks(repeats, size=2048):
    """FLOP/s of the best `size`x`size` float32 matmul: JAX as every other table measures it
    (`peak.matmul_flops_per_second`, through `keras.ops`), TensorFlow the same product."""
    a = np.random.default_rng(0).normal(size=(size, size)).astype("float32")
    tf_matmul = tf.function(lambda a: tf.reduce_sum(tf.matmul(a, a)))
    tf_a = tf.constant(a)
    return {
        "jax": matmul_flops_per_second(size, repeats),
        "tensorflow": 2 * size**3 / best_seconds(lambda: tf_matmul(tf_a).numpy(), repeats),
    }


def model_forward_seconds(model, images, repeats):
    """The whole model's inference forward pass on JAX (jit, stateless), best of `repeats`."""
    forward = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0])
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    x = jax.numpy.asarray(images)
    return best_seconds(lambda: forward(trainable, non_trainable, x).block_until_ready(), repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if keras.config.backend() != "jax":
        parser.error(f"run with KERAS_BACKEND=jax (the model is timed on JAX); "
                     f"received KERAS_BACKEND={keras.config.backend()}")

    keras.utils.set_random_seed(0)
    model = kmc.get_model(args.model, input_shape=(args.image_size, args.image_size, 3))
    rng = np.random.default_rng(0)
    rows, totals = [], {"jax": 0.0, "tensorflow": 0.0}
    total_flops = 0
    for (input_shape, kernel_shape, stride, padding, out_pixels), count in sorted(conv_shapes(
            model, args.batch_size).items(), key=lambda item: item[0][0][1:], reverse=True):
        images = rng.uniform(size=input_shape).astype("float32")
        kernel = rng.normal(size=kernel_shape).astype("float32")
        flops = 2 * input_shape[0] * out_pixels * int(np.prod(kernel_shape))
        seconds = {}
        for _ in range(2):  # alternate the two runtimes
            for runtime, make in (("jax", jax_conv), ("tensorflow", tf_conv)):
                measured = best_seconds(make(images, kernel, stride, padding), args.repeats)
                seconds[runtime] = min(seconds.get(runtime, float("inf")), measured)
        for runtime in totals:
            totals[runtime] += count * seconds[runtime]
        total_flops += count * flops
        rows.append({
            "input": input_shape[1:], "kernel": kernel_shape, "stride": stride, "count": count,
            "jax_gflops": round(flops / seconds["jax"] / 1e9, 1),
            "tf_gflops": round(flops / seconds["tensorflow"] / 1e9, 1),
        })
        print(json.dumps(rows[-1]), flush=True)
    peaks = matmul_peaks(args.repeats)
    forward = model_forward_seconds(model, rng.uniform(
        size=(args.batch_size, args.image_size, args.image_size, 3)).astype("float32"), args.repeats)
    report = {
        "model": args.model, "image_size": args.image_size, "batch_size": args.batch_size,
        "conv_gflops_per_batch": round(total_flops / 1e9, 2),
        "matmul_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "all_convs_seconds": {k: round(v, 4) for k, v in totals.items()},
        "all_convs_gflops": {k: round(total_flops / v / 1e9, 1) for k, v in totals.items()},
        "jax_model_forward_seconds": round(forward, 4),
        "jax_convs_share_of_forward": round(totals["jax"] / forward, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
