"""Export and reload: `.keras` (safe mode), weights-only and SavedModel for one model of each block
type (tests/test_contract.py's BLOCK_TYPE_MODELS), and BatchNorm folding
(`kmc.utils.fold_batch_norm`, on by default for SavedModel) for each.

Every model gets a training-mode forward pass first, so BatchNorm moving statistics differ from
their initial values and a statistic lost on the way would show in the predictions; outputs are
logits (no softmax to hide a difference). SavedModels are loaded in a fresh Python process that
imports TensorFlow only, as a serving user would.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from test_contract import BLOCK_TYPE_MODELS, FAMILY_MODELS, GOLDEN, SHARED_BEHAVIOUR_MODELS

import keras_modern_cnn as kmc
from keras_modern_cnn.cli import main
from keras_modern_cnn.export import exports_natively, load_served
from keras_modern_cnn.layers import BatchNorm

# Slow (exports and serves models, in subprocesses too): left out of `make test-fast`.
pytestmark = pytest.mark.slow

BATCH_NORMS = (BatchNorm, keras.layers.BatchNormalization)

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def models_served(format):
    """The models whose `format` export is served and compared on this backend.

    One model per block type for TensorFlow's SavedModel; one per family (FAMILY_MODELS) for the
    other formats and for SavedModel on JAX (each family brings its own layers; depth variants
    bring none);
    one model where Keras has no exporter on this backend and `kmc.export` goes through
    TensorFlow in a subprocess (the route is what is new: TensorFlow's own run covers the
    families, and the artefact is the one it writes).
    """
    if not exports_natively(format):
        return ("resnet18",)
    if format == "saved_model" and keras.backend.backend() == "tensorflow":
        return BLOCK_TYPE_MODELS
    return FAMILY_MODELS

# Runs in a fresh interpreter: TensorFlow alone, no keras_modern_cnn (nor Keras) imported.
LOAD_SAVED_MODELS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    requests = json.load(open(sys.argv[1]))
    outputs = {}
    for name, (saved_model, inputs) in requests.items():
        loaded = tf.saved_model.load(saved_model)
        images = np.load(inputs)
        outputs[name] = loaded.serve(tf.constant(images)).numpy()
        signature = loaded.signatures["serving_default"]
        (spec,) = signature.structured_input_signature[1].values()
        outputs[name + ":input_shape"] = np.array([-1 if d is None else d for d in spec.shape])
        assert np.allclose(list(signature(tf.constant(images)).values())[0], outputs[name], atol=1e-6)
    assert not any(m.startswith("keras_modern_cnn") for m in sys.modules)
    np.savez(sys.argv[2], **outputs)
    """
)


def tiny_model_with_moved_statistics(name, seed=0):
    """The tiny configuration with 3 classes (logits) after one training-mode pass over a batch."""
    keras.utils.set_random_seed(seed)
    kwargs = GOLDEN[name][2]
    model = kmc.get_model(name, classes=3, classifier_activation=None, **kwargs)
    images = np.random.default_rng(seed).uniform(size=(4, *kwargs["input_shape"])).astype("float32")
    model(images, training=True)
    return model, images


def load_saved_models_in_fresh_process(requests, directory):
    """{name: (saved_model_dir, npy_of_inputs)} -> {name: outputs} via the script above."""
    request_file, output_file = directory / "requests.json", directory / "outputs.npz"
    request_file.write_text(json.dumps({k: [str(a), str(b)] for k, (a, b) in requests.items()}))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SAVED_MODELS, str(request_file), str(output_file)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(output_file))


@pytest.fixture(scope="module")
def round_trips(tmp_path_factory):
    """For one model per block type (one per family on JAX and PyTorch: SHARED_BEHAVIOUR_MODELS):
    predictions before, after `.keras`, after weights-only, after folding BatchNorm, and (for
    `models_served("saved_model")`) from a folded SavedModel exported from the *reloaded*
    `.keras` model (a known Keras failure case).

    Slow (minutes, the suite's longest item): every block type is exported and served here,
    once per module rather than once per test."""
    directory = tmp_path_factory.mktemp("export")
    results, requests = {}, {}
    for name in SHARED_BEHAVIOUR_MODELS:
        model, images = tiny_model_with_moved_statistics(name)
        expected = np.asarray(model(images, training=False))
        moved = [
            float(np.abs(np.asarray(layer.moving_mean)).max())
            for layer in model.layers if isinstance(layer, BATCH_NORMS)
        ]

        keras_file = kmc.export(model, directory / f"{name}.keras", format="keras")
        reloaded = keras.saving.load_model(keras_file, safe_mode=True)

        weights_file = kmc.export(model, directory / f"{name}.weights.h5", format="weights")
        fresh, _ = tiny_model_with_moved_statistics(name, seed=1)
        fresh.load_weights(weights_file)
        folded = kmc.utils.fold_batch_norm(model)

        if name in models_served("saved_model"):
            saved_model = kmc.export(reloaded, directory / f"{name}_saved_model")
            np.save(directory / f"{name}_images.npy", images)
            requests[name] = (saved_model, directory / f"{name}_images.npy")
        results[name] = dict(
            expected=expected,
            moved=moved,
            keras=np.asarray(reloaded(images, training=False)),
            weights=np.asarray(fresh(images, training=False)),
            folded=np.asarray(folded(images, training=False)),
            batch_norms=(len(moved), sum(isinstance(layer, BATCH_NORMS) for layer in folded.layers)),
        )
    served = load_saved_models_in_fresh_process(requests, directory)
    for name in requests:
        results[name]["saved_model"] = served[name]
        results[name]["input_shape"] = served[name + ":input_shape"]
    return results


