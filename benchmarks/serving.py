"""Serving throughput: our model, the BatchNorm-folded model, keras.applications' twin and the
exported artefacts in their own runtimes, interleaved in one process (ResNet50, DenseNet121).

Candidates, all on the same random batch at 224x224x3 (random weights: speed only):
- `ours`: `keras_modern_cnn.get_model(name)`, `predict_on_batch`;
- `folded`: `keras_modern_cnn.utils.fold_batch_norm(ours)`, `predict_on_batch`;
- `keras_app`: `keras.applications` twin, `predict_on_batch` (the reference of every ratio);
- `saved_model`, `onnx`, `litert`, `openvino`: `keras_modern_cnn.export(ours, ...)` (folded, the
  default) served by `keras_modern_cnn.export.load_served` in TensorFlow, onnxruntime, the LiteRT
  interpreter and OpenVINO (the last three exported from the TensorFlow backend only).

Prints images/sec per candidate and the median per-round ratio to keras_app (>= 1.00: faster);
BENCHMARKS.md records the figures.

    KERAS_BACKEND=tensorflow python benchmarks/serving.py --rounds 3
"""

import argparse
import json
import tempfile

import keras
import numpy as np

import keras_modern_cnn as kmc
from _timing import interleaved_throughput, random_batch, ratio_summary
from keras_modern_cnn.export import load_served

TWINS = {"resnet50": keras.applications.ResNet50, "densenet121": keras.applications.DenseNet121}
ARTEFACTS = {"saved_model": "saved_model", "onnx": "model.onnx", "litert": "model.tflite",
             "openvino": "model.xml"}
TENSORFLOW_ONLY = ("onnx", "litert", "openvino")


def candidates_for(name, directory, formats):
    keras.utils.set_random_seed(0)
    ours = kmc.get_model(name, input_shape=(224, 224, 3))
    models = {
        "ours": ours,
        "folded": kmc.utils.fold_batch_norm(ours),
        "keras_app": TWINS[name](weights=None, input_shape=(224, 224, 3)),
    }
    predictors = {key: model.predict_on_batch for key, model in models.items()}
    for format in formats:
        path = kmc.export(ours, f"{directory}/{name}_{ARTEFACTS[format]}", format=format)
        predictors[format] = load_served(path)
    return predictors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TWINS), help="comma-separated subset")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--formats", default=None,
                        help="comma-separated artefacts (default: all this backend exports)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images-per-round", type=int, default=32,
                        help="each candidate predicts this many images per round")
    args = parser.parse_args()

    backend = keras.config.backend()
    if args.formats is None:
        formats = [f for f in ARTEFACTS if backend == "tensorflow" or f not in TENSORFLOW_ONLY]
    else:
        formats = args.formats.split(",")
    report = {"backend": backend}
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models.split(","):
            predictors = candidates_for(name, directory, formats)
            for batch_size in map(int, args.batch_sizes.split(",")):
                images, _ = random_batch(batch_size, 224, classes=1000)
                results = interleaved_throughput(
                    {key: (lambda p=p: p(images)) for key, p in predictors.items()},
                    rounds=args.rounds, steps=max(1, args.images_per_round // batch_size),
                    batch_size=batch_size, warmup=1,
                )
                row = {}
                for key in results:
                    median, low, high = ratio_summary(results, key, "keras_app")
                    row[key] = {
                        "img_per_s": round(float(np.median(results[key])), 1),
                        "vs_keras_app": round(median, 2),
                        "vs_keras_app_range": [round(low, 2), round(high, 2)],
                    }
                report[f"{name}_batch{batch_size}"] = row
                print(json.dumps({f"{name}_batch{batch_size}": row}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
