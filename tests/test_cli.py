"""The `kmc` command line: list, summary, and argument errors as one clear line."""

import subprocess
import sys

import keras
import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.cli import main


def test_list_shows_registered_models_with_parameter_counts(capsys):
    assert main(["list", "bn_*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "family", "task", "input", "params", "trainable", "GFLOPs"]
    assert lines[1].split() == [
        "bn_lenet", "lenet", "classification", "28x28x1", "45,330", "44,878", "0.000563"
    ]


def test_info_reads_the_model_card_and_the_family_defaults(capsys):
    assert main(["info", "ResNet18"]) == 0
    info = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    meta = kmc.get_model_meta("resnet18")
    assert info["parameters"].strip() == (
        f"{meta['params']:,} total, {meta['trainable_params']:,} trainable")
    assert info["GFLOPs"].strip().startswith(f"{meta['gflops']:.3g} per image at 224x224x3")
    assert info["minimum input"].strip() == "32x32"
    assert info["kmc train defaults"].strip() == "optimizer sgd, learning rate 0.05, image size 224"
    assert "learning_rate 0.05" in info["--recipe d2l"] and "image_size 96" in info["--recipe d2l"]


def test_help_names_the_three_backends(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "KERAS_BACKEND to tensorflow (the default), jax or torch" in capsys.readouterr().out


def test_help_list_and_info_import_no_backend():
    # A fresh process: what `kmc --help` (and friends) load, seen in sys.modules.
    script = (
        "import contextlib, io, sys\n"
        "from keras_modern_cnn.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['tune', '--help'], ['list'], ['info', 'unet']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow', 'jax', 'torch'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_summary_prints_the_whole_table_when_piped(capsys):
    # capsys is not a terminal; the Connected-to column is the one a narrow page cut off.
    assert main(["summary", "resnet50", "--image-size", "32", "--width-ratio", "0.0625",
                 "--classes", "5"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("│")]
    assert rows and all(line.endswith("│") for line in rows)
    assert any("conv2_block1_0_conv (Conv2D)" in line and "conv2_block1_0_bn" not in line
               for line in rows)
    assert any("predictions (Dense)" in line and "(None, 5)" in line for line in rows)


def test_tune_takes_the_train_flags_as_fixed_dimensions():
    from keras_modern_cnn.cli import build_parser
    from keras_modern_cnn.cli.tune import search_space

    args = build_parser().parse_args(["tune", "resnet", "--optimizer", "sgd", "--learning-rate",
                                      "0.05", "--set", "width_ratio=0.25:0.5"])
    assert search_space(args) == {"width_ratio": (0.25, 0.5), "optimizer": "sgd", "learning_rate": 0.05}
    args = build_parser().parse_args(["tune", "unet", "--encoder", "resnet18"])
    assert search_space(args) == {"encoder": "resnet18"}


def test_old_spellings_still_work_with_a_deprecation_note(capsys):
    from keras_modern_cnn.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "bn_lenet", "--lr", "0.5"]).learning_rate == 0.5
    assert parser.parse_args(["tune", "lenet", "--directory", "d"]).output_dir == "d"
    assert parser.parse_args(["summary", "nin", "--input-shape", "64,64,1"]).input_shape == (64, 64, 1)
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        "kmc: note: --lr is deprecated and will be removed in the next release; use --learning-rate",
        "kmc: note: --directory is deprecated and will be removed in the next release; use --output-dir",
        "kmc: note: --input-shape is deprecated and will be removed in the next release; "
        "use --image-size and --channels",
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Everything the bad invocations point at: models, datasets, images, run directories."""
    import json

    import keras
    import numpy as np

    from keras_modern_cnn.config import config_to_json

    root = tmp_path_factory.mktemp("files")
    (root / "file").write_text("not a directory, not an image")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(8) % 4
    np.savez(root / "rgb.npz", x_train=np.repeat(images, 3, -1), y_train=labels,
             x_test=np.repeat(images, 3, -1), y_test=labels)
    np.savez(root / "float_labels.npz", x_train=images, y_train=labels + 0.25, x_test=images, y_test=labels)
    np.savez(root / "outlier.npz", x_train=images, y_train=np.r_[labels[:-1], 99999], x_test=images, y_test=labels)
    np.savez(root / "nan.npz", x_train=np.where(images > 250, np.nan, images), y_train=labels,
             x_test=images, y_test=labels)
    (root / "notzip.npz").write_text("not an archive")
    (root / "one_class" / "cat").mkdir(parents=True)
    keras.utils.save_img(root / "one_class" / "cat" / "0.png", np.repeat(images[0], 3, -1))
    (root / "empty").mkdir()
    keras.utils.save_img(root / "image.png", images[0])
    keras.utils.save_img(root / "image.jpg", images[0])
    (root / "existing.csv").write_text("image,rank,class,probability\n")
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    model.save(root / "model.keras")
    (root / "truncated.keras").write_bytes((root / "model.keras").read_bytes()[:100])
    segmenter = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(3, 1, activation="softmax")])
    segmenter.save(root / "segmenter.keras")
    (root / "masks").mkdir()
    (root / "masks" / "image_mask.png").write_bytes(b"")

    finished = root / "finished"
    finished.mkdir()
    config = recorded_config("bn_lenet", epochs=2, train_examples=64, test_examples=32,
                             output_dir=str(finished))
    (finished / "run.json").write_text(config_to_json(config))
    metrics = dict(model="bn_lenet", dataset="shapes", task="classification", epochs=2,
                   test_accuracy=0.5, test_loss=1.0, examples_per_second=1.0, parameters=1,
                   wall_time_seconds=1.0)
    (finished / "metrics.json").write_text(json.dumps(metrics))
    (finished / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")  # a consistent finished run
    (finished / "model.keras").write_bytes((root / "model.keras").read_bytes())
    unet_run = root / "unet_resnet18"
    unet_run.mkdir()
    config = recorded_config("unet", encoder="resnet18", image_size=32, epochs=2,
                             train_examples=64, test_examples=32, output_dir=str(unet_run))
    (unet_run / "run.json").write_text(config_to_json(config))
    (root / "orphan").mkdir()
    (root / "orphan" / "history.csv").write_text("epoch,loss\n0,1.0\n")
    return root


def recorded_config(model, **settings):
    """The configuration a run on this CPU records in run.json: the precision its device chose
    (`keras_modern_cnn.devices`), not the unresolved default."""
    from keras_modern_cnn.config import resolve_config

    return resolve_config(model, mixed_precision=False, **settings)


OTHER_BACKEND_STRATEGY = "mirrored" if keras.config.backend() == "jax" else "data-parallel"
TRAIN = ["--train-examples", "64", "--test-examples", "32", "--output-dir", "{tmp}/out"]
BAD_INVOCATIONS = [
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["list", "nothing*"], "Received: pattern='nothing*'"),
    (["summary", "lenet5"], "Received: name='lenet5'"),
    (["summary", "bn_lenet", "--width-ratio", "-1"], "Received: width_ratio=-1"),
    (["summary", "bn_lenet", "--input-shape", "a,b"], "must look like 96,96,1. Received: 'a,b'"),
    (["summary", "bn_lenet", "--image-size", "8"], "Received: input_shape=(8, 8, 1)"),
    (["info", "lenet5"], "Received: name='lenet5'"),
    (["train"], "the following arguments are required: model"),
    (["train", "lenet5", *TRAIN], "Received: name='lenet5'"),
    (["train", "bn_lenet", "--epochs", "-1", *TRAIN], "Received: epochs=-1"),
    (["train", "bn_lenet", "--epochs", "0", *TRAIN], "Received: epochs=0"),
    (["train", "bn_lenet", "--epochs", "two", *TRAIN], "invalid int value: 'two'"),
    (["train", "bn_lenet", "--batch-size", "0", *TRAIN], "Received: batch_size=0"),
    (["train", "bn_lenet", "--image-size", "0", *TRAIN], "Received: image_size=0"),
    (["train", "bn_lenet", "--image-size", "8", *TRAIN], "Received: input_shape=(8, 8, 1)"),
    (["train", "bn_lenet", "--learning-rate", "0", *TRAIN], "Received: learning_rate=0.0"),
    (["train", "bn_lenet", "--learning-rate", "inf", *TRAIN], "Received: learning_rate=inf"),
    (["train", "bn_lenet", "--learning-rate", "nan", *TRAIN], "Received: learning_rate=nan"),
    (["train", "bn_lenet", "--width-ratio", "0", *TRAIN], "Received: width_ratio=0.0"),
    (["train", "bn_lenet", "--train-examples", "0"], "Received: train_examples=0"),
    (["train", "bn_lenet", "--test-examples", "-5"], "Received: test_examples=-5"),
    (["train", "bn_lenet", "--optimizer", "lamb", *TRAIN], "invalid choice: 'lamb'"),
    (["train", "bn_lenet", "--precise-bn", "-1", *TRAIN], "Received: precise_bn=-1"),
    (["train", "bn_lenet", "--precise-bn", "5", "--no-precise-bn", *TRAIN],
     "argument --no-precise-bn: not allowed with argument --precise-bn"),
    (["train", "vgg16", "--recipe", "d2l", *TRAIN], "Received: model='vgg16'"),
    (["train", "bn_lenet", "--strategy", OTHER_BACKEND_STRATEGY, *TRAIN],
     f"Received: strategy={OTHER_BACKEND_STRATEGY!r}"),
    (["train", "bn_lenet", "--dataset", "no_such_dataset", *TRAIN], "Received: dataset='no_such_dataset'"),
    (["train", "bn_lenet", "--dataset", "mnist", "--no-download", "--data-dir", "{tmp}/empty", *TRAIN],
     "tfds build mnist"),
    (["train", "bn_lenet", "--dataset", "{tmp}/float_labels.npz", *TRAIN], "must hold integer labels"),
    (["train", "bn_lenet", "--dataset", "{tmp}/outlier.npz", *TRAIN], "Label 99999 is far outside"),
    (["train", "bn_lenet", "--dataset", "{tmp}/nan.npz", *TRAIN], "must hold finite numbers"),
    (["train", "bn_lenet", "--dataset", "{tmp}/missing.npz", *TRAIN], "No such `.npz` dataset file"),
    (["train", "bn_lenet", "--dataset", "{tmp}/notzip.npz", *TRAIN], "Cannot read the `.npz` file"),
    (["train", "bn_lenet", "--dataset", "{tmp}/one_class", *TRAIN], "at least 2 classes"),
    (["train", "bn_lenet", "--output-dir", "{tmp}/file/run"], "(/"),
    (["train", "bn_lenet", "--output-dir", "{tmp}/file"], "is a file"),
    (["train", "bn_lenet", "--epochs", "2", *TRAIN[:4], "--output-dir", "{tmp}/finished"],
     "holds a finished run of 2 epochs"),
    (["train", "bn_lenet", "--epochs", "2", "--learning-rate", "0.5", *TRAIN[:4], "--output-dir", "{tmp}/finished"],
     "other settings (learning_rate: 1.0 -> 0.5)"),
    (["train", "bn_lenet", "--epochs", "1", *TRAIN[:4], "--output-dir", "{tmp}/finished"],
     "already holds 2 trained epochs"),
    (["train", "bn_lenet", *TRAIN[:4], "--output-dir", "{tmp}/orphan"], "without its run.json"),
    (["train", "bn_lenet", "--encoder", "resnet18", *TRAIN],
     "bn_lenet is a classifier. Received: encoder='resnet18', model='bn_lenet'"),
    (["train", "unet", "--encoder", "resnet19", "--image-size", "32", *TRAIN],
     "Received: encoder='resnet19'"),
    (["train", "unet", "--encoder", "resnet18", "--image-size", "48", *TRAIN],
     "must be a multiple of 32 with encoder='resnet18' (its deepest stage reduces the input "
     "32x), e.g. 32 or 64. Received: image_size=48"),
    (["train", "unet", "--encoder", "resnet34", "--image-size", "32", *TRAIN[:4], "--output-dir",
      "{tmp}/unet_resnet18"], "other settings (encoder: 'resnet18' -> 'resnet34')"),
    (["compare"], "the following arguments are required: MODEL"),
    (["compare", "unet", "bn_lenet", "--encoder", "vgg11", "--image-size", "32", *TRAIN],
     "bn_lenet is a classifier. Received: encoder='vgg11'"),
    (["compare", "bn_lenet", "lenet5", *TRAIN], "Received: name='lenet5'"),
    (["compare", "bn_lenet", "--epochs", "0", *TRAIN], "Received: epochs=0"),
    (["evaluate", "{tmp}/missing.keras"], "No such model file"),
    (["evaluate", "{tmp}/truncated.keras"], "truncated.keras is not a complete .keras file"),
    (["evaluate", "{tmp}/file"], "not a readable zip archive"),
    (["evaluate", "{tmp}/model.keras", "--dataset", "{tmp}/rgb.npz"],
     "expects 1-channel images but the dataset has 3 channels"),
    (["evaluate", "{tmp}/model.keras", "--batch-size", "0"], "Received: batch_size=0"),
    (["evaluate", "{tmp}/model.keras", "--test-examples", "0"], "Received: test_examples=0"),
    (["predict", "{tmp}/model.keras"], "the following arguments are required: IMAGE"),
    (["predict", "{tmp}/model.keras", "{tmp}/missing.png"], "No such image file or folder"),
    (["predict", "{tmp}/model.keras", "{tmp}/file"], "Cannot read the image"),
    (["predict", "{tmp}/model.keras", "{tmp}/empty"], "The folder holds no image file"),
    (["predict", "{tmp}/model.keras", "{tmp}/image.png", "--top-k", "0"], "Received: top_k=0"),
    (["predict", "{tmp}/model.keras", "{tmp}/image.png", "--output", "{tmp}/p.txt"], "must end in .csv or .json"),
    (["predict", "{tmp}/model.keras", "{tmp}/image.png", "--output", "{tmp}/existing.csv"], "pass --overwrite"),
    (["predict", "{tmp}/truncated.keras", "{tmp}/image.png"], "not a complete .keras file"),
    (["predict", "{tmp}/model.keras", "{tmp}/image.png", "--output-dir", "{tmp}/out"],
     "this model is a classifier (--output FILE writes its predictions)"),
    (["predict", "{tmp}/segmenter.keras", "{tmp}/image.png"], "pass --output-dir DIR"),
    (["predict", "{tmp}/segmenter.keras", "{tmp}/image.png", "--output-dir", "{tmp}/out", "--output",
      "{tmp}/p.csv"], "a segmentation model writes mask images into --output-dir"),
    (["predict", "{tmp}/segmenter.keras", "{tmp}/image.png", "--output-dir", "{tmp}/file"],
     "is a file). Received: output_dir="),
    (["predict", "{tmp}/segmenter.keras", "{tmp}/image.png", "{tmp}/image.jpg", "--output-dir",
      "{tmp}/out"], "Two images would write the same mask"),
    (["predict", "{tmp}/segmenter.keras", "{tmp}/image.png", "--output-dir", "{tmp}/masks"],
     "masks/image_mask.png is in the way: kmc did not write it"),
    (["export", "{tmp}/missing.keras", "--output", "{tmp}/exported"], "No model file"),
    (["export", "{tmp}/model.keras"], "the following arguments are required: --output"),
    (["export", "{tmp}/truncated.keras", "--output", "{tmp}/exported"], "not a complete .keras file"),
    (["export", "{tmp}/model.keras", "--output", "{tmp}/x", "--format", "bogus"], "invalid choice: 'bogus'"),
    (["tune", "lenet5"], "invalid choice: 'lenet5'"),
    (["tune", "lenet", "--max-trials", "0", "--output-dir", "{tmp}/tune"], "Received: max_trials=0"),
    (["tune", "lenet", "--epochs", "0", "--output-dir", "{tmp}/tune"], "Received: epochs=0"),
    (["tune", "lenet", "--image-size", "0", "--output-dir", "{tmp}/tune"], "Received: image_size=0"),
    (["tune", "lenet", "--set", "depth", "--output-dir", "{tmp}/tune"], "`--set` takes NAME=VALUE"),
    (["tune", "lenet", "--learning-rate", "0.1", "--set", "learning_rate=1e-3:1e-2", "--output-dir",
      "{tmp}/tune"], "`learning_rate` is given twice"),
    (["tune", "lenet", "--output-dir", "{tmp}/file"], "Received: directory="),
    (["tune", "resnet", "--encoder", "resnet18", *TRAIN[:4], "--output-dir", "{tmp}/tune"],
     "HyperResNet has no search dimension 'encoder'"),
    (["tune", "unet", "--encoder", "resnet19", *TRAIN[:4], "--output-dir", "{tmp}/tune"],
     "Received: encoder='resnet19'"),
    (["tune", "lenet", "--tuner", "grid", "--output-dir", "{tmp}/tune"], "Received: tuner='grid'"),
    (["tune", "lenet", "--precise-bn", "-2", "--output-dir", "{tmp}/tune"], "Received: precise_bn=-2"),
    (["tune", "lenet", "--distributed", "boss", "--output-dir", "{tmp}/tune"],
     "Received: distributed='boss'"),
    (["tune", "lenet", "--distributed", "chief", "--oracle-address", "nowhere", "--output-dir",
      "{tmp}/tune"], "Received: --oracle-address='nowhere'"),
    (["convert", "resnet18", "imagenet"], "the following arguments are required: output"),
    (["convert", "resnet18", "imagenet", "{tmp}/resnet18.onnx"], "OUTPUT must end in .keras or .weights.h5"),
    (["convert", "resnet18", "imagenet", "{tmp}/model.keras"], "`output` exists; pass --overwrite"),
    (["convert", "resnet19", "imagenet", "{tmp}/resnet19.keras"], "Received: name='resnet19'"),
    (["data"], "the following arguments are required: ACTION"),
    (["data", "samples"], "needs --output-dir DIR. Received: output_dir=None"),
    (["data", "samples", "--output-dir", "{tmp}/out", "--per-class", "0"], "Received: per_class=0"),
    (["data", "samples", "--output-dir", "{tmp}/out", "--per-class", "5000"], "at most 1000"),
    (["data", "samples", "--output-dir", "{tmp}/out", "--image-size", "4"], "Received: image_size=4"),
    (["data", "samples", "--output-dir", "{tmp}/file"], "Received: output_dir="),
    (["data", "samples", "--output-dir", "{tmp}/out", "--channels", "2"], "invalid choice: 2"),
]


@pytest.mark.backend_independent  # argument and file checks, made before any model runs
@pytest.mark.parametrize("argv, message", BAD_INVOCATIONS)
def test_every_bad_invocation_is_one_line_on_stderr_and_exit_2(files, capsys, argv, message):
    argv = [arg.replace("{tmp}", str(files)) for arg in argv]
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        status = exit_info.code
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (files / "out").exists()  # nothing was written


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory):
    """A tiny U-Net on a ResNet-18 encoder, trained 1 epoch by `kmc train` (width and image
    size given too), and a few PNGs of other sizes than the model's 32x32."""
    root = tmp_path_factory.mktemp("unet")
    assert main(["train", "unet", "--encoder", "resnet18", "--width-ratio", "0.0625",
                 "--image-size", "32", "--epochs", "1", "--train-examples", "64",
                 "--test-examples", "32", "--batch-size", "32", "--quiet",
                 "--output-dir", str(root / "run")]) == 0
    from keras_modern_cnn.data import load_shapes

    (images, _, _), _ = load_shapes(num_train=3, num_test=1, image_size=40, seed=1)
    (root / "images" / "more").mkdir(parents=True)
    keras.utils.save_img(root / "images" / "a.png", images[0])
    keras.utils.save_img(root / "images" / "b.png", images[1][:28, :36])
    keras.utils.save_img(root / "images" / "more" / "a.png", images[2])  # the same name
    return root


@pytest.mark.slow
def test_train_unet_with_an_encoder_records_it_and_reports_iou_and_dice(unet_run):
    import json

    from keras_modern_cnn.config import read_run_file

    config, info = read_run_file(unet_run / "run" / "run.json")
    assert (config.model, config.encoder, config.width_ratio, config.image_size) == (
        "unet", "resnet18", 0.0625, 32)
    assert info["task"] == "segmentation" and info["num_classes"] == 11
    metrics = json.loads((unet_run / "run" / "metrics.json").read_text())
    assert metrics["encoder"] == "resnet18"
    assert 0.0 < metrics["test_mean_iou"] <= metrics["test_mean_dice"] <= 1.0
    model = keras.saving.load_model(unet_run / "run" / "model.keras")
    assert model.get_layer("conv5_block2_out") and model.output_shape == (None, 32, 32, 11)


@pytest.mark.slow
def test_predict_on_a_segmentation_run_writes_masks_at_each_image_size(unet_run, capsys):
    import numpy as np
    from PIL import Image

    out = unet_run / "masks"
    assert main(["predict", str(unet_run / "run" / "model.keras"), str(unet_run / "images"),
                 "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    for name, size in (("a", (40, 40)), ("b", (36, 28)), ("more/a", (40, 40))):
        mask = Image.open(out / f"{name}_mask.png")
        assert mask.mode == "P" and mask.size == size
        assert np.asarray(mask).max() < 11  # class indices of background + ten shapes
        # input | mask | overlay, each enlarged by a whole factor to >= 256 px, a caption
        # line above and a legend below.
        overlay = Image.open(out / f"{name}_overlay.png")
        scale = -(-256 // size[1])
        assert overlay.width == 3 * size[0] * scale and overlay.height > size[1] * scale
        assert f"{out / name}_mask.png (" in printed
    assert sorted(p.name for p in out.rglob("*") if ".tmp" in p.name) == []
    assert main(["predict", str(unet_run / "run" / "model.keras"), str(unet_run / "images"),
                 "--output-dir", str(out), "--overwrite"]) == 0


@pytest.mark.backend_independent  # numpy and PIL
def test_data_samples_writes_images_and_masks_per_class_and_refuses_to_overwrite(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from keras_modern_cnn.data.embedded import SHAPE_CLASSES

    out = tmp_path / "samples"
    assert main(["data", "samples", "--output-dir", str(out), "--per-class", "2"]) == 0
    assert "wrote 20 images (2 per class)" in capsys.readouterr().out
    for label, name in enumerate(SHAPE_CLASSES):
        images = sorted(p.name for p in (out / "images" / name).iterdir())
        assert images == [f"{name}_0.png", f"{name}_1.png"]
        for image_name in images:
            image = Image.open(out / "images" / name / image_name)
            mask = np.asarray(Image.open(out / "masks" / name / image_name))
            assert image.mode == "L" and image.size == (28, 28) and mask.shape == (28, 28)
            assert set(np.unique(mask)) == {0, label + 1}  # background and this shape
            # The shape is where the mask says: brighter than the background.
            pixels = np.asarray(image).astype(float)
            assert pixels[mask > 0].mean() > pixels[mask == 0].mean() + 60
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    assert main(["data", "samples", "--output-dir", str(out), "--per-class", "2"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before
    (out / "mine.txt").write_text("kept")
    assert main(["data", "samples", "--output-dir", str(out), "--per-class", "2", "--overwrite",
                 "--seed", "1"]) == 0
    assert (out / "mine.txt").read_text() == "kept" and not list(out.rglob("*.tmp*"))
    # The images are an image-folder dataset.
    from keras_modern_cnn.data import load_data

    data = load_data(str(out / "images"), image_size=28)
    assert data.class_names == tuple(sorted(SHAPE_CLASSES)) and data.num_train + data.num_test == 20


def test_the_table_covers_every_subcommand_with_at_least_40_invocations():
    from keras_modern_cnn.cli import SUBCOMMAND_MODULES, build_parser

    assert len(BAD_INVOCATIONS) >= 40 and SUBCOMMAND_MODULES
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert set(subcommands) <= {argv[0] for argv, _ in BAD_INVOCATIONS if argv}


def test_console_entry_point_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "keras_modern_cnn.cli", "list"],
        capture_output=True, text=True, check=True,
    )
    assert "bn_lenet" in result.stdout