@pytest.mark.parametrize("name", SHARED_BEHAVIOUR_MODELS)
def test_every_model_round_trips_three_ways_with_equal_predictions(round_trips, name):
    result = round_trips[name]
    # The premise: BatchNorm statistics moved away from their zero initial mean.
    assert all(value > 0 for value in result["moved"])
    for way in ("keras", "weights", "saved_model"):
        if way in result:
            np.testing.assert_allclose(result[way], result["expected"], **TOLERANCE, err_msg=way)
    if name in models_served("saved_model"):
        # Serving signature: dynamic batch, the model's spatial size and channels.
        assert result["input_shape"].tolist() == [-1, *GOLDEN[name][2]["input_shape"]]


@pytest.mark.parametrize("name", SHARED_BEHAVIOUR_MODELS)
def test_every_model_folds_its_batch_norms_with_equal_predictions(round_trips, name):
    result = round_trips[name]
    np.testing.assert_allclose(
        result["folded"], result["expected"],
        rtol=1e-4, atol=1e-4 * np.abs(result["expected"]).max(),
    )
    before, after = result["batch_norms"]
    # Every BatchNorm model has one right after a convolution (DenseNet's pre-activation
    # ones, before a convolution, stay).
    assert after < before if before else after == 0


def test_models_built_without_a_spatial_size_serve_any_size(tmp_path):
    """Global-pooling models built with input_shape=(None, None, C) export size-agnostic."""
    model = kmc.get_model("resnet18", classes=3, input_shape=(None, None, 3), width_ratio=1 / 16)
    requests, expected = {}, {}
    path = kmc.export(model, tmp_path / "resnet18")
    for side in (32, 48):
        images = np.random.default_rng(side).uniform(size=(2, side, side, 3)).astype("float32")
        np.save(tmp_path / f"{side}.npy", images)
        requests[f"side{side}"] = (path, tmp_path / f"{side}.npy")
        expected[f"side{side}"] = np.asarray(model(images, training=False))
    served = load_saved_models_in_fresh_process(requests, tmp_path)
    for key, value in expected.items():
        np.testing.assert_allclose(served[key], value, **TOLERANCE)
        assert served[key + ":input_shape"].tolist() == [-1, -1, -1, 3]


