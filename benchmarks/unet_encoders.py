"""Mean IoU of the classic U-Net and of U-Nets on registered encoders, trained the same way.

Every model trains on the embedded shapes masks (background + ten shape classes, generated from
a seed, no network) with the same data, optimizer, batch size and epochs, from the same seed,
and is evaluated on the test split with `keras.metrics.MeanIoU` over the eleven classes. The
classic U-Net and the encoder U-Nets share `width_ratio`, so the comparison is between
architectures at a similar (printed) parameter count, not a tuned result.

    KERAS_BACKEND=tensorflow python benchmarks/unet_encoders.py --encoders classic resnet18
"""

import argparse

import keras

import keras_modern_cnn as kmc
from keras_modern_cnn.data import load_shapes

CLASSES = 11  # background + the ten shapes


def train_and_score(encoder, data, args):
    (x_train, m_train), (x_test, m_test) = data
    keras.utils.set_random_seed(0)
    model = kmc.UNet(
        encoder=None if encoder == "classic" else encoder, input_shape=x_train.shape[1:],
        classes=CLASSES, width_ratio=args.width_ratio, batch_norm=True,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x_train, m_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    iou = keras.metrics.MeanIoU(num_classes=CLASSES, sparse_y_pred=False)
    iou.update_state(m_test, model.predict(x_test, batch_size=args.batch_size, verbose=0))
    return model.count_params(), float(iou.result())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["classic", "resnet18"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--test-examples", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--width-ratio", type=float, default=0.25)
    args = parser.parse_args()
    (x_train, _, m_train), (x_test, _, m_test) = load_shapes(
        num_train=args.train_examples, num_test=args.test_examples, image_size=args.image_size,
        channels=3,
    )
    data = ((x_train.astype("float32") / 255.0, m_train), (x_test.astype("float32") / 255.0, m_test))
    print(f"backend={keras.config.backend()} image_size={args.image_size} epochs={args.epochs} "
          f"train={args.train_examples} width_ratio={args.width_ratio}")
    for encoder in args.encoders:
        params, mean_iou = train_and_score(encoder, data, args)
        print(f"{encoder:<12} params={params:>10,} mean_iou={mean_iou:.3f}", flush=True)


if __name__ == "__main__":
    main()
