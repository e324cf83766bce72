"""Packaging: applications/ and tuning/ install inside keras_modern_cnn, never top level."""

import importlib.metadata
import pathlib
import shutil
import subprocess
import sys
import zipfile

import keras_modern_cnn
import keras_modern_cnn.applications
import keras_modern_cnn.tuning

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
