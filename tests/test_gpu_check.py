"""benchmarks/gpu_check.py, the prepared GPU check (issue 17), runs its smoke mode on CPU.

The smoke run exercises every part on small stand-ins under the current KERAS_BACKEND, in a
subprocess as a user runs it; the test reads what it wrote, never its speed.
"""

import json
import math
import os
import subprocess
import sys

import keras
import pytest

# Slow (runs the GPU check's CPU rehearsal): left out of `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_CHECK = os.path.join(ROOT, "benchmarks", "gpu_check.py")
PARTS = ("precision", "chapter", "twins", "memory")
# Part 5, ours vs torchvision, runs on the torch backend only (last).
TORCH_PARTS = ("torchvision",) if keras.config.backend() == "torch" else ()


def numbers(value):
    """Every int and float inside a JSON value (booleans excluded)."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    return []


def run_gpu_check(*args):
    return subprocess.run(
        [sys.executable, GPU_CHECK, *args], capture_output=True, text=True, timeout=600,
        cwd=ROOT,
    )


def test_smoke_run_records_every_part_with_finite_figures(tmp_path):
    completed = run_gpu_check("--smoke", "--output-dir", str(tmp_path))
    assert completed.returncode == 0, completed.stderr[-3000:]
    backend = keras.config.backend()
    assert f"gpu_check: device cpu (cpu, 1 device(s)), backend {backend}" in completed.stdout

    report = json.loads((tmp_path / f"gpu_check_{backend}.json").read_text())
    assert (report["backend"], report["platform"]) == (backend, "cpu")
    # run order
    assert tuple(report["parts"]) == ("precision", "memory", "chapter", "twins", *TORCH_PARTS)
    for part in PARTS + TORCH_PARTS:
        items = report["parts"][part]["items"]
        assert items and all(item["status"] == "done" for item in items), (part, items)
        assert all(math.isfinite(n) for n in numbers(items)), (part, items)

    precision = report["parts"]["precision"]["items"]
    assert {item["policy"] for item in precision} == {"mixed_bfloat16", "mixed_float16"}
    assert all(item["finite"] and item["missing_gradients"] == 0 for item in precision)
    assert {item["output_dtype"] for item in precision} == {"bfloat16", "float16"}
    (chapter,) = report["parts"]["chapter"]["items"]
    assert chapter["examples_per_second"] > 0
    assert chapter["seeds_examples_per_second"] == 27746.0  # the book's BN-LeNet figure
    (twin,) = report["parts"]["twins"]["items"]
    assert twin["ours_img_per_s"] > 0 and twin["keras_img_per_s"] > 0
    assert twin["batch_size"] == report["settings"]["twin_max_batch"]
    (memory,) = report["parts"]["memory"]["items"]
    assert memory["plain"]["peak_mib"] > 0 and memory["memory_efficient"]["peak_mib"] > 0
    assert memory["memory_ratio"] > 0 and memory["time_ratio"] > 0
    if TORCH_PARTS:
        (torchvision,) = report["parts"]["torchvision"]["items"]
        assert torchvision["device"] == "cpu"
        for mode in ("train", "predict"):
            figures = torchvision[mode]
            assert figures["ours_img_per_s"] > 0 and figures["tv_cl_img_per_s"] > 0
            assert figures["ratio_min"] <= figures["ratio_median"] <= figures["ratio_max"]

    table = (tmp_path / f"gpu_check_{backend}.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| part ")]
    item_count = sum(len(report["parts"][part]["items"]) for part in PARTS + TORCH_PARTS)
    assert len(rows) == item_count
    assert [row.split(" | ")[0] for row in rows] == [
        f"| {part}" for part in PARTS + TORCH_PARTS for _ in report["parts"][part]["items"]
    ]
    assert all(row.count("|") == 6 for row in rows)  # five cells: no stray pipes


def test_memory_child_measures_one_configuration_in_its_own_process():
    """The path JAX takes on a GPU, where the peak counter needs a fresh process per model."""
    settings = dict(
        precision_models=[], chapter_models=[], chapter_tiny=True, chapter_batch=1,
        chapter_steps=1, twin_models=[], twin_image_size=32, twin_max_batch=1, twin_rounds=1,
        twin_steps=1, memory_models=["densenet_d2l"], memory_image_size=32,
        memory_width_ratio=1 / 8, memory_batch=16, memory_steps=1, policy="float32",
        jit_compile="auto", budget_seconds=60.0,
    )
    job = dict(name="densenet_d2l", memory_efficient=True, settings=settings)
    completed = run_gpu_check("--memory-child", json.dumps(job))
    assert completed.returncode == 0, completed.stderr[-3000:]
    (line,) = [line for line in completed.stdout.splitlines() if line.startswith("GPU_CHECK_CHILD ")]
    figures = json.loads(line.removeprefix("GPU_CHECK_CHILD "))
    assert figures["peak_mib"] > 0 and figures["step_seconds"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (("--parts", "precision,speed"), "Received: parts='precision,speed'"),
        (("--budget-seconds", "0"), "Received: budget_seconds=0.0"),
    ],
)
def test_bad_arguments_are_rejected_with_a_message_naming_them(args, message):
    completed = run_gpu_check(*args)
    assert completed.returncode == 2 and message in completed.stderr
