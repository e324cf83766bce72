"""`kmc convert` and `kmc train --weights` (fine-tuning), through the real CLI, in process.

What runs here is parsing, files and the fine-tuning set-up (head, preprocessing, frozen
BatchNorm): the TensorFlow pass covers it (the conversions run on every backend in
tests/test_weights_convert.py).
"""

import json

import numpy as np
import pytest
from _torch_models import torchvision
from test_weights import resnet18_keys, torch_state_dict

import keras_modern_cnn as kmc
from keras_modern_cnn import ownership
from keras_modern_cnn.cli import main
from keras_modern_cnn.layers import BatchNorm

# Whole kmc commands (a conversion, fine-tuning runs): make test only, not test-fast.
pytestmark = [pytest.mark.backend_independent, pytest.mark.slow]
torch = pytest.importorskip("torch")


def test_kmc_convert_writes_a_keras_model_or_weights_file_and_never_replaces_one_unasked(tmp_path, capsys):
    reference = torchvision().resnet18().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    output = tmp_path / "resnet18.keras"
    assert main(["convert", "resnet18", str(tmp_path / "resnet18.pth"), str(output),
                 "--include-preprocessing"]) == 0
    assert f"converted {tmp_path / 'resnet18.pth'} into resnet18 (11,699,112 parameters, with its " \
           f"preprocessing): {output}" in capsys.readouterr().out
    model = kmc.saving.load_model(output)
    assert model.get_layer("preprocessing").mean == (0.485, 0.456, 0.406)
    np.testing.assert_array_equal(model.get_layer("conv1_conv").kernel,
                                  reference.conv1.weight.detach().numpy().transpose(2, 3, 1, 0))
    # Without a run.json: raw pixels in (the model normalises), ImageNet's class names out.
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3)).astype("uint8")).save(tmp_path / "a.png")
    assert main(["predict", str(output), str(tmp_path / "a.png"), "--top-k", "1"]) == 0
    name = capsys.readouterr().out.split(": ")[1].rsplit(" ", 1)[0]
    assert name in {name for _, name in kmc.weights.imagenet_classes()}
    before = output.read_bytes()
    assert main(["convert", "resnet18", str(tmp_path / "resnet18.pth"), str(output)]) == 2
    assert "exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert output.read_bytes() == before
    weights = tmp_path / "resnet18.weights.h5"
    assert main(["convert", "resnet18", str(tmp_path / "resnet18.pth"), str(weights), "--no-top"]) == 0
    features = kmc.ResNet18(include_top=False, pooling="avg", weights=str(weights))
    np.testing.assert_array_equal(features.get_layer("conv1_conv").kernel, model.get_layer("conv1_conv").kernel)
    run = tmp_path / "run"  # a run's own model is never replaced, even with --overwrite
    run.mkdir()
    ownership.record(str(run), "run", ["model.keras"])
    (run / "model.keras").write_bytes(b"the run's model")
    for argv, message in [
        (["convert", "resnet18", str(tmp_path / "resnet18.pth"), str(run / "model.keras"), "--overwrite"],
         "model.keras belongs to the run in"),
        (["convert", "resnet18", str(tmp_path / "resnet18.pth"), str(tmp_path / "x.h5")], "must end in .keras or .weights.h5"),
        (["convert", "resnet18", str(tmp_path / "resnet18.pth"), str(weights), "--include-preprocessing"],
         "write a .keras file"),
        (["convert", "resnet18", str(tmp_path / "missing.pth"), str(tmp_path / "y.keras")], "Received: weights="),
        (["convert", "bn_lenet", str(tmp_path / "resnet18.pth"), str(tmp_path / "y.keras")],
         "no PyTorch layout for the lenet family"),
    ]:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "y.keras").exists()
    assert (run / "model.keras").read_bytes() == b"the run's model"


def test_kmc_train_fine_tunes_pretrained_weights_with_a_new_head_and_frozen_batch_norm(tmp_path, capsys):
    source = kmc.ResNet18(width_ratio=1 / 16, input_shape=(32, 32, 3))  # trainable weights...
    rng = np.random.default_rng(0)
    for layer in source.layers:  # ... and statistics that are not the initial ones
        if isinstance(layer, BatchNorm):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype("float32"))
    state = {k: torch.from_numpy(np.ascontiguousarray(v))
             for k, v in torch_state_dict(source, "resnet", resnet18_keys()).items()}
    torch.save(state, tmp_path / "pretrained.pth")
    common = ["--width-ratio", "0.0625", "--image-size", "32", "--epochs", "1", "--batch-size", "32",
              "--learning-rate", "0.01",
              "--train-examples", "64", "--test-examples", "32", "--quiet"]
    run = tmp_path / "run"
    assert main(["train", "resnet18", "--weights", str(tmp_path / "pretrained.pth"),
                 "--output-dir", str(run), *common]) == 0
    config = json.loads((run / "run.json").read_text())["config"]
    assert (config["weights"], config["freeze_batch_norm"], config["normalization"]) == (
        str(tmp_path / "pretrained.pth"), True, "none")
    model = kmc.saving.load_model(run / "model.keras")
    # Grayscale shapes, RGB weights: the model repeats the channel and normalises inside.
    assert model.get_layer("preprocessing").grayscale_to_rgb and model.input_shape == (None, None, None, 1)
    assert model.output_shape == (None, 10)  # the 1000-class head replaced
    batch_norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    assert batch_norms and all(layer.frozen for layer in batch_norms)
    for layer in batch_norms:  # frozen: the pretrained statistics, untouched by the epoch
        np.testing.assert_array_equal(layer.moving_mean, source.get_layer(layer.name).moving_mean)
    assert main(["evaluate", str(run / "model.keras")]) == 0
    assert "test accuracy" in capsys.readouterr().out

    # A run's own model as the starting point, on 3 other classes: it continues as saved
    # (preprocessing inside, so raw pixels again), with a new head.
    from keras_modern_cnn.config import resolve_config
    from keras_modern_cnn.weights.loading import build_pretrained

    weights = str(run / "model.keras")
    config = resolve_config("resnet18", weights=weights, freeze_batch_norm=False, image_size=32,
                            output_dir=str(tmp_path / "second"))
    assert (config.normalization, config.freeze_batch_norm) == ("none", False)
    tuned = build_pretrained("resnet18", weights, classes=3, freeze_batch_norm=False, input_shape=(32, 32, 1))
    assert tuned.output_shape == (None, 3) and tuned.get_layer("preprocessing").grayscale_to_rgb
    assert not any(layer.frozen for layer in tuned.layers if isinstance(layer, BatchNorm))
    with pytest.raises(ValueError, match=r"holds a 'resnet18' model, not resnet34"):
        build_pretrained("resnet34", weights, classes=3, input_shape=(32, 32, 1))


@pytest.mark.parametrize("argv, message", [
    (["--weights", "imagenet", "--normalization", "scale"], "`normalization` must be 'none'"),
    (["--freeze-batch-norm"], "it needs `weights`"),
    (["--weights", "IMAGENET1K_V2"], "'IMAGENET1K_V2' is a preset of 'resnet50_tv'"),
    (["--weights", "README.md"], "must be a weights file (.keras, .weights.h5"),
])
def test_kmc_train_weights_mistakes_are_one_line(argv, message, tmp_path, capsys):
    model = "resnet50" if "IMAGENET1K_V2" in argv else "resnet18"
    assert main(["train", model, *argv, "--output-dir", str(tmp_path / "run"), "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "run").exists()