def test_existing_targets_survive_without_overwrite_and_only_exports_are_replaced_with_it(tmp_path):
    model, _ = tiny_model_with_moved_statistics("bn_lenet")
    target = tmp_path / "served"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="overwrite=True.*Received: path="):
        kmc.export(model, target)
    # A folder export did not write is never replaced, even with overwrite.
    with pytest.raises(ValueError, match="folder kmc export did not write"):
        kmc.export(model, target, overwrite=True)
    assert (target / "keep.txt").read_text() == "user data"
    assert [p.name for p in tmp_path.iterdir()] == ["served"]  # no staging left behind

    exported = tmp_path / "exported"
    kmc.export(model, exported)
    assert json.loads((exported / ".kmc-manifest.json").read_text())["kind"] == "export"
    kmc.export(model, exported, overwrite=True)
    assert (exported / "saved_model.pb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "served"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(format="tflite"), "Received: format='tflite'"),
        (dict(format="keras"), "ending in '.keras'"),
        (dict(format="weights"), r"ending in '\.weights\.h5'"),
        (dict(format="litert"), r"ending in '\.tflite'"),
        (dict(format="weights", fold_batch_norm=True), "cannot hold a folded model"),
        (dict(fold_batch_norm="yes"), "Received: fold_batch_norm='yes'"),
        (dict(quantize="int4"), "Received: quantize='int4'"),
        (dict(format="onnx", quantize="int8"), "Received: quantize='int8', format='onnx'"),
        (dict(format="litert", quantize="int8"), "needs `representative_data`"),
        (dict(representative_data=np.zeros((2, 28, 28, 1))), "calibrates full-integer LiteRT"),
    ],
)
def test_bad_export_arguments_name_what_was_received(tmp_path, kwargs, message):
    model = kmc.get_model("bn_lenet", width_ratio=0.5)
    with pytest.raises(ValueError, match=message):
        kmc.export(model, tmp_path / "model", **kwargs)
    with pytest.raises(ValueError, match="Received: model="):
        kmc.export("model.keras", tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


RUNTIME_FORMATS = {"onnx": "model.onnx", "litert": "model.tflite", "openvino": "model.xml"}


@pytest.fixture(scope="module")
def served_formats(tmp_path_factory):
    """{(name, format): (served outputs, Keras outputs)} with BatchNorm folded (the default)."""
    directory = tmp_path_factory.mktemp("formats")
    results = {}
    for format, file_name in RUNTIME_FORMATS.items():
        for name in models_served(format):
            model, images = tiny_model_with_moved_statistics(name)
            expected = np.asarray(model(images, training=False))
            path = kmc.export(model, directory / f"{name}_{file_name}", format=format)
            results[name, format] = (load_served(path)(images), expected)
    return results


@pytest.mark.parametrize(
    "name, format",
    [(name, format) for format in sorted(RUNTIME_FORMATS) for name in models_served(format)],
)
def test_each_runtime_serves_what_keras_predicts(served_formats, name, format):
    served, expected = served_formats[name, format]
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A BN-LeNet `kmc train` run on the embedded shapes (0.6-0.7 test accuracy on every backend;
    BN-LeNet's default SGD at 1.0 ends anywhere between 0.3 and 0.9 depending on the backend's
    initial weights)."""
    run = tmp_path_factory.mktemp("run")
    assert main(["train", "bn_lenet", "--epochs", "3", "--width-ratio", "0.5",
                 "--train-examples", "2048", "--test-examples", "256", "--batch-size", "64",
                 "--optimizer", "adam", "--learning-rate", "0.01",
                 "--quiet", "--output-dir", str(run)]) == 0
    return run


def test_a_kmc_train_model_exports_with_one_command(trained_run, tmp_path, capsys):
    served = tmp_path / "served"
    assert main(["export", str(trained_run / "model.keras"), "--output", str(served)]) == 0
    assert f"exported saved_model: {served}" in capsys.readouterr().out

    model = keras.saving.load_model(trained_run / "model.keras", safe_mode=True)
    images = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    outputs = load_saved_models_in_fresh_process({"trained": (served, tmp_path / "images.npy")}, tmp_path)
    np.testing.assert_allclose(outputs["trained"], model(images, training=False), **TOLERANCE)

    # Again without --overwrite: one clear line, exit 2, the export untouched.
    before = sorted(os.listdir(served))
    assert main(["export", str(trained_run / "model.keras"), "--output", str(served)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(os.listdir(served)) == before
    # A weights file cannot be folded: one line, exit 2.
    assert main(["export", str(trained_run / "model.keras"), "--format", "weights",
                 "--fold-batch-norm", "--output", str(tmp_path / "m.weights.h5")]) == 2
    assert "cannot hold a folded model" in capsys.readouterr().err


# Full-integer LiteRT or Keras's Dense int8: the trained model's test
# accuracy moves by at most this much (256 examples).
INT8_ACCURACY_TOLERANCE = 0.03


@pytest.mark.parametrize("format", ["litert", "keras"])
def test_int8_export_reports_a_smaller_artefact_and_accuracy_within_tolerance(
    trained_run, tmp_path, capfd, recwarn, format
):
    output = tmp_path / {"litert": "model.tflite", "keras": "model.keras"}[format]
    assert main(["export", str(trained_run / "model.keras"), "--format", format, "--quantize",
                 "int8", "--calibration-examples", "64", "--test-examples", "256",
                 "--output", str(output)]) == 0
    printed, errors = capfd.readouterr()  # file descriptors: the converter's C++ lines too
    # Neither TensorFlow's interpreter deprecation nor the converter's and XNNPACK's lines.
    assert not [word for word in ("deprecated", "XNNPACK", "fully_quantize") if word in printed + errors]
    assert not [w for w in recwarn if "Interpreter is deprecated" in str(w.message)]
    size = re.search(r"size: ([\d.]+) MB float32 -> ([\d.]+) MB int8", printed)
    accuracy = re.search(r"test accuracy: ([\d.]+) float32 -> ([\d.]+) int8 \(256 examples\)", printed)
    assert size and accuracy, printed
    float_size, int8_size = map(float, size.groups())
    float_accuracy, int8_accuracy = map(float, accuracy.groups())
    # BN-LeNet's weights are mostly Dense (Keras's int8) and all int8 in full-integer LiteRT.
    assert int8_size < float_size / (2.5 if format == "litert" else 1.5)
    assert float_accuracy > 0.4  # the premise: a trained model, not chance (0.1)
    assert abs(int8_accuracy - float_accuracy) <= INT8_ACCURACY_TOLERANCE
    assert output.exists()


def test_kmc_export_bad_input_gives_one_line_and_exit_2(capsys):
    assert main(["export", "no/such/model.keras", "--output", "x"]) == 2
    assert "No model file at 'no/such/model.keras'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "model.keras", "--format", "tflite", "--output", "x"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
