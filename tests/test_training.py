"""`kmc train` / `compare` / `evaluate` / `predict`: outputs, recipes, the run directory's rules,
kills at named moments, non-finite losses."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_modern_cnn.cli import main
from keras_modern_cnn.data import SHAPE_CLASSES, load_shapes
from keras_modern_cnn.config import resolve_config
from keras_modern_cnn.files import BLOCK_POINTS
from keras_modern_cnn.rundir import read_history

# Slow (whole `kmc train` runs, kills and resumes): left out of `make test-fast`.
pytestmark = pytest.mark.slow

TINY = ["--train-examples", "256", "--test-examples", "128", "--batch-size", "64", "--quiet"]


def test_train_writes_history_curves_logs_metrics_and_a_reloadable_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "bn_lenet", "--epochs", "2", "--width-ratio", "0.5",
                 "--output-dir", str(out), *TINY]) == 0
    # --quiet: the final summary only, no data line, no progress.
    assert capsys.readouterr().out.splitlines()[0].startswith("test accuracy: ")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["dataset"] == "shapes"
    assert metrics["examples_per_second"] > 0 and metrics["parameters"] > 0
    history = read_history(out / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])
    assert history[-1]["val_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    # Precise BN by default, over all 4 training batches (fewer than the default 100), before
    # each of the two validations; the same model with its moving averages measured too.
    precise = metrics["precise_bn"]
    assert (precise["batches"], precise["samples"], precise["estimations"]) == (4, 256, 2)
    assert 0 <= metrics["ema_test_accuracy"] <= 1 and np.isfinite(metrics["ema_test_loss"])
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert any(files for _, _, files in os.walk(out / "logs"))  # TensorBoard event files
    assert not (out / "backup").exists()  # the checkpoint goes once training has finished
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["epochs"] == 2 and run["config"]["width_ratio"] == 0.5
    assert run["config"]["precise_bn"] == 100
    assert run["data"]["class_names"] == list(SHAPE_CLASSES)

    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert main(["evaluate", str(out / "model.keras"), "--test-examples", "128"]) == 0
    evaluated = capsys.readouterr().out
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in evaluated

    (_, (images, labels, _)) = load_shapes(num_train=1, num_test=3, seed=5)
    keras.utils.save_img(tmp_path / "shape.png", images[0])
    assert main(["predict", str(out / "model.keras"), str(tmp_path / "shape.png"), "--top-k", "2"]) == 0
    prediction = capsys.readouterr().out.strip()
    assert prediction.startswith(f"{tmp_path / 'shape.png'}: ")
    assert sum(name in prediction for name in SHAPE_CLASSES) == 2

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        keras.utils.save_img(folder / f"{index}.png", images[index])
    for output in ("predictions.csv", "predictions.json"):
        assert main(["predict", str(out / "model.keras"), str(folder), "--top-k", "1",
                     "--output", str(tmp_path / output)]) == 0
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "image,rank,class,probability" and len(rows) == 4
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert [r["image"] for r in records] == [str(folder / f"{i}.png") for i in range(3)]
    assert all(r["predictions"][0]["class"] in SHAPE_CLASSES for r in records)
    assert [row.split(",")[2] for row in rows[1:]] == [r["predictions"][0]["class"] for r in records]


def test_device_defaults_resolve_per_backend_and_device_and_explicit_flags_win(monkeypatch):
    from keras_modern_cnn import devices
    from keras_modern_cnn.cli import build_parser

    backend = keras.config.backend()
    compiler = "torch.compile" if backend == "torch" else "XLA"
    xla = backend != "torch"  # the GPU rows: XLA on for TensorFlow and JAX
    device = ("cpu", None)
    monkeypatch.setattr(devices, "detect_device", lambda _: device)
    # The CPU rows keep what Keras chose before the table (XLA on JAX only), in float32.
    monkeypatch.setattr(devices, "cpu_cores", lambda: 2)
    cpu = devices.device_settings(resolve_config("bn_lenet"), 2)
    assert cpu.summary() == (f"device: 2 CPU devices, 2 cores ({backend}) - {compiler} "
                             f"{'on' if backend == 'jax' else 'off'}, float32, channels_last")
    assert "BENCHMARKS.md" in cpu.reasons["dtype_policy"]
    for capability, policy in [((8, 0), "mixed_bfloat16"), ((7, 5), "mixed_float16")]:
        device = ("gpu", capability)
        gpu = devices.device_settings(resolve_config("bn_lenet"), 1)
        assert gpu.summary() == (f"device: 1 GPU ({backend}) - {compiler} "
                                 f"{'on' if xla else 'off'}, {policy}, channels_last")
    if xla:
        mirrored = devices.device_settings(resolve_config("bn_lenet", strategy="mirrored"), 1)
        assert not mirrored.jit_compile
        assert mirrored.reasons["jit_compile"] == devices.TF_DISTRIBUTE_NO_XLA
    # A CPU with bfloat16 arithmetic: mixed precision means mixed_bfloat16, the default where
    # it measured faster (TensorFlow), with the reason and the features in run.json.
    device = ("cpu", None)
    for features, defaults in [
        ("avx512_bf16", {"tensorflow": True, "jax": False, "torch": False}),
        ("amx_bf16,avx512_bf16", {"tensorflow": True, "jax": False, "torch": False}),
    ]:
        monkeypatch.setenv("KMC_CPU_FEATURES", features)
        bf16 = devices.device_settings(resolve_config("bn_lenet"), 1)
        assert bf16.cpu_features == tuple(features.split(","))
        assert bf16.dtype_policy == ("mixed_bfloat16" if defaults[backend] else "float32")
        assert bf16.reasons["dtype_policy"].startswith(features.split(",")[0] + ":")
        explicit = devices.device_settings(resolve_config("bn_lenet", mixed_precision=True), 1)
        assert explicit.dtype_policy == "mixed_bfloat16"
    monkeypatch.setenv("KMC_CPU_FEATURES", "")
    assert devices.device_settings(resolve_config("bn_lenet", mixed_precision=True), 1
                                   ).dtype_policy == "mixed_float16"
    device = ("gpu", (8, 0))
    args = build_parser().parse_args(["train", "bn_lenet", "--no-mixed-precision",
                                      "--jit-compile", "off" if xla else "on"])
    explicit = devices.device_settings(resolve_config(
        "bn_lenet", mixed_precision=args.mixed_precision, jit_compile=args.jit_compile), 1)
    assert (explicit.jit_compile, explicit.dtype_policy) == (not xla, "float32")
    assert set(explicit.reasons.values()) == {devices.EXPLICIT, gpu.reasons["data_format"]}
    with pytest.raises(ValueError, match="Received: mixed_precision='yes'"):
        resolve_config("bn_lenet", mixed_precision="yes")


# The CPU's own choice (op by op, JAX's eager mode, would slow the test 5x), given explicitly.
JIT_AS_DEFAULT = "on" if keras.config.backend() == "jax" else "off"


def test_compare_writes_results_and_pictures_under_mixed_precision(tmp_path, capsys):
    out = tmp_path / "compare"
    assert main(["compare", "bn_lenet", "nin", "--epochs", "1", "--image-size", "68",
                 "--width-ratio", "0.125", "--learning-rate", "0.1", "--mixed-precision",
                 "--jit-compile", JIT_AS_DEFAULT, "--batch-size", "32", "--train-examples", "64",
                 "--test-examples", "32", "--output-dir", str(out)]) == 0
    # Output is not a terminal: one progress line per epoch, no carriage-return frames; the
    # 28px shapes are upsampled 2.4x, which a notice names.
    printed = capsys.readouterr().out
    # Each run starts with its device line; the explicit flags won over the CPU's defaults.
    backend = keras.config.backend()
    compiler = "torch.compile" if backend == "torch" else "XLA"
    # One CPU device using every core the process may run on (not "CPU x1" on a 2-core machine).
    cores = len(os.sched_getaffinity(0))
    device_line = (f"device: 1 CPU device, {cores} core{'s' if cores > 1 else ''} ({backend}) - "
                   f"{compiler} {JIT_AS_DEFAULT}, mixed_float16, channels_last")
    lines = printed.splitlines()
    assert [lines[lines.index(f"== {name}") + 1] for name in ("bn_lenet", "nin")] == [device_line] * 2
    recorded = json.loads((out / "nin" / "run.json").read_text())["device"]
    assert recorded["dtype_policy"] == "mixed_float16"
    assert recorded["reasons"]["jit_compile"] == recorded["reasons"]["dtype_policy"] == "given explicitly"
    assert "\r" not in printed and printed.count(" - val_accuracy: ") == 2
    assert printed.count("note: 28x28 images are resized 2.43x to 68x68") == 2
    table = (out / "results.md").read_text().splitlines()
    assert table[0] == "| model | params | test accuracy | examples/sec | epochs |"
    assert [line.split("|")[1].strip() for line in table[2:]] == ["`bn_lenet`", "`nin`"]
    assert all(line.split("|")[5].strip() == "1" for line in table[2:])
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["model"], row["learning_rate"], row["epochs"]) for row in rows] == [
        ("bn_lenet", "0.1", "1"), ("nin", "0.1", "1")]
    for picture in ("curves.png", "comparison.png"):
        assert round(keras.utils.load_img(out / picture).info["dpi"][0]) == 200  # legible at 2x
    for name in ("bn_lenet", "nin"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert np.isfinite(metrics["test_loss"]) and metrics["image_size"] == 68
    model = keras.saving.load_model(out / "nin" / "model.keras")
    assert model.layers[1].dtype_policy.name == "mixed_float16"
    assert model.input_shape == (None, 68, 68, 1)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


KILL_RUN = ["train", "bn_lenet", "--epochs", "2", "--train-examples", "64", "--test-examples",
            "32", "--batch-size", "32", "--width-ratio", "0.25", "--quiet"]


@pytest.mark.parametrize("point", BLOCK_POINTS)
def test_kill_9_at_a_named_moment_then_rerun_trains_every_epoch_exactly_once(tmp_path, capsys, point):
    out, marker = tmp_path / "run", tmp_path / "blocked"
    command = [sys.executable, "-m", "keras_modern_cnn.cli", *KILL_RUN, "--output-dir", str(out)]
    environment = dict(os.environ, KMC_TEST_BLOCK_AT=point, KMC_TEST_MARKER=str(marker))
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():  # the process is now waiting at `point`
            assert first.poll() is None and time.monotonic() < deadline, "training ended before the kill"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL and marker.read_text() == point
    assert not (out / "metrics.json").exists()
    done = {"mid-epoch": 1, "epoch-checkpoint": 1, "model-save": 2}[point]
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"] == done

    assert main([*KILL_RUN[:-1], "--output-dir", str(out)]) == 0  # not --quiet: notices shown
    resumed = "resuming from epoch 2 of 2" if done < 2 else "resuming: all 2 epochs trained"
    assert resumed in capsys.readouterr().out
    assert [row["epoch"] for row in read_history(out / "history.csv")] == [1, 2]
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    assert not (out / "backup").exists()
    assert not [path for path in out.rglob("*") if ".tmp" in path.name]
    keras.saving.load_model(out / "model.keras", safe_mode=True)


def test_run_directory_resumes_refuses_extends_and_overwrites(tmp_path, capsys):
    out = tmp_path / "run"
    run = [*KILL_RUN[:2], "--train-examples", "64", "--test-examples", "32", "--batch-size", "32",
           "--quiet", "--output-dir", str(out)]
    assert main([*run, "--epochs", "1"]) == 0
    # A run.json written before `precise_bn` existed (issue 32) resumes all the same.
    record = json.loads((out / "run.json").read_text())
    del record["config"]["precise_bn"]
    (out / "run.json").write_text(json.dumps(record))
    finished = {name: (out / name).read_bytes() for name in ("run.json", "history.csv", "metrics.json")}

    for extra, message in [
        (["--epochs", "1"], "holds a finished run of 1 epochs"),
        (["--epochs", "1", "--learning-rate", "0.5", "--optimizer", "adam"],
         "other settings (optimizer: 'sgd' -> 'adam'; learning_rate: 1.0 -> 0.5)"),
        (["--epochs", "1", "--resume"], "--resume trains on only with more --epochs"),
    ]:
        capsys.readouterr()
        assert main([*run, *extra]) == 2
        assert message in capsys.readouterr().err
        # Refused before touching anything.
        assert {name: (out / name).read_bytes() for name in finished} == finished

    # history.csv counts epochs from 1, as the progress lines; a run written when it counted
    # from 0 resumes renumbered. precise_bn changes the statistics validated and saved, not
    # training: it may change.
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and history[1].startswith("1,")
    (out / "history.csv").write_text("\n".join([history[0], "0," + history[1][2:]]) + "\n")
    assert main([*[arg for arg in run if arg != "--quiet"], "--epochs", "2", "--resume",
                 "--no-precise-bn"]) == 0
    assert "resuming from epoch 2 of 2" in capsys.readouterr().out
    assert [row["epoch"] for row in read_history(out / "history.csv")] == [1, 2]
    assert [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()] == ["epoch", "1", "2"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["precise_bn"] is None and "ema_test_accuracy" not in metrics
    assert json.loads((out / "run.json").read_text())["config"]["precise_bn"] == 0
    assert main([*run, "--epochs", "1", "--resume"]) == 2
    assert "already holds 2 trained epochs" in capsys.readouterr().err

    assert main([*run, "--epochs", "1", "--optimizer", "adam", "--overwrite"]) == 0
    assert [row["epoch"] for row in read_history(out / "history.csv")] == [1]
    assert json.loads((out / "run.json").read_text())["config"]["optimizer"] == "adam"


def test_a_non_finite_loss_stops_the_run_and_saves_nothing_of_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*KILL_RUN[:2], "--epochs", "1", "--learning-rate", "1e30", "--train-examples", "64",
                 "--test-examples", "32", "--batch-size", "32", "--quiet",
                 "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Training stopped: " in err and "epoch 1" in err and "Received: learning_rate=1e+30" in err
    assert len(err.strip().splitlines()) == 1
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()
    assert read_history(out / "history.csv") == []


@pytest.fixture
def tiny_segmenter():
    """A two-layer per-pixel classifier registered for the duration of one test."""
    from keras_modern_cnn import registry

    @registry.register_model(name="tiny_segmenter", family="test", task="segmentation",
                             default_input_shape=(32, 32, 1), reference="test only")
    def tiny_segmenter(input_shape=(32, 32, 1), classes=2):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Conv2D(classes, 1, activation="softmax")(x))

    yield "tiny_segmenter"
    registry.unregister_model("tiny_segmenter")


def test_segmentation_models_train_on_masks_with_mean_iou_and_dice(tmp_path, tiny_segmenter):
    from keras_modern_cnn.training import train

    config = resolve_config(tiny_segmenter, epochs=1, batch_size=32, learning_rate=0.1,
                            train_examples=64, test_examples=32, output_dir=str(tmp_path))
    metrics = train(config, verbose=0)
    assert metrics["task"] == "segmentation" and len(metrics["class_names"]) == 11
    iou, dice = metrics["test_mean_iou"], metrics["test_mean_dice"]
    assert 0.0 < iou <= dice <= 1.0  # per class, Dice = 2 IoU / (1 + IoU) >= IoU
    assert {"val_mean_iou", "val_mean_dice"} <= set(read_history(tmp_path / "history.csv")[0])
    model = keras.saving.load_model(tmp_path / "model.keras")
    assert model.output_shape == (None, 32, 32, 11)


def test_mean_dice_matches_numpy_over_the_classes_present():
    """Dice = 2 TP / (2 TP + FP + FN) per class, averaged over the classes in the labels or the
    predictions (as `MeanIoU`); class 3 appears in neither and is left out."""
    from keras_modern_cnn.metrics import MeanDice

    y_true = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    y_pred = np.array([[0, 1, 1, 1], [2, 0, 4, 4]])
    true, pred = y_true.ravel(), y_pred.ravel()
    expected = [
        2 * np.sum((true == c) & (pred == c)) / (np.sum(true == c) + np.sum(pred == c))
        for c in range(5) if np.any(true == c) or np.any(pred == c)
    ]
    assert len(expected) == 4 and expected[3] == 0.0  # class 4: predicted, never true
    metric = MeanDice(num_classes=5)
    metric.update_state(y_true[:1], y_pred[:1])  # accumulates over batches
    metric.update_state(y_true[1:], y_pred[1:])
    np.testing.assert_allclose(float(metric.result()), np.mean(expected), rtol=1e-6)
    one_hot = MeanDice(num_classes=5, sparse_y_pred=False)
    one_hot.update_state(y_true, np.eye(5)[y_pred])
    np.testing.assert_allclose(float(one_hot.result()), np.mean(expected), rtol=1e-6)
    assert MeanDice.from_config(metric.get_config()).num_classes == 5
