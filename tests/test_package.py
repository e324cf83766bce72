"""Packaging: applications/ and tuning/ install inside keras_modern_cnn, never top level."""

import importlib.metadata
import os
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


@pytest.mark.slow
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
    assert "keras_modern_cnn/weights/imagenet_classes.json" in names


def test_editable_install_maps_the_zoo_and_tuning_to_the_repository():
    assert pathlib.Path(keras_modern_cnn.applications.__file__).parent == REPOSITORY / "applications"
    assert pathlib.Path(keras_modern_cnn.tuning.__file__).parent == REPOSITORY / "tuning"
    assert importlib.metadata.version("keras-modern-cnn") == keras_modern_cnn.__version__


@pytest.mark.slow
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
        # The documented call, after this import order (it once met the `export` sub-module).
        f"keras_modern_cnn.export(model, {str(tmp_path / 'copy.keras')!r}, format='keras')\n"
        "print(sum(type(layer).__name__ == 'BatchNorm' for layer in model.layers))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == 4  # BN-LeNet: after each of 2 convs and 2 dense layers
    assert (tmp_path / "copy.keras").is_file()


def test_a_public_name_that_is_also_a_sub_module_means_the_public_object_in_every_import_order():
    """`kmc.export` is the function whatever was imported first (the `export` sub-module, Keras,
    nothing); `from keras_modern_cnn.export import ...` still reaches the module."""
    import keras_modern_cnn._api as api

    clashes = {
        name for name in api.__all__
        if (REPOSITORY / "keras_modern_cnn" / f"{name}.py").exists()
        and not isinstance(getattr(api, name), type(api))
    }
    assert clashes == keras_modern_cnn.PUBLIC_OVER_SUBMODULE == {"export"}
    check = (
        "import sys, inspect\n"
        "assert inspect.isfunction(kmc.export), kmc.export\n"
        "assert sys.modules['keras_modern_cnn.export'].export is kmc.export\n"
        "from keras_modern_cnn import export\n"
        "assert export is kmc.export\n"
        "from keras_modern_cnn.export import load_served\n"
        "assert inspect.isfunction(kmc.export) and callable(load_served)\n"
    )
    # (`import keras_modern_cnn` then `import keras`: the test above.)
    orders = [
        "import keras\nimport keras_modern_cnn as kmc\n",
        "from keras_modern_cnn.export import load_served\nimport keras_modern_cnn as kmc\n",
    ]
    # JAX imports fastest; the import machinery is the same on every backend.
    environment = {**os.environ, "KERAS_BACKEND": "jax"}
    processes = [
        subprocess.Popen([sys.executable, "-c", order + check], env=environment,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for order in orders
    ]
    for order, process in zip(orders, processes):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, (order, stderr[-2000:])


def _package_imports(module_level_only):
    """`{module: package modules it imports}` for the whole package (lazy imports inside
    functions too, unless `module_level_only`)."""
    import ast

    roots = {"keras_modern_cnn": REPOSITORY / "keras_modern_cnn",
             "keras_modern_cnn.applications": REPOSITORY / "applications",
             "keras_modern_cnn.tuning": REPOSITORY / "tuning"}
    files = {}
    for package, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            files[".".join((package, *parts)).removesuffix(".__init__")] = path
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        imported = set()
        for node in tree.body if module_level_only else ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from package import submodule` depends on the submodule; `from module import
                # name` on the module.
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files
                           else node.module for alias in node.names]
            # The package root only loads `_api` (the public names) on first use.
            imported |= {t for t in targets if t in files and t not in (name, "keras_modern_cnn")}
        graph[name] = imported
    return graph


def _first_cycle(graph):
    state = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return [*path, imported]
            if imported not in state:
                cycle = visit(imported, [*path, imported])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return " -> ".join(cycle)
    return None


def _is_core(module):
    # `_api`, the package root's public names, gathers the zoo's builders by design.
    return not module.startswith(("keras_modern_cnn.applications", "keras_modern_cnn.tuning",
                                  "keras_modern_cnn._api"))


def test_the_package_has_no_import_cycle_and_the_core_does_not_import_the_zoo_or_tuning():
    assert _first_cycle(_package_imports(module_level_only=True)) is None
    everything = _package_imports(module_level_only=False)
    # The core loads the zoo on first use (the registry); apart from that, not even a lazy
    # import inside a function may cycle within the core.
    core = {module: {m for m in imported if _is_core(m)}
            for module, imported in everything.items() if _is_core(module)}
    assert _first_cycle(core) is None
    for module, imported in _package_imports(module_level_only=True).items():
        assert not _is_core(module) or all(_is_core(m) for m in imported), module


@pytest.mark.slow
def test_the_package_type_checks(tmp_path):
    """mypy over the package as it installs (applications/ and tuning/ inside keras_modern_cnn),
    configured by pyproject.toml's [tool.mypy]; the tests are not type-checked."""
    package = tmp_path / "keras_modern_cnn"
    package.mkdir()
    for entry in (REPOSITORY / "keras_modern_cnn").iterdir():
        (package / entry.name).symlink_to(entry)
    for folder in ("applications", "tuning"):
        (package / folder).symlink_to(REPOSITORY / folder)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPOSITORY / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "-p", "keras_modern_cnn"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
