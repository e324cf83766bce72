"""The `kmc` command line: list, summary, and argument errors as one clear line."""

import subprocess
import sys

import pytest

from keras_modern_cnn.cli import main


def test_list_shows_registered_models_with_parameter_counts(capsys):
    assert main(["list", "bn_*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "family", "task"]
    assert lines[1].split() == ["bn_lenet", "lenet", "classification", "28x28x1", "45,330", "44,878"]


def test_summary_prints_layer_output_shapes(capsys):
    assert main(["summary", "bn_lenet", "--input-shape", "32,32,3", "--classes", "5"]) == 0
    out = capsys.readouterr().out
    assert "conv1_conv" in out and "(None, 28, 28, 6)" in out
    assert "predictions" in out and "(None, 5)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "lenet5"], "Received: name='lenet5'"),
        (["summary", "bn_lenet", "--width-ratio", "-1"], "Received: width_ratio=-1"),
        (["list", "nothing*"], "Received: pattern='nothing*'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_shapes_are_reported_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "bn_lenet", "--input-shape", "a,b"])
    assert exit_info.value.code == 2
    assert "must look like 96,96,1. Received: 'a,b'" in capsys.readouterr().err


def test_console_entry_point_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "keras_modern_cnn.cli", "list", "--no-params"],
        capture_output=True, text=True, check=True,
    )
    assert "bn_lenet" in result.stdout
