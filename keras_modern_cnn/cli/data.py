"""`kmc data samples --output-dir DIR`: image files of the embedded shapes dataset to try the
commands that read images (`kmc predict`, an image-folder `kmc train --dataset DIR/images`).

Parsing and printing; the files are written by `keras_modern_cnn.data.samples`.
"""

from keras_modern_cnn.choices import SPLITS
from keras_modern_cnn.cli import options


def add_parser(subparsers):
    data = subparsers.add_parser("data", help="sample files of the embedded shapes dataset")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    samples = actions.add_parser(
        "samples", help="write a few images per class (and their masks) as PNG files",
        description="Writes DIR/images/CLASS/CLASS_N.png (a few images of each of the ten "
        "shapes, from the test split) and DIR/masks/CLASS/CLASS_N.png (each image's ground-truth "
        "mask: 0 background, class index + 1 on the shape, a palette PNG). DIR/images is also an "
        "image-folder dataset (`kmc train MODEL --dataset DIR/images`).",
    )
    options.add_output_dir(samples, "the folder to fill (required)")
    samples.add_argument("--per-class", type=int, default=3, help="images per class (default 3)")
    options.add_image_size(samples, help="side of the images (default 28, the embedded data's)")
    samples.add_argument("--channels", type=int, choices=(1, 3), default=1,
                         help="1 (grayscale, as the training data; default) or 3")
    samples.add_argument("--split", choices=SPLITS, default="test",
                         help="which split to draw from (default test: unseen by a trained model)")
    samples.add_argument("--seed", type=int, default=0, help="the embedded dataset's seed (default 0)")
    options.add_overwrite(samples, "replace sample files already there (nothing else is touched)")
    options.add_quiet(samples, help="print only the folder written")
    samples.set_defaults(run=run_samples)


def run_samples(args):
    from keras_modern_cnn.data.samples import IMAGES_DIR, MASKS_DIR, write_samples

    if args.output_dir is None:
        raise ValueError("`kmc data samples` needs --output-dir DIR. Received: output_dir=None")
    written = write_samples(
        args.output_dir, per_class=args.per_class,
        image_size=28 if args.image_size is None else args.image_size,
        channels=args.channels, split=args.split, seed=args.seed, overwrite=args.overwrite,
    )
    if not args.quiet:
        print(f"wrote {len(written)} images ({args.per_class} per class) and their masks")
    print(f"images: {args.output_dir}/{IMAGES_DIR}/  masks: {args.output_dir}/{MASKS_DIR}/")
