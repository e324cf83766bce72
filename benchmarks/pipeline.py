"""Does the tf.data pipeline keep up with training? Images/sec of the pipeline alone vs the
images/sec a model consumes in training steps, measured in the same process, interleaved.

Target (issue 5): pipeline >= 5x training throughput.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/pipeline.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/pipeline.py --model nin --image-size 96 --width-ratio 0.25
"""

import argparse

import keras

from _timing import interleaved_throughput, ratio_summary
from keras_modern_cnn.data import load_data, make_pipeline
from keras_modern_cnn.registry import get_spec
from keras_modern_cnn.training import build_model, make_optimizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bn_lenet")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--width-ratio", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    data = load_data()  # embedded shapes: 12,000 training images, 28x28x1
    pipeline = make_pipeline(
        data.train, image_size=args.image_size, batch_size=args.batch_size, training=True,
        augment=args.augment, seed=0,
    ).repeat()
    batches = iter(pipeline)
    for _ in range(data.num_train // args.batch_size + 1):  # fill the cache: steady state
        next(batches)
    images, labels = next(batches)
    images, labels = images.numpy(), labels.numpy()

    spec = get_spec(args.model)
    model = build_model(spec, data, args.image_size, args.width_ratio)
    model.compile(optimizer=make_optimizer("sgd", 0.1), loss="sparse_categorical_crossentropy")

    results = interleaved_throughput(
        {
            "pipeline": lambda: next(batches),
            "training": lambda: model.train_on_batch(images, labels),
        },
        rounds=args.rounds, steps=args.steps, batch_size=args.batch_size,
    )
    median, low, high = ratio_summary(results, "pipeline", "training")
    print(f"backend={keras.backend.backend()} model={args.model} image_size={args.image_size} "
          f"batch={args.batch_size} augment={args.augment}")
    for name, values in results.items():
        print(f"  {name:<9} images/sec (median of rounds): {sorted(values)[len(values) // 2]:,.0f}")
    print(f"  pipeline / training: median {median:.1f}x (min {low:.1f}x, max {high:.1f}x); "
          f"target >= 5x: {'met' if median >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
