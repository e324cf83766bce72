"""The README stays true: its model table is the registry's, its set-up commands exist."""

import pathlib
import re

import pytest

import keras_modern_cnn as kmc
from keras_modern_cnn.registry import read_cards
from keras_modern_cnn.cli.models import markdown_table

# The README against the registry and the Makefile: run in the TensorFlow pass only (conftest.py).
pytestmark = pytest.mark.backend_independent

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
README = (REPOSITORY / "README.md").read_text()


def test_model_table_matches_the_registry():
    table = re.search(r"<!-- model-table:start -->\n(.*?)\n<!-- model-table:end -->", README, re.S)
    assert table is not None
    cards = read_cards()  # each checked against its built model by tests/test_contract.py
    assert list(cards) == kmc.list_models()
    assert table.group(1) == markdown_table(cards)


def test_setup_commands_are_make_targets_and_ci_runs_the_test_command():
    setup = README.split("## Set-up", 1)[1].split("##", 1)[0]
    commands = re.search(r"```\n(.*?)\n```", setup, re.S).group(1).splitlines()
    assert commands == ["make demo", "make test"]
    makefile = (REPOSITORY / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPOSITORY / ".ci" / "run").read_text()
