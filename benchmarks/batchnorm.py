"""BatchNorm vs keras.layers.BatchNormalization in a ResNet-18-shaped network.

Trains (train_on_batch) and predicts (predict_on_batch) the same architecture built twice —
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

from _timing import train_and_predict_ratios
from keras_modern_cnn.blocks import batch_norm, batch_norm_implementation, conv_bn_act


def resnet18_shaped(input_shape=(64, 64, 3), classes=10):
    """ResNet-18 layout (He et al. 2016, arXiv:1512.03385): 7x7 stem, 4 stages of 2 basic blocks."""
    inputs = keras.Input(input_shape)
    x = conv_bn_act(inputs, 64, 7, strides=2, name="stem")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            prefix = f"s{stage}b{block}"
            shortcut = x
            y = conv_bn_act(x, filters, 3, strides=strides, name=f"{prefix}_1")
            y = conv_bn_act(y, filters, 3, activation=None, name=f"{prefix}_2")
            if strides != 1 or x.shape[-1] != filters:
                shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
                shortcut = batch_norm(shortcut, name=f"{prefix}_shortcut_bn")
            x = keras.layers.Activation("relu")(keras.layers.Add()([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


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
        with batch_norm_implementation(implementation):
            model = resnet18_shaped()
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
