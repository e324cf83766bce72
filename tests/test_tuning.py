"""KerasTuner hypermodels and `kmc tune`: search spaces, overrides, failed trials, resume, distributed."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import keras_tuner
import numpy as np
import pytest

from keras_modern_cnn.applications import BNLeNet, DenseNet, ResNet
from keras_modern_cnn.cli import main
from keras_modern_cnn.data import load_shapes
from keras_modern_cnn.layers.precise_bn import estimate_statistics
from keras_modern_cnn.tuning import (
    EXECUTIONS_FILE,
    HYPERMODELS,
    HyperLeNet,
    HyperResNet,
    HyperUNet,
    make_tuner,
)

# Slow (real KerasTuner searches, distributed ones in subprocesses): left out of `make test-fast`.
pytestmark = pytest.mark.slow

COMMON = {"width_ratio": 1.0, "learning_rate": 1e-3, "optimizer": "adam"}
FAMILY_DEFAULTS = {
    "lenet": {"dense_layers": 2, "dense_units": 120, "batch_norm": True},
    "alexnet": {"batch_norm": False, "dense_units": 4096, "dropout_rate": 0.5},
    "vgg": {"variant": "vgg11", "batch_norm": False, "dense_units": 4096},
    "nin": {"dropout_rate": 0.5},
    "googlenet": {"batch_norm": False},
    "resnet": {
        "block_type": "basic", **{f"stack_depth_{i}": 2 for i in range(1, 5)},
        "drop_path_rate": 0.0, "zero_init_last_bn": False,
    },
    "densenet": {
        **{f"block_depth_{i}": 4 for i in range(1, 5)}, "growth_rate": 32, "bottleneck": False,
        "drop_path_rate": 0.0,
    },
    "unet": {"encoder": "classic", "depth": 4, "batch_norm": False},
}
# Smallest inputs and cheap fixed dimensions so that every family builds in about a second.
TINY = {
    "lenet": ((16, 16, 1), {}),
    "alexnet": ((67, 67, 3), {"dense_units": 16}),
    "vgg": ((32, 32, 3), {"dense_units": 16}),
    "nin": ((67, 67, 3), {}),
    "googlenet": ((32, 32, 3), {}),
    "resnet": ((32, 32, 3), {}),
    "densenet": ((32, 32, 1), {"growth_rate": 4}),
    "unet": ((16, 16, 1), {"depth": 2}),
}
TUNE = ["tune", "lenet", "--image-size", "16", "--train-examples", "64", "--test-examples", "32",
        "--batch-size", "32", "--epochs", "1", "--set", "width_ratio=0.25:0.5", "--quiet"]


def shapes(count, size=16, seed=0):
    (images, labels, masks), _ = load_shapes(num_train=count, num_test=1, image_size=size, seed=seed)
    return images.astype("float32") / 255.0, labels, masks


def test_search_space_names_defaults_and_every_default_model_reloads_in_safe_mode(tmp_path):
    # The defaults are the reference models: BN-LeNet (LeNet-5 widths), ResNet-18, d2l DenseNet.
    references = {
        "lenet": lambda **kwargs: BNLeNet(**kwargs),
        "resnet": lambda **kwargs: ResNet((2, 2, 2, 2), "basic", **kwargs),
        "densenet": lambda **kwargs: DenseNet(growth_rate=4, **kwargs),
    }
    assert sorted(HYPERMODELS) == sorted(FAMILY_DEFAULTS)
    for family, hypermodel_class in HYPERMODELS.items():
        space = hypermodel_class.default_search_space()
        assert {name: spec.default for name, spec in space.items()} == {**FAMILY_DEFAULTS[family], **COMMON}
        assert space["learning_rate"].sampling == "log"

        input_shape, fixed = TINY[family]
        hypermodel = hypermodel_class(input_shape=input_shape, classes=3, width_ratio=0.125, **fixed)
        hp = keras_tuner.HyperParameters()
        model = hypermodel.build(hp)
        assert hp.values == {**FAMILY_DEFAULTS[family], **COMMON, "width_ratio": 0.125, **fixed}
        if family in references:
            reference = references[family](input_shape=input_shape, classes=3, width_ratio=0.125)
            assert model.count_params() == reference.count_params()
        path = tmp_path / f"{family}.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
        assert reloaded.output_shape == model.output_shape and model.output_shape[-1] == 3
        for saved, loaded in zip(model.weights, reloaded.weights, strict=True):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(loaded))
        keras.backend.clear_session()


def test_constructor_fixes_and_narrows_and_bad_values_name_the_argument():
    hypermodel = HyperResNet(
        input_shape=(32, 32, 3), classes=10, width_ratio=0.5, optimizer=["sgd", "adam"],
        learning_rate=(1e-3, 1e-2), stack_depth_3=[1, 3],
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hypermodel.make_optimizer(hp)  # registers the training dimensions
    configs = {p.name: (type(p).__name__, p.get_config()) for p in hp.space}
    assert configs["width_ratio"][0] == "Fixed" and configs["width_ratio"][1]["value"] == 0.5
    assert configs["optimizer"][0] == "Choice" and configs["optimizer"][1]["values"] == ["sgd", "adam"]
    assert configs["optimizer"][1]["default"] == "adam"
    kind, learning_rate = configs["learning_rate"]
    assert kind == "Float" and (learning_rate["min_value"], learning_rate["max_value"]) == (1e-3, 1e-2)
    assert learning_rate["sampling"] == "log" and learning_rate["default"] == 1e-3
    assert configs["stack_depth_3"][1]["values"] == [1, 3]
    assert configs["stack_depth_1"][0] == "Int" and configs["block_type"][0] == "Choice"

    for kwargs, message in [
        (dict(depth=3), "has no search dimension 'depth'"),
        (dict(width_ratio=-1), "Received: width_ratio=-1"),
        (dict(optimizer=["adam", "lamb"]), "Received: optimizer='lamb'"),
        (dict(learning_rate=(0.0, 0.1)), "Received: learning_rate=0.0"),
        (dict(block_type=("basic", "bottleneck")), "not a range"),
        (dict(stack_depth_1=(3, 1)), "low <= high"),
        (dict(stack_depth_1=1.5), "Received: stack_depth_1=1.5"),
        (dict(label_mode="sparse"), "Received: label_mode='sparse'"),
        (dict(classes=None), "Received: classes=None"),
    ]:
        arguments = {"input_shape": (32, 32, 3), "classes": 10, **kwargs}
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            HyperResNet(**arguments)


def test_depth_width_and_learning_rate_reach_the_built_model():
    def build(hypermodel, **values):
        hp = keras_tuner.HyperParameters()
        for name, value in values.items():
            hp.Fixed(name, value)
        return hypermodel.build(hp)

    resnet = HyperResNet(input_shape=(32, 32, 3), classes=10, width_ratio=0.25)
    shallow, deep = build(resnet, stack_depth_3=1), build(resnet, stack_depth_3=3)
    # Two more basic blocks of f = 256 * 0.25 channels: two 3x3 convolutions with bias and
    # two BatchNorms (gamma, beta, moving mean and variance) each.
    f = 64
    assert deep.count_params() - shallow.count_params() == 2 * (2 * (9 * f * f + f) + 2 * 4 * f)
    assert "conv4_block3_out" in [layer.name for layer in deep.layers]
    assert "conv4_block2_out" not in [layer.name for layer in shallow.layers]

    lenet = HyperLeNet(input_shape=(16, 16, 1), classes=10)
    narrow, wide = build(lenet, width_ratio=0.5), build(lenet, width_ratio=2.0)
    assert (narrow.get_layer("conv1_conv").filters, wide.get_layer("conv1_conv").filters) == (3, 12)
    assert narrow.get_layer("conv2_conv").filters == 8 and wide.get_layer("conv2_conv").filters == 32
    three = build(lenet, dense_layers=3, dense_units=200)
    assert [three.get_layer(f"fc{i}").units for i in (1, 2, 3)] == [200, 140, 98]

    model = build(lenet, optimizer="sgd", learning_rate=0.0123)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.0123)


def test_sparse_one_hot_and_binary_labels_and_a_headless_hypermodel_with_its_own_head(tmp_path):
    images, labels, _ = shapes(64)
    for label_mode, classes, targets in [
        ("int", 10, labels),
        ("categorical", 10, keras.utils.to_categorical(labels, 10)),
        ("binary", 2, (labels % 2).astype("float32")),
    ]:
        hypermodel = HyperLeNet(input_shape=(16, 16, 1), classes=classes, label_mode=label_mode)
        hp = keras_tuner.HyperParameters()
        model = hypermodel.build(hp)
        assert model.output_shape == (None, 1 if label_mode == "binary" else 10)
        history = hypermodel.fit(hp, model, images, targets, epochs=1, batch_size=32,
                                 validation_split=0.25, verbose=0)
        assert np.isfinite(history.history["loss"][-1]) and "accuracy" in history.history
        # Scored with precise BatchNorm statistics (on by default), from the 48 training
        # examples only, never the 16 `validation_split` keeps for validation (the first
        # BatchNorm's: later ones depend on how the examples were batched).
        first = estimate_statistics(model, [images[:48]]).means[0]
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(model.get_layer("conv1_bn").moving_mean), first, rtol=1e-5)
        assert not np.allclose(estimate_statistics(model, [images]).means[0], first, rtol=1e-3)

    headless = HyperLeNet(input_shape=(16, 16, 1), include_top=False, pooling="avg")
    features = headless.build(keras_tuner.HyperParameters())
    assert features.output_shape == (None, 16) and not features.compiled

    class LeNetFeaturesWithHead(HyperLeNet):
        def compile_model(self, hp, model):
            outputs = keras.layers.Dense(hp.Int("head_units", 4, 8, step=4), name="head")(model.output)
            outputs = keras.layers.Dense(10, activation="softmax", name="scores")(outputs)
            model = keras.Model(model.input, outputs)
            model.compile(
                optimizer=self.make_optimizer(hp), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            return model

    tuner = make_tuner(
        LeNetFeaturesWithHead(input_shape=(16, 16, 1), include_top=False, pooling="avg"),
        max_trials=1, directory=tmp_path, project_name="headless",
    )
    tuner.search(images, labels, validation_split=0.25, epochs=1, batch_size=32, verbose=0)
    trials = tuner.oracle.trials.values()
    assert [t.status for t in trials] == ["COMPLETED"]
    assert {t.hyperparameters.values["head_units"] for t in trials} <= {4, 8}
    best = tuner.get_best_models(1)[0]
    best.save(tmp_path / "best.keras")
    assert keras.saving.load_model(tmp_path / "best.keras", safe_mode=True).output_shape == (None, 10)


def test_nan_loss_and_invalid_combinations_are_failed_trials_and_the_search_goes_on(tmp_path):
    images, _, masks = shapes(64, size=24)
    # 24 is divisible by 2**2 but not by 2**4; a learning rate of 1e38 makes the loss infinite.
    hypermodel = HyperUNet(
        input_shape=(24, 24, 1), classes=11, width_ratio=0.125, depth=[2, 4], encoder="classic",
        optimizer="sgd", learning_rate=[1e-2, 1e38],
    )
    hp = keras_tuner.HyperParameters()
    hp.Fixed("batch_norm", False)  # a tuner's hp.Fixed override wins over the hypermodel's Boolean
    tuner = make_tuner(
        hypermodel, max_trials=4, directory=tmp_path, project_name="failures", hyperparameters=hp,
        max_consecutive_failed_trials=4, seed=1,
    )
    tuner.search(images, masks, validation_split=0.25, epochs=1, batch_size=16, verbose=0)
    outcomes = {
        (t.hyperparameters["depth"], t.hyperparameters["learning_rate"]): (t.status, t.message or "")
        for t in tuner.oracle.trials.values()
    }
    assert sorted(outcomes) == [(2, 1e-2), (2, 1e38), (4, 1e-2), (4, 1e38)]
    assert outcomes[(2, 1e-2)][0] == "COMPLETED"
    assert outcomes[(2, 1e38)][0] == "FAILED" and "Non-finite training loss" in outcomes[(2, 1e38)][1]
    for learning_rate in (1e-2, 1e38):
        status, message = outcomes[(4, learning_rate)]
        assert status == "FAILED" and "divisible by 2**depth = 16" in message
    assert all(t.hyperparameters["batch_norm"] is False for t in tuner.oracle.trials.values())


@pytest.mark.parametrize("tuner_name", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_searches_complete_distinct_trials(tmp_path, tuner_name):
    images, labels, _ = shapes(64)
    hypermodel = HyperLeNet(input_shape=(16, 16, 1), classes=10, width_ratio=[0.25, 0.5, 1.0])
    options = dict(max_epochs=2) if tuner_name == "hyperband" else dict(max_trials=3)
    tuner = make_tuner(hypermodel, tuner_name, directory=tmp_path, project_name=tuner_name,
                       seed=0, **options)
    tuner.search(images, labels, validation_split=0.25, epochs=1, batch_size=32, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) >= 2 and all(t.status == "COMPLETED" for t in trials)
    assert all(np.isfinite(t.score) for t in trials)
    values = {tuple(sorted(t.hyperparameters.values.items())) for t in trials}
    assert len(values) >= 2  # the oracle explored, not a single point repeated


def _executions(project):
    return [json.loads(line) for line in (project / EXECUTIONS_FILE).read_text().splitlines()]


def test_kmc_tune_resumes_after_kill_9_without_rerunning_trials_and_reports_a_changed_space(tmp_path, capsys):
    project = tmp_path / "lenet"
    command = [sys.executable, "-m", "keras_modern_cnn.cli", *TUNE, "--max-trials", "3",
               "--output-dir", str(tmp_path)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (project / EXECUTIONS_FILE).exists():  # one trial has finished
        assert first.poll() is None and time.monotonic() < deadline, "the search ended before the kill"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    before = _executions(project)
    assert 1 <= len(before) < 3 and not (project / "best_model.keras").exists()

    assert main([*TUNE, "--max-trials", "3", "--output-dir", str(tmp_path),
                 "--export", str(tmp_path / "exported")]) == 0
    out = capsys.readouterr().out
    assert "best hyperparameters:" in out and "width_ratio:" in out
    executions = _executions(project)
    assert executions[: len(before)] == before  # the first run's trials were not rerun
    assert sorted(e["trial_id"] for e in executions) == ["0", "1", "2"]
    assert {e["pid"] for e in executions[len(before):]} == {os.getpid()}
    with open(project / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["trial"] for row in rows) == ["0", "1", "2"]
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)  # best val_accuracy first
    assert all(row["status"] == "COMPLETED" and 0.25 <= float(row["width_ratio"]) <= 0.5 for row in rows)
    assert round(keras.utils.load_img(project / "trials.png").info["dpi"][0]) == 200
    assert f"trials plot: {project / 'trials.png'}" in out
    model = keras.saving.load_model(project / "best_model.keras", safe_mode=True)
    assert model.input_shape == (None, 16, 16, 1)
    assert (tmp_path / "exported" / "saved_model.pb").exists()

    capsys.readouterr()
    changed = [*TUNE, "--max-trials", "3", "--output-dir", str(tmp_path), "--set", "width_ratio=0.5"]
    assert main(changed) == 2
    error = capsys.readouterr().err
    assert "search space changed" in error and "changed width_ratio" in error
    assert "Fixed(" in error and len(error.strip().splitlines()) == 1


@pytest.mark.backend_independent  # KerasTuner's oracle protocol; trials train on every backend above
def test_distributed_chief_and_two_workers_run_every_trial_exactly_once(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = [sys.executable, "-m", "keras_modern_cnn.cli", *TUNE, "--max-trials", "3",
            "--output-dir", str(tmp_path), "--oracle-address", f"127.0.0.1:{port}"]
    chief = subprocess.Popen([*base, "--distributed", "chief"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    workers = [
        subprocess.Popen([*base, "--distributed", "worker", "--tuner-id", f"worker{index}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for index in (1, 2)
    ]
    try:
        outputs = [process.communicate(timeout=300)[0] for process in [*workers, chief]]
    finally:
        for process in [*workers, chief]:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in [*workers, chief]] == [0, 0, 0], outputs[-1][-3000:]
    project = tmp_path / "lenet"
    executions = _executions(project)
    assert sorted(e["trial_id"] for e in executions) == ["0", "1", "2"]  # each exactly once
    assert {e["tuner_id"] for e in executions} <= {"worker1", "worker2"}
    assert all(e["status"] == "COMPLETED" for e in executions)
    assert "best hyperparameters:" in outputs[-1]
    with open(project / "results.csv", newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["COMPLETED"] * 3
    assert keras.saving.load_model(project / "best_model.keras", safe_mode=True).output_shape == (None, 10)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "depth=3"], "has no search dimension 'depth'"),
        (["--set", "learning_rate=0.1:0.01"], "needs low <= high"),
        (["--tuner", "hyperband", "--max-trials", "2"], "Received: max_trials=2"),
        (["--distributed", "worker", "--tuner-id", "chief2"], "Received: --tuner-id='chief2'"),
    ],
)
def test_kmc_tune_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, extra, message):
    assert main([*TUNE, "--output-dir", str(tmp_path), *extra]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
    assert not os.environ.get("KERASTUNER_TUNER_ID")
