"""The README's picture of predicted masks: input, ground truth and prediction of a trained U-Net.

Reads a `kmc train unet` run directory (model.keras, run.json), takes the first test images of
its dataset through the run's own pipeline (image size, normalisation), and draws one column
per image: the input, the true mask and the predicted mask in the class palette of `kmc predict`
(`keras_modern_cnn.masks`), with the class legend.

    python benchmarks/unet_masks_figure.py runs/unet_encoders/resnet18_64 docs/images/unet_masks.png
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib import pyplot  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from keras_modern_cnn.config import RUN_FILE, read_run_file  # noqa: E402
from keras_modern_cnn.data import make_pipeline  # noqa: E402
from keras_modern_cnn.files import atomic_write  # noqa: E402
from keras_modern_cnn.masks import colour, palette  # noqa: E402
from keras_modern_cnn.rundir import MODEL_FILE  # noqa: E402
from keras_modern_cnn.saving import load_model  # noqa: E402
from keras_modern_cnn.training import prepare_data  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a finished `kmc train unet` run directory")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--images", type=int, default=6, help="test images shown (default 6)")
    args = parser.parse_args()
    config, info = read_run_file(os.path.join(args.run_dir, RUN_FILE))
    model = load_model(os.path.join(args.run_dir, MODEL_FILE))
    data = prepare_data(config)
    pipeline = make_pipeline(
        data.test.take(args.images), image_size=config.image_size, batch_size=args.images,
        training=False, task=data.task, normalization=config.normalization,
    )
    images, masks = (np.asarray(tensor) for tensor in next(iter(pipeline)))
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    encoder = config.encoder or "classic encoder"
    classes = len(info["class_names"])
    rows = [("input", None), ("ground truth", masks), (f"U-Net ({encoder})", predicted)]
    figure, axes = pyplot.subplots(3, args.images, figsize=(1.5 * args.images, 5.2))
    for column in range(args.images):
        for row, (label, mask) in enumerate(rows):
            axis = axes[row, column]
            if mask is None:
                axis.imshow(images[column].squeeze(), cmap="gray")
            else:
                axis.imshow(colour(mask[column], classes), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(label)
    colours = palette(classes) / 255
    figure.legend(
        handles=[Patch(color=colours[i], label=name) for i, name in enumerate(info["class_names"])],
        loc="lower center", ncol=6, fontsize="small", frameon=False,
    )
    figure.suptitle(f"{config.model} on {data.name} test images ({config.image_size}px, "
                    f"{config.epochs} epochs)")
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    atomic_write(args.output, lambda temporary: figure.savefig(temporary, dpi=150))
    print(args.output)


if __name__ == "__main__":
    main()
