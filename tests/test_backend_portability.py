"""Files written on one backend load, compiled, and export on the other two (all six pairs
over the suite).

Each backend's suite writes with its own backend and loads in subprocesses on the others, so
the three runs of `make test` together cover every ordered pair.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_modern_cnn import losses, saving
from keras_modern_cnn.applications import UNet

# Slow (trains and reloads models in other backends' processes): left out of `make test-fast`.
pytestmark = pytest.mark.slow

BACKENDS = ("tensorflow", "jax", "torch")

LOAD_AND_PREDICT = """
import sys
import numpy as np
import keras
import keras_modern_cnn
model = keras.saving.load_model(sys.argv[1])          # compiled, safe mode
images = np.load(sys.argv[2])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model.predict(images, verbose=0)))
# It exports from there, in the format Keras exports natively on that backend, and serves.
from keras_modern_cnn.export import load_served
format, name = ("onnx", "served.onnx") if keras.backend.backend() == "torch" else ("saved_model", "served")
served = keras_modern_cnn.export(model, sys.argv[4] + "/" + name, format=format)
np.save(sys.argv[4] + "/served.npy", load_served(served)(images))
# The restored optimizer is this backend's and keeps training the model.
masks = np.zeros(images.shape[:-1], "int64")
assert np.isfinite(model.fit(images, masks, verbose=0).history["loss"][0])
"""


def tiny_trained_unet():
    """A two-level U-Net trained one step with the zoo's loss (softmax per pixel)."""
    model = UNet(input_shape=(16, 16, 1), classes=3, width_ratio=1 / 16, depth=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=losses.SparseCategoricalCrossentropy())
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(4, 16, 16, 1)).astype("float32")
    masks = rng.integers(0, 3, size=(4, 16, 16))
    history = model.fit(images, masks, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    return model, images


@pytest.mark.parametrize("reader", [b for b in BACKENDS if b != keras.backend.backend()])
def test_a_trained_model_saved_here_loads_compiled_on_another_backend(tmp_path, reader):
    """Slow: starts a Python on the other backend (about 10 s of imports, then an export)."""
    model, images = tiny_trained_unet()
    path = saving.save_model(model, tmp_path / "unet.keras")
    np.save(tmp_path / "images.npy", images)
    environment = dict(os.environ, KERAS_BACKEND=reader)
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, path, tmp_path / "images.npy", tmp_path / "out.npy",
         tmp_path],
        env=environment, check=True, timeout=300,
    )
    expected = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, rtol=1e-4, atol=1e-5)


def test_saving_is_atomic_and_leaves_no_staged_files(tmp_path):
    model, _ = tiny_trained_unet()
    target = tmp_path / "model.keras"
    target.write_bytes(b"previous run")

    def failing_save(path, *args, **kwargs):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    original = model.save
    model.save = failing_save
    with pytest.raises(OSError, match="disk full"):
        saving.save_model(model, target)
    model.save = original
    assert target.read_bytes() == b"previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    saving.save_model(model, target)
    assert keras.saving.load_model(target).count_params() == model.count_params()


def test_kmc_load_model_trains_a_file_written_by_model_save_on_torch(tmp_path):
    """`model.save` on torch records torch-only optimizer classes (tests/test_compat.py pins
    the module name); `kmc.saving.load_model` loads such a file, compiled, on any backend and it
    trains, leaving the file as it was. (Keras's own `load_model` cannot on TensorFlow: README,
    known issues.)"""
    import json
    import zipfile

    from keras_modern_cnn._compat import TORCH_OPTIMIZER_MODULES

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(np.ones((4, 4)), np.zeros((4, 2)), verbose=0)
    portable = saving.save_model(model, tmp_path / "portable.keras")
    with zipfile.ZipFile(portable) as archive:
        entries = {item.filename: archive.read(item.filename) for item in archive.infolist()}
    config = json.loads(entries["config.json"])
    config["compile_config"]["optimizer"]["module"] = TORCH_OPTIMIZER_MODULES + "torch_sgd"
    entries["config.json"] = json.dumps(config).encode()
    written_on_torch = tmp_path / "torch.keras"
    with zipfile.ZipFile(written_on_torch, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    before = written_on_torch.read_bytes()

    assert saving.names_torch_optimizer(written_on_torch)
    assert not saving.names_torch_optimizer(portable)
    loaded = saving.load_model(written_on_torch)
    assert loaded.optimizer.__class__.__name__ == "SGD"
    assert np.isfinite(loaded.fit(np.ones((4, 4)), np.zeros((4, 2)), verbose=0).history["loss"][0])
    assert written_on_torch.read_bytes() == before
