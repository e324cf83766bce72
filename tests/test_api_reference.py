"""The API reference builds from the docstrings with no warning (docs/build.py: mkdocs
--strict), so a docstring documenting a parameter its signature lacks, or an Args entry that
does not parse, fails the suite."""

import pathlib
import sys

import pytest

pytestmark = pytest.mark.backend_independent

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_api_reference_builds_without_a_warning(tmp_path):
    sys.path.insert(0, str(REPOSITORY / "docs"))
    try:
        import build
    finally:
        sys.path.remove(str(REPOSITORY / "docs"))
    result = build.build(tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING -" not in result.stderr and "ERROR -" not in result.stderr, result.stderr[-3000:]
    models = (tmp_path / "site" / "api" / "models" / "index.html").read_text()
    # The variant builders' docstrings are generated at import: they are there.
    assert "ResNet50V2" in models and "KerasHub" in models and "keras.applications" in models
