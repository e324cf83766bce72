"""BatchNorm vs keras.layers.BatchNormalization in ResNet-18.

Trains (train_on_batch) and predicts (predict_on_batch) `keras_modern_cnn.ResNet18` built twice —
once with keras_modern_cnn's BatchNorm, once with Keras's — on 64x64x3 images, batch 32,
interleaved in one process on the current backend, and prints throughput ratios
(ours / keras; >= 1.00 means ours is at least as fast).

    KERAS_BACKEND=jax python benchmarks/batchnorm.py --rounds 6
    KERAS_BACKEND=jax python benchmarks/batchnorm.py --dtype-policy mixed_bfloat16
"""

import argparse
import json

import keras
import numpy as np

import keras_modern_cnn as kmc
from _timing import train_and_predict_ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--dtype-policy",
        default="float32",
        choices=["float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16"],
        help="Keras dtype policy both models are built under",
    )
    args = parser.parse_args()
    keras.config.set_dtype_policy(args.dtype_policy)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch_size, 64, 64, 3)).astype("float32")
    labels = rng.integers(0, 10, size=(args.batch_size,))
    models = {}
    for implementation in ("keras_modern_cnn", "keras"):
        keras.utils.set_random_seed(0)
        with kmc.batch_norm_implementation(implementation):
            model = kmc.ResNet18(input_shape=(64, 64, 3), classes=10, classifier_activation=None)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        models[implementation] = model

    report = {
        "backend": keras.config.backend(),
        "dtype_policy": args.dtype_policy,
        **train_and_predict_ratios(
            models, images, labels, ours="keras_modern_cnn", reference="keras",
            rounds=args.rounds, steps=args.steps,
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
