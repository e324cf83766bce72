"""Data-parallel training: `kmc train --strategy multi-worker` (two TensorFlow worker processes on
127.0.0.1, synchronized BatchNorm), keras.distribution.DataParallel over two JAX host devices and
`kmc train --strategy data-parallel` in two JAX processes on 127.0.0.1, each checked against
single-process training on the same global batches."""

import contextlib
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_modern_cnn import BatchNorm, LeNet
from keras_modern_cnn.data import SHAPE_CLASSES
from keras_modern_cnn.cli import main
from keras_modern_cnn.distribute import check_tf_config, distribution_scope, jax_cluster
from keras_modern_cnn.layers.precise_bn import estimate_statistics
from keras_modern_cnn.rundir import read_history

# Slow (multi-device and multi-process training): left out of `make test-fast`.
pytestmark = pytest.mark.slow

TIMEOUT = 300
TF_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason=f"tf.distribute needs the TensorFlow backend (running {keras.backend.backend()})",
)
JAX_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution.DataParallel needs the JAX backend "
    f"(running {keras.backend.backend()})",
)


def bright_and_dark_images(count, seed):
    """16x16 grayscale uint8 images, each a random brightness plus noise, 3 classes.

    Brightness varies a lot between examples, so the halves of a global batch that the two
    workers see have different statistics: per-worker BatchNorm would differ from the
    global-batch one by several %."""
    rng = np.random.default_rng(seed)
    brightness = rng.uniform(20, 235, size=(count, 1, 1))
    images = np.clip(brightness + rng.normal(0, 20, size=(count, 16, 16)), 0, 255)
    return images.astype("uint8"), rng.integers(0, 3, size=count)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_arguments(output_dir, dataset, strategy):
    """Three epochs of one 32-example batch: every step sees the same examples whatever the
    shuffle order (fit under tf.distribute starts one extra iterator, so its order differs)."""
    return [
        "train", "bn_lenet", "--dataset", dataset, "--train-examples", "32", "--test-examples",
        "32", "--image-size", "16", "--width-ratio", "0.5", "--epochs", "3", "--batch-size",
        "32", "--learning-rate", "0.1", "--strategy", strategy, "--output-dir", str(output_dir), "--quiet",
    ]


def odd_arguments(output_dir):
    """Sizes that do not divide by 2 devices: 33 training examples in batches of 8 (the last
    holds 1), 17 test examples (the last batch of 1 is padded with a zero-weight example)."""
    return [*train_arguments(output_dir, "shapes", "data-parallel"), "--train-examples", "33",
            "--test-examples", "17", "--batch-size", "8", "--epochs", "2"]


def train_command(output_dir, dataset, strategy):
    arguments = train_arguments(output_dir, dataset, strategy)
    return [sys.executable, "-m", "keras_modern_cnn.cli", *arguments]


def saved_weights(path):
    model = keras.saving.load_model(path, safe_mode=True)
    return model, {weight.path: keras.ops.convert_to_numpy(weight) for weight in model.weights}


