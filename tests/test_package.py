"""Packaging: applications/ and tuning/ install inside keras_modern_cnn, never top level."""

import importlib.metadata
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

import keras_modern_cnn
import keras_modern_cnn.applications
import keras_modern_cnn.tuning

# The wheel's layout and the import hook: run in the TensorFlow pass only (conftest.py).
pytestmark = pytest.mark.backend_independent

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_keras_modern_cnn_package(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(
        REPOSITORY, source,
        ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "dist", "*.egg-info",
                                      "__pycache__", ".pytest_cache"),
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist")],
        cwd=source, check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"keras_modern_cnn", f"keras_modern_cnn-{keras_modern_cnn.__version__}.dist-info"}
    assert "keras_modern_cnn/applications/lenet.py" in names
    assert "keras_modern_cnn/tuning/__init__.py" in names
    assert "keras_modern_cnn/layers/batch_norm.py" in names
    assert "keras_modern_cnn/model_cards.json" in names


def test_editable_install_maps_the_zoo_and_tuning_to_the_repository():
    assert pathlib.Path(keras_modern_cnn.applications.__file__).parent == REPOSITORY / "applications"
    assert pathlib.Path(keras_modern_cnn.tuning.__file__).parent == REPOSITORY / "tuning"
    assert importlib.metadata.version("keras-modern-cnn") == keras_modern_cnn.__version__


def test_a_model_file_loads_after_import_keras_modern_cnn_then_import_keras(tmp_path):
    """The package loads Keras lazily; its layers must still be registered for `load_model`
    whichever of the two imports comes first (`import keras_modern_cnn` alone loads no backend)."""
    model_file = keras_modern_cnn.saving.save_model(
        keras_modern_cnn.get_model("bn_lenet", width_ratio=0.5), tmp_path / "model.keras"
    )
    script = (
        "import sys\n"
        "import keras_modern_cnn\n"
        "assert 'keras' not in sys.modules\n"
        "import keras\n"
        f"model = keras.saving.load_model({str(model_file)!r}, safe_mode=True)\n"
        "print(sum(type(layer).__name__ == 'BatchNorm' for layer in model.layers))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == 4  # BN-LeNet: after each of 2 convs and 2 dense layers
