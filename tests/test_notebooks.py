"""The notebooks of examples/ execute from top to bottom, and are committed without outputs.

Executed on one backend (the TensorFlow pass, conftest.py): they exercise the public API that
the rest of the suite tests on every backend; what they add is that their cells run as written.
"""

import os
import pathlib
import sys

import nbformat
import pytest

pytestmark = pytest.mark.backend_independent

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ("chapter.ipynb", "fine_tuning_and_unet.ipynb")


def test_the_notebooks_are_the_ones_the_script_writes_and_carry_no_outputs(tmp_path, monkeypatch):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import build_notebooks
    finally:
        sys.path.remove(str(EXAMPLES))
    assert sorted(build_notebooks.NOTEBOOKS) == sorted(NOTEBOOKS)
    for name, cells in build_notebooks.NOTEBOOKS.items():
        committed = nbformat.read(EXAMPLES / name, as_version=4)
        assert committed == build_notebooks.notebook(cells), f"rerun examples/build_notebooks.py ({name})"
        assert all(not cell.get("outputs") for cell in committed.cells if cell.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_notebook_runs_from_top_to_bottom(tmp_path, name):
    from nbclient import NotebookClient

    book = nbformat.read(EXAMPLES / name, as_version=4)
    os.environ["KERAS_BACKEND"] = "tensorflow"  # the kernel inherits the environment
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in book.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    if name == "chapter.ipynb":
        # Seven models trained and compared; the search's best model exported and served.
        assert text.count("| ") >= 8 * 5 and "largest difference" in text
        assert sum("image/png" in output.get("data", {}) for output in outputs) == 1
    else:
        assert "fine-tuned:" in text and "mean_iou" in text
        assert sum("image/png" in output.get("data", {}) for output in outputs) == 3