@TF_ONLY
def test_two_workers_match_each_other_and_single_process_training_with_synchronized_bn(tmp_path):
    (x_train, y_train), (x_test, y_test) = (bright_and_dark_images(32, seed) for seed in (0, 1))
    dataset = str(tmp_path / "data.npz")
    np.savez(dataset, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    environment = dict(
        os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2"
    )
    processes = {}
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes[f"worker{index}"] = subprocess.Popen(
            train_command(tmp_path / f"worker{index}", dataset, "multi-worker"),
            env=dict(environment, TF_CONFIG=json.dumps(tf_config)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    processes["single"] = subprocess.Popen(
        train_command(tmp_path / "single", dataset, "none"), env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for name, process in processes.items():
            output, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, f"{name} failed:\n{output[-3000:]}"
    finally:
        for process in processes.values():
            process.kill()

    worker_model, worker0 = saved_weights(tmp_path / "worker0" / "model.keras")
    _, worker1 = saved_weights(tmp_path / "worker1" / "model.keras")
    single_model, single = saved_weights(tmp_path / "single" / "model.keras")
    batch_norms = [layer for layer in worker_model.layers if isinstance(layer, BatchNorm)]
    assert len(batch_norms) == 4 and all(layer.synchronized for layer in batch_norms)
    assert not any(getattr(layer, "synchronized", False) for layer in single_model.layers)
    for path, value in worker0.items():
        np.testing.assert_array_equal(value, worker1[path], err_msg=path)
    moving = [path for path in single if "moving_" in path]
    assert len(moving) == 8
    for path, value in single.items():
        np.testing.assert_allclose(worker0[path], value, rtol=2e-4, atol=2e-5, err_msg=path)
    metrics = json.loads((tmp_path / "worker0" / "metrics.json").read_text())
    assert metrics["batch_size"] == 32 and metrics["epochs"] == 3
    # Precise BN (the default) pooled both workers' shares: the 32 examples, as one process.
    assert metrics["precise_bn"]["samples"] == 32 and metrics["precise_bn"]["estimations"] == 3


@TF_ONLY
def test_mirrored_scope_trains_with_synchronized_batch_norm_built_only_inside(tmp_path):
    images, labels = bright_and_dark_images(16, 0)
    with distribution_scope("mirrored") as strategy:
        model = LeNet((4, 4), (8,), input_shape=(16, 16, 1), classes=3)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    history = model.fit(images[..., None] / 255.0, labels, batch_size=8, epochs=2, verbose=0)
    assert model.distribute_strategy is strategy and np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "mirrored.keras")
    reloaded = keras.saving.load_model(tmp_path / "mirrored.keras", safe_mode=True)
    for built in (model, reloaded):
        batch_norms = [layer for layer in built.layers if isinstance(layer, BatchNorm)]
        assert len(batch_norms) == 3 and all(layer.synchronized for layer in batch_norms)
    outside = LeNet((4, 4), (8,), input_shape=(16, 16, 1), classes=3)
    assert not any(getattr(layer, "synchronized", False) for layer in outside.layers)


def data_parallel_worker():
    """Run in a process with two host devices: DataParallel vs single-device training."""
    import jax

    from keras_modern_cnn.cli import main

    images, labels = bright_and_dark_images(48, 0)
    images = images[..., None].astype("float32") / 255.0
    results = {"devices": len(jax.devices())}
    for strategy in ("data-parallel", "none"):
        keras.utils.set_random_seed(0)
        with distribution_scope(strategy) if strategy != "none" else contextlib.nullcontext():
            model = LeNet((4, 4), (8,), input_shape=(16, 16, 1), classes=3)
            model.compile(
                optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy"
            )
            model.fit(images, labels, batch_size=16, epochs=1, shuffle=False, verbose=0)
            # Precise BN on the sharded batches: the global batches' statistics (issue 32).
            precise = estimate_statistics(model, [images[i:i + 16] for i in range(0, 48, 16)])
            results[strategy] = {
                "precise": [[m.tolist(), v.tolist()] for m, v in zip(precise.means, precise.variances)],
                "synchronized": [layer.synchronized for layer in model.layers
                                 if isinstance(layer, BatchNorm)],
                "sharded_over": len(model.weights[0].value.sharding.device_set),
                "weights": {w.path: keras.ops.convert_to_numpy(w).tolist() for w in model.weights},
            }
    output_dir = sys.argv[2]
    results["cli_status"] = main(train_arguments(os.path.join(output_dir, "run"), "shapes", "data-parallel"))
    results["odd_cli_status"] = main(odd_arguments(os.path.join(output_dir, "odd")))
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump(results, handle)


def multi_host_worker():
    """`kmc train` as one process of a multi-process run; dumps the test images it feeds and
    the weights it ends with. (Feeding the whole batch in every process would give the same
    weights: the mean loss and BN statistics of a batch repeated are those of the batch.)"""
    from keras_modern_cnn import training

    make_pipelines, report = training.make_pipelines, training.report
    path = os.path.join(sys.argv[3], f"%s{os.environ['JAX_PROCESS_ID']}")

    def make_pipelines_and_dump_the_test_share(config, data):
        pipelines = make_pipelines(config, data)  # the test split is not shuffled: no side effect
        np.save(path % "test_share", np.concatenate([batch[0] for batch in pipelines["test"]]))
        return pipelines

    def report_and_dump(config, data, model, *rest):
        weights = {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}
        np.savez(path % "weights" + ".npz", **weights)
        return report(config, data, model, *rest)

    training.make_pipelines, training.report = make_pipelines_and_dump_the_test_share, report_and_dump
    sys.exit(main(odd_arguments(sys.argv[2])))


@JAX_ONLY
def test_jax_data_parallel_over_two_devices_or_two_processes_matches_single_device_training(
        tmp_path, capsys):
    """One process with two host devices, and (at the same time) two `kmc train` processes of
    one device each on 127.0.0.1 sharing one --output-dir, which only process 0 writes."""
    coordinator = f"127.0.0.1:{free_port()}"
    processes = []
    for index in range(2):
        (tmp_path / f"tmp{index}").mkdir()
        environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                           JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES="2",
                           JAX_PROCESS_ID=str(index), TMPDIR=str(tmp_path / f"tmp{index}"))
        processes.append(subprocess.Popen(
            [sys.executable, __file__, "multi-host", str(tmp_path / "multi-host"), str(tmp_path)],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    environment = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=flags.strip())
    try:
        result = subprocess.run(
            [sys.executable, __file__, "data-parallel", str(tmp_path)], env=environment,
            capture_output=True, text=True, timeout=TIMEOUT,
        )
        outputs = [process.communicate(timeout=TIMEOUT)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for index, process in enumerate(processes):
        assert process.returncode == 0, f"process {index} failed:\n{outputs[index][-3000:]}"
    # The odd-sized runs state their batch count: no "input ran out of data" from Keras.
    assert not [text for text in (result.stderr, *outputs) if "ran out of data" in text]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["devices"] == 2
    assert results["data-parallel"]["sharded_over"] == 2 and results["none"]["sharded_over"] == 1
    assert results["data-parallel"]["synchronized"] == [True] * 3
    assert results["none"]["synchronized"] == [False] * 3
    parallel, single = results["data-parallel"]["weights"], results["none"]["weights"]
    assert sorted(parallel) == sorted(single) and sum("moving_" in path for path in single) == 6
    for path in single:
        np.testing.assert_allclose(parallel[path], single[path], rtol=2e-4, atol=2e-5, err_msg=path)
    assert len(results["none"]["precise"]) == 3
    for (mean, variance), (mean_1, variance_1) in zip(results["data-parallel"]["precise"],
                                                      results["none"]["precise"]):
        np.testing.assert_allclose(mean, mean_1, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(variance, variance_1, rtol=2e-4, atol=2e-5)
    assert results["cli_status"] == 0 and results["odd_cli_status"] == 0
    odd = tmp_path / "odd"
    assert [row["epoch"] for row in read_history(odd / "history.csv")] == [1, 2]
    metrics = json.loads((odd / "metrics.json").read_text())
    # Every test example counted once: the single-device evaluation of the saved model agrees.
    assert main(["evaluate", str(odd / "model.keras"), "--test-examples", "17"]) == 0
    assert f"test accuracy: {metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    assert model.input_shape == (None, 16, 16, 1)
    assert model.output_shape == (None, len(SHAPE_CLASSES))

    # Two processes: each fed its half of every test batch (8, 8 and 1 + 1 zero-weight padding),
    # ended with equal weights, equal to one process over two devices on the same batches.
    shares = [np.load(tmp_path / f"test_share{index}.npy") for index in range(2)]
    assert [len(share) for share in shares] == [9, 9] and not np.array_equal(*shares)
    assert not shares[1][-1].any() and shares[0].reshape(9, -1).any(axis=1).all()
    for output in outputs:  # process 1 names the files process 0 wrote, not its removed copy
        assert f"saved model: {tmp_path / 'multi-host' / 'model.keras'}" in output
    process0, process1 = (np.load(tmp_path / f"weights{index}.npz") for index in range(2))
    _, two_devices = saved_weights(odd / "model.keras")
    _, saved = saved_weights(tmp_path / "multi-host" / "model.keras")
    assert sorted(process0) == sorted(two_devices) == sorted(saved)
    for path, value in two_devices.items():
        np.testing.assert_array_equal(process0[path], process1[path], err_msg=path)
        np.testing.assert_array_equal(process0[path], saved[path], err_msg=path)
        np.testing.assert_allclose(process0[path], value, rtol=1e-6, atol=1e-7, err_msg=path)
    shared = json.loads((tmp_path / "multi-host" / "metrics.json").read_text())
    assert shared["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    # Process 0 alone wrote the run directory, every file whole; process 1 left nothing behind.
    assert sorted(os.listdir(tmp_path / "multi-host")) == [
        ".kmc-lock", ".kmc-manifest.json", "curves.png", "history.csv", "logs", "metrics.json",
        "model.keras", "run.json"]
    run = json.loads((tmp_path / "multi-host" / "run.json").read_text())
    assert run["device"]["count"] == 2 and run["config"]["strategy"] == "data-parallel"
    assert os.listdir(tmp_path / "tmp0") == os.listdir(tmp_path / "tmp1") == []


def test_strategy_and_tf_config_are_validated(monkeypatch):
    backend = keras.backend.backend()
    wrong = {"jax": ["mirrored", "multi-worker"], "tensorflow": ["data-parallel"]}.get(
        backend, ["mirrored", "multi-worker", "data-parallel"]
    )
    # Each names what works here, or (torch) says Keras offers nothing there.
    hint = "On 'jax', use 'data-parallel'" if backend == "jax" else (
        "On 'tensorflow', use 'mirrored' or 'multi-worker'" if backend == "tensorflow" else
        "offers no data-parallel training on 'torch'"
    )
    for name in wrong:
        message = f"current backend is '{backend}'.*{hint}.*Received: strategy='{name}'"
        with pytest.raises(ValueError, match=message):
            with distribution_scope(name):
                pass
    with pytest.raises(ValueError, match="Received: strategy='horovod'"):
        with distribution_scope("horovod"):
            pass
    good = {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 1},
    }
    assert check_tf_config(json.dumps(good)) == good
    bad_task = dict(good, task={"type": "worker", "index": 2})
    for tf_config in (None, "not json", json.dumps({"cluster": {}}), json.dumps(bad_task)):
        with pytest.raises(ValueError, match="Received: TF_CONFIG="):
            check_tf_config(tf_config)
    if backend == "tensorflow":
        monkeypatch.delenv("TF_CONFIG", raising=False)
        with pytest.raises(ValueError, match="Received: TF_CONFIG=None"):
            with distribution_scope("multi-worker"):
                pass


@pytest.mark.backend_independent  # reads environment variables only
def test_jax_coordinator_variables_are_validated_all_or_none():
    good = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": "1"}
    assert jax_cluster({}) is None
    assert jax_cluster(good) == ("10.0.0.1:1234", 2, 1)
    for name, value, message in [
        ("JAX_PROCESS_ID", None, "needs all of .* Received: JAX_PROCESS_ID=None"),
        ("JAX_COORDINATOR_ADDRESS", "10.0.0.1", "Received: JAX_COORDINATOR_ADDRESS='10.0.0.1'"),
        ("JAX_NUM_PROCESSES", "0", "Received: JAX_NUM_PROCESSES='0'"),
        ("JAX_NUM_PROCESSES", "two", "Received: JAX_NUM_PROCESSES='two'"),
        ("JAX_PROCESS_ID", "2", r"in \[0, 1\] .*Received: JAX_PROCESS_ID='2'"),
        ("JAX_PROCESS_ID", "-1", "Received: JAX_PROCESS_ID='-1'"),
    ]:
        environ = {key: v for key, v in dict(good, **{name: value}).items() if v is not None}
        with pytest.raises(ValueError, match=message):
            jax_cluster(environ)


@JAX_ONLY
def test_kmc_train_reports_a_partial_jax_cluster_in_one_line_before_writing(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    assert main(train_arguments(tmp_path / "run", "shapes", "data-parallel")) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "Received: JAX_PROCESS_ID=None" in error
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":  # the subprocesses of the JAX test
    {"data-parallel": data_parallel_worker, "multi-host": multi_host_worker}[sys.argv[1]]()
