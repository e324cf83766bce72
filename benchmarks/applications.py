"""Our keras.applications twins against keras.applications: ResNet50, DenseNet121, VGG16.

Each pair (same architecture, same parameter count; `tests/test_zoo_parity.py` proves equal
outputs after a weight copy) is trained with `train_on_batch` and run with `predict_on_batch`
on 64x64x3 images, batch 16, interleaved in one process on the current backend. Prints the
images/sec of both and the ratio ours / keras.applications per round (>= 1.00: ours is at
least as fast); the median ratio is the figure recorded in BENCHMARKS.md.

    KERAS_BACKEND=tensorflow python benchmarks/applications.py --rounds 5
"""

import argparse
import json

import keras

from _timing import random_batch, train_and_predict_ratios
from keras_modern_cnn import get_model

TWINS = {
    "resnet50": keras.applications.ResNet50,
    "densenet121": keras.applications.DenseNet121,
    "vgg16": keras.applications.VGG16,
}


def compiled(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TWINS), help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    images, labels = random_batch(args.batch_size, 64, classes=10)
    report = {"backend": keras.config.backend(), "batch_size": args.batch_size}
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        pair = {
            "ours": compiled(get_model(name, input_shape=(64, 64, 3), classes=10)),
            "keras": compiled(TWINS[name](weights=None, input_shape=(64, 64, 3), classes=10)),
        }
        assert pair["ours"].count_params() == pair["keras"].count_params()
        report[name] = train_and_predict_ratios(
            pair, images, labels, ours="ours", reference="keras",
            rounds=args.rounds, steps=args.steps,
        )
        print(json.dumps({name: report[name]}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
