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


def test_kmc_list_markdown_prints_the_readme_table(capsys):
    from keras_modern_cnn.cli import main

    assert main(["list", "--markdown"]) == 0
    table = re.search(r"<!-- model-table:start -->\n(.*?)\n<!-- model-table:end -->", README, re.S)
    assert capsys.readouterr().out.strip() == table.group(1)


def test_setup_commands_are_make_targets_and_ci_runs_the_test_command():
    setup = README.split("## Set-up", 1)[1].split("##", 1)[0]
    commands = re.search(r"```\n(.*?)\n```", setup, re.S).group(1).splitlines()
    assert commands == ["make demo", "make test"]
    makefile = (REPOSITORY / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPOSITORY / ".ci" / "run").read_text()


# What `tests/test_readme.py` changes in the README's commands, as the README says ("Where to
# start"): the commands that train run one epoch on 256 examples (and two trials).
TRAINING_COMMANDS = ("train", "compare", "tune")
SHORTER = ["--epochs", "1", "--train-examples", "256", "--test-examples", "64"]
# Commands needing a download or several devices or hosts: their syntax is checked. So is
# `kmc convert`, whose sources are downloads or files of the user's, and a Python snippet whose
# first line says it needs a network (it is compiled).
NEEDS_NETWORK_OR_DEVICES = ("--recipe", "--strategy", "--distributed")
PARSED_ONLY_COMMANDS = ("convert",)
NEEDS_NETWORK = "# needs a network"
FENCED = re.compile(r"^( *)```(\w*)\n(.*?)\n\1```$", re.M | re.S)
INLINE = re.compile(r"`(\.venv/bin/kmc [^`]*)`")


def readme_steps(text=README):
    """The README's commands and Python snippets in order: `("python", code, runnable)` for each
    python block, `("kmc", argv, runnable)` for each kmc command of a shell block or inline
    span; what is not runnable is parsed or compiled only."""
    import shlex
    import textwrap

    steps, position = [], 0
    for block in FENCED.finditer(text):
        steps += [("kmc", *command) for command in _inline_commands(text[position:block.start()])]
        position = block.end()
        body = textwrap.dedent(block.group(3))
        if block.group(2) == "python":
            steps.append(("python", body, not body.startswith(NEEDS_NETWORK)))
            continue
        lines = body.replace("\\\n", " ").splitlines()
        if any(line.startswith("$ ") for line in lines):  # a session: commands, then output
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        for line in lines:
            if not re.search(r"(^|\s)(\.venv/bin/)?kmc\s", line):
                continue  # make, pip, python -c "...", pytest: not kmc's
            words = shlex.split(line, comments=True)
            environment = [word for word in words if re.match(r"^[A-Z_]+=", word)]
            words = words[len(environment):]
            if words and words[0] in ("kmc", ".venv/bin/kmc"):
                steps.append(("kmc", words[1:], _runnable(words[1:], environment)))
    return steps + [("kmc", *command) for command in _inline_commands(text[position:])]


def _inline_commands(text):
    import shlex

    for span in INLINE.finditer(text):
        words = shlex.split(span.group(1))[1:]
        yield words, _runnable(words, [])


def _runnable(argv, environment):
    offline_data = "--dataset" not in argv or argv[argv.index("--dataset") + 1] == "shapes"
    return (not environment and offline_data and not set(argv) & set(NEEDS_NETWORK_OR_DEVICES)
            and not (argv and argv[0] in PARSED_ONLY_COMMANDS))


def test_the_readme_finds_every_kind_of_command():
    steps = readme_steps()
    commands = [step[1] for step in steps if step[0] == "kmc"]
    runnable = [step[1][0] for step in steps if step[0] == "kmc" and step[2]]
    assert {"data", "train", "predict", "evaluate", "export", "tune", "info", "--help"} <= set(runnable)
    # The scaling-out commands (environment, --strategy) and the recipes are parsed only.
    assert sum(not step[2] for step in steps if step[0] == "kmc") >= 6
    assert sum(step[0] == "python" for step in steps) >= 6 and len(commands) >= 20


@pytest.mark.slow
def test_every_readme_command_and_snippet_runs_in_order_in_a_fresh_folder(tmp_path, monkeypatch, capsys):
    """A fresh clone's user, following the README from the top (TensorFlow, the default)."""
    from keras_modern_cnn.cli import build_parser, main

    import time

    monkeypatch.chdir(tmp_path)
    namespace, seconds = {}, []
    for step in readme_steps():
        seconds.append((time.perf_counter(), step[0], step[1][:60] if step[0] == "python" else " ".join(step[1])[:60]))
        if step[0] == "python":
            code = compile(step[1], "README.md", "exec")
            if step[2]:
                exec(code, namespace)  # noqa: S102
            continue
        _, argv, runnable = step
        if not runnable:
            build_parser().parse_args(argv)  # the syntax, and every choice, is right
            continue
        if argv[0] in TRAINING_COMMANDS:
            argv = [*argv, *SHORTER, *(["--max-trials", "2"] if argv[0] == "tune" else [])]
        try:
            status = main(argv)
        except SystemExit as exit_info:  # --help
            status = exit_info.code
        assert status in (0, None), f"kmc {' '.join(argv)}: {capsys.readouterr().err[-2000:]}"
    assert (tmp_path / "masks" / "ring" / "ring_0_overlay.png").is_file()
    assert (tmp_path / "disk_masks" / "disk_0_mask.png").is_file()
    assert (tmp_path / "runs" / "demo" / "model_int8.tflite").is_file()
    ends = [start for start, *_ in seconds[1:]] + [time.perf_counter()]
    with capsys.disabled():  # where the time goes (pytest -s shows it)
        for (start, kind, what), end in sorted(zip(seconds, ends), key=lambda item: item[0][0] - item[1])[:8]:
            print(f"{end - start:6.1f} s  {kind} {what!r}")
    assert (tmp_path / "predictions.csv").read_text().count("samples/images/") == 3 * 30
