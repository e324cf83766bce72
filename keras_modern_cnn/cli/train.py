"""`kmc train MODEL`: train a registered model, evaluate it on the test split and save it."""

from keras_modern_cnn.training import OPTIMIZERS


def add_parser(subparsers):
    parser = subparsers.add_parser("train", help="train a registered model and save it")
    parser.add_argument("model", help="registered name (see `kmc list`)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (d2l BN-LeNet: 1.0)")
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args):
    from keras_modern_cnn.training import train

    metrics = train(
        args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        output_dir=args.output_dir,
        seed=args.seed,
    )
    print(f"test accuracy: {metrics['test_accuracy']:.3f}")
    print(f"saved model: {metrics['model_path']}")
