"""Mean IoU and Dice of the classic U-Net and of U-Nets on registered encoders, trained alike.

Each (encoder, image size) pair is one `kmc train unet [--encoder NAME]` run, through the same
stages (`resolve_config` → `train`): the embedded shapes masks (background + ten shape classes,
28x28, generated from a seed, no network, resized to `--image-size`), the same optimizer,
learning rate, batch size, epochs and seed, evaluated on the test split (`test_mean_iou`,
`test_mean_dice`, pixel `test_accuracy` of metrics.json). Both share `--width-ratio`; the
parameter counts are printed. A comparison of architectures, not a tuned result.

    KERAS_BACKEND=tensorflow python benchmarks/unet_encoders.py \\
        --encoders classic resnet18 --image-sizes 32 64 --output-dir runs/unet_encoders
"""

import argparse
import os

import keras

from keras_modern_cnn.config import resolve_config
from keras_modern_cnn.training import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["classic", "resnet18"],
                        help="'classic' (the U-Net's own encoder) or encoder names")
    parser.add_argument("--image-sizes", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--test-examples", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--width-ratio", type=float, default=0.25)
    parser.add_argument("--output-dir", default="runs/unet_encoders")
    args = parser.parse_args()
    print(f"backend={keras.config.backend()} epochs={args.epochs} train={args.train_examples} "
          f"test={args.test_examples} adam lr={args.learning_rate:g} batch={args.batch_size} "
          f"width_ratio={args.width_ratio:g}\n")
    print("| encoder | image size | params | mean IoU | mean Dice | pixel accuracy | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for image_size in args.image_sizes:
        for encoder in args.encoders:
            config = resolve_config(
                "unet", encoder=None if encoder == "classic" else encoder, image_size=image_size,
                epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                learning_rate=args.learning_rate, width_ratio=args.width_ratio,
                train_examples=args.train_examples, test_examples=args.test_examples,
                output_dir=os.path.join(args.output_dir, f"{encoder}_{image_size}"),
            )
            metrics = train(config, overwrite=True, verbose=0, log=lambda line: None)
            keras.backend.clear_session()
            print(f"| {encoder} | {image_size} | {metrics['parameters']:,} | "
                  f"{metrics['test_mean_iou']:.3f} | {metrics['test_mean_dice']:.3f} | "
                  f"{metrics['test_accuracy']:.3f} | {metrics['wall_time_seconds']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
