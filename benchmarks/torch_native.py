"""Our zoo on the PyTorch backend against torchvision's models, in one process (issue 31).

ResNet50, DenseNet121 and VGG16 (ours: `kmc.get_model`; torchvision's, random weights) at
batch 16, trained (SGD, cross-entropy on logits, `train_on_batch` for ours, a plain PyTorch
loop for torchvision) and run in inference (`predict_on_batch`; `model.eval()` under
`torch.no_grad()`), interleaved round by round (as `_timing.interleaved_throughput`). torchvision
runs twice: NCHW-contiguous ("tv_nchw") and in PyTorch's channels_last memory format ("tv_cl",
which is the memory layout of our NHWC tensors). The figure of merit is ours / the faster of the
two in the same round, median and range over rounds.

Further candidates (`--candidates`): "keras_path" is our model with the package's PyTorch
kernels and graph runner switched off (`keras_modern_cnn.layers.torch_kernels.disabled()`,
`keras_modern_cnn.torch_graph.disabled(model)`: Keras's own torch ops and graph walk, the path
before issue 31), "keras_graph" our model with only the graph runner off (Keras keeps every
intermediate tensor until the call returns), "ours_jit" our model compiled with `jit_compile=True`
(`torch.compile` of Keras's train/predict function), "tv_cl_compiled" torchvision's
channels_last model under `torch.compile`.

The architectures are the registered ones: our ResNet50 is the keras.applications twin (conv
biases, stride in the 1x1; torchvision's v1.5 puts it in the 3x3, no conv bias: 4 % more
FLOPs); DenseNet121 is the same network; torchvision's VGG16 gets ours' head (its adaptive
7x7 average pool becomes an identity and `fc1` takes the flattened map) so that below 224 px
both do the same work.

`--memory` instead measures the peak memory one inference call adds (`call_peak_mib`).
`--profile` instead runs each candidate under `torch.profiler` for a few steps and prints, per
model, mode and candidate: wall time per step, time inside torch operators, the top operators,
and every copy (`aten::copy_`) attributed to the Keras or package source line (or the autograd
node, in the backward pass) that made it.

    KERAS_BACKEND=torch python benchmarks/torch_native.py --sizes 64 --rounds 6
    KERAS_BACKEND=torch python benchmarks/torch_native.py --sizes 224 --rounds 3 --steps 1
    KERAS_BACKEND=torch python benchmarks/torch_native.py --profile --models resnet50
    KERAS_BACKEND=torch python benchmarks/torch_native.py --memory --sizes 224 --batch-size 32 \
        --candidates ours,keras_graph,tv_cl --rounds 3
"""

import os
import sys

if os.environ.setdefault("KERAS_BACKEND", "torch") != "torch":
    sys.exit("benchmarks/torch_native.py compares PyTorch backends: run it with KERAS_BACKEND=torch")

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from _timing import random_batch  # noqa: E402

# torchvision's model definitions beside a CPU torch: the one home of that import is the tests'.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from _torch_models import torchvision  # noqa: E402
import keras_modern_cnn as kmc  # noqa: E402
from keras_modern_cnn import torch_graph  # noqa: E402
from keras_modern_cnn.layers import torch_kernels  # noqa: E402

MODELS = ("resnet50", "densenet121", "vgg16")
REFERENCES = ("tv_nchw", "tv_cl")
CANDIDATES = ("ours", *REFERENCES, "keras_path", "keras_graph", "ours_jit", "tv_cl_compiled")
MODES = ("train", "predict")


def torchvision_model(name, image_size, classes):
    """torchvision's `name` with random weights; VGG16 with our head (see the module doc)."""
    models = torchvision()
    model = getattr(models, name)(weights=None, num_classes=classes)
    if name == "vgg16":
        side = image_size // 32
        model.avgpool = torch.nn.Identity()
        model.classifier[0] = torch.nn.Linear(512 * side * side, 4096)
    return model


def our_model(name, image_size, classes, jit_compile=False):
    model = kmc.get_model(
        name, input_shape=(image_size, image_size, 3), classes=classes, classifier_activation=None
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


class TorchvisionRunner:
    """A plain PyTorch training step and inference call of one torchvision model."""

    def __init__(self, model, images, labels, memory_format, compiled=False, device="cpu"):
        self.model = model.to(device=device, memory_format=memory_format)
        self.forward = torch.compile(self.model) if compiled else self.model
        nchw = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)
        self.images = nchw.contiguous(memory_format=memory_format)
        self.labels = torch.from_numpy(labels).long().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, foreach=True)

    def train_step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.forward(self.images), self.labels)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def predict(self):
        with torch.no_grad():
            return self.forward(self.images).cpu().numpy()

    def set_mode(self, mode):
        self.model.train(mode == "train")


class KerasRunner:
    """`train_on_batch` / `predict_on_batch` of one of our models, inside `context`."""

    def __init__(self, model, images, labels, context=contextlib.nullcontext):
        self.model, self.images, self.labels, self.context = model, images, labels, context

    def train_step(self):
        with self.context():
            return self.model.train_on_batch(self.images, self.labels)

    def predict(self):
        with self.context():
            return self.model.predict_on_batch(self.images)

    def set_mode(self, mode):
        pass


@contextlib.contextmanager
def keras_path(model):
    """Keras's own torch path, as before issue 31: its convolution and pooling ops, and its
    walk of the functional graph."""
    with torch_kernels.disabled(), torch_graph.disabled(model):
        yield


def runners(name, image_size, candidates, classes, batch_size, device="cpu"):
    """name -> runner of each candidate. On an accelerator our models get device-resident torch
    tensors (on CPU, numpy arrays: Keras wraps them without a copy)."""
    images, labels = random_batch(batch_size, image_size, classes)
    keras_images, keras_labels = images, labels
    if device != "cpu":
        keras_images = torch.from_numpy(images).to(device)
        keras_labels = torch.from_numpy(labels).to(device)
    keras.utils.set_random_seed(0)
    built = {}
    for candidate in candidates:
        if candidate == "ours":
            built[candidate] = KerasRunner(
                our_model(name, image_size, classes), keras_images, keras_labels
            )
        elif candidate == "keras_path":
            with torch_kernels.disabled():  # built so too: its kernels keep Keras's strides
                model = our_model(name, image_size, classes)
            built[candidate] = KerasRunner(model, keras_images, keras_labels,
                                           lambda model=model: keras_path(model))
        elif candidate == "keras_graph":
            model = our_model(name, image_size, classes)
            built[candidate] = KerasRunner(model, keras_images, keras_labels,
                                           lambda model=model: torch_graph.disabled(model))
        elif candidate == "ours_jit":
            built[candidate] = KerasRunner(
                our_model(name, image_size, classes, jit_compile=True), keras_images, keras_labels
            )
        else:
            memory_format = torch.contiguous_format if candidate == "tv_nchw" else torch.channels_last
            built[candidate] = TorchvisionRunner(
                torchvision_model(name, image_size, classes), images, labels, memory_format,
                compiled=candidate == "tv_cl_compiled", device=device,
            )
    return built


def interleaved(candidates, *, rounds, steps, batch_size, warmup=2):
    """`_timing.interleaved_throughput` on two clocks: images per second of wall time (the
    figure of merit) and per second of this process's CPU time, all threads (on the shared
    machine other processes slow the wall clock by x2 and more; they barely touch the CPU time
    this process spends, so its ratios are the steadier second reading)."""
    results = {clock: {name: [] for name in candidates} for clock in ("wall", "cpu")}
    results["first_step_s"] = {}
    for name, step in candidates.items():
        start = time.perf_counter()
        step()  # builds, and compiles under torch.compile
        results["first_step_s"][name] = round(time.perf_counter() - start, 2)
        for _ in range(warmup - 1):
            step()
    names = list(candidates)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                candidates[name]()
            images = steps * batch_size
            results["wall"][name].append(images / (time.perf_counter() - wall))
            results["cpu"][name].append(images / (time.process_time() - cpu))
    return results


def set_mode(runs, mode):
    for run in runs.values():
        run.set_mode(mode)


def summary(results, candidates):
    """Median img/s per candidate and the per-round ratios ours / each reference."""
    report = {f"{c}_img_per_s": round(statistics.median(results[c]), 2) for c in candidates}
    rounds = len(results["ours"])
    references = [c for c in REFERENCES if c in candidates]
    comparisons = {f"ours/{ref}": [results["ours"][i] / results[ref][i] for i in range(rounds)]
                   for ref in [c for c in candidates if c != "ours"]}
    if len(references) == 2:
        comparisons["ours/tv_best"] = [
            results["ours"][i] / max(results[ref][i] for ref in references) for i in range(rounds)
        ]
    for key, ratios in comparisons.items():
        report[key] = [round(statistics.median(ratios), 3), round(min(ratios), 3),
                       round(max(ratios), 3)]
    return report


def measure(args):
    candidates = args.candidates.split(",")
    report = dict(torch=torch.__version__, keras=keras.__version__,
                  threads=torch.get_num_threads(), load_average=os.getloadavg()[0],
                  batch_size=args.batch_size,
                  rounds=args.rounds, steps=args.steps, results={})
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.models.split(","):
            runs = runners(name, size, candidates, args.classes, args.batch_size)
            for mode in args.modes.split(","):
                set_mode(runs, mode)
                steps = args.steps * (1 if mode == "train" else args.predict_steps_factor)
                results = interleaved(
                    {c: (run.train_step if mode == "train" else run.predict)
                     for c, run in runs.items()},
                    rounds=args.rounds, steps=steps, batch_size=args.batch_size,
                )
                key = f"{name}/{size}/{mode}"
                report["results"][key] = {clock: summary(results[clock], candidates)
                                          for clock in ("wall", "cpu")}
                report["results"][key]["first_step_s"] = results["first_step_s"]
                print(json.dumps({key: report["results"][key]}), flush=True)
            del runs
    return report


# --- profile ------------------------------------------------------------------------------

SOURCE_MARKS = ("keras/src/", "keras_modern_cnn/")


def copy_origin(event):
    """Where an `aten::copy_` came from: the innermost Keras or package Python frame above it
    (the profiler records frames as events when `with_stack=True`), the operator that asked for
    the copy (`aten::contiguous`, `aten::clone`, ...), and, in the backward pass, the autograd
    node it runs under."""
    asked_by = frame = node_name = None
    node = event.cpu_parent
    while node is not None:
        name = node.name
        if asked_by is None and name.startswith("aten::"):
            asked_by = name
        if frame is None and any(mark in name for mark in SOURCE_MARKS):
            frame = name.split("src/")[-1].split("keras_modern_cnn/")[-1]
        if node_name is None and ("Backward" in name or "AccumulateGrad" in name):
            node_name = name.replace("autograd::engine::evaluate_function: ", "")
        node = node.cpu_parent
    where = f"bwd {node_name}" if node_name else "fwd"
    return f"{where} {frame or ''} ({asked_by or 'copy_'})".replace("  ", " ")


def profile_one(step, steps):
    """Operator times of `steps` calls of `step` (after two warm-up calls), then, in a second
    profiled run with Python stacks (slower, not timed), where each copy came from."""
    step()
    step()
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - start) / steps
    by_name = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        by_name[e.name][0] += 1
        by_name[e.name][1] += e.self_cpu_time_total
    in_ops = sum(t for n, (c, t) in by_name.items() if n.startswith("aten::")) / steps / 1e6
    with torch.profiler.profile(activities=activities, with_stack=True) as prof:
        step()
    copies = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.name == "aten::copy_":
            origin = copy_origin(e)
            copies[origin][0] += 1
            copies[origin][1] += e.cpu_time_total
    return dict(
        wall_s=wall, ops_s=in_ops,
        top=sorted(((n, c / steps, t / steps / 1e3) for n, (c, t) in by_name.items()),
                   key=lambda row: -row[2])[:14],
        copies=sorted(((o, c, t / 1e3) for o, (c, t) in copies.items()), key=lambda row: -row[2]),
    )


def profile(args):
    candidates = args.candidates.split(",")
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.models.split(","):
            runs = runners(name, size, candidates, args.classes, args.batch_size)
            for mode in args.modes.split(","):
                set_mode(runs, mode)
                for candidate, run in runs.items():
                    result = profile_one(run.train_step if mode == "train" else run.predict,
                                         args.profile_steps)
                    print(f"\n### {name} {size}px {mode} {candidate}: {result['wall_s'] * 1e3:.0f} ms"
                          f"/step under the profiler, {result['ops_s'] * 1e3:.0f} ms inside aten "
                          f"operators ({100 * result['ops_s'] / result['wall_s']:.0f} %)")
                    print("| op | calls/step | ms/step (self) |\n|---|---:|---:|")
                    for op, count, ms in result["top"]:
                        print(f"| `{op}` | {count:.0f} | {ms:.1f} |")
                    copies = result["copies"]
                    if copies:
                        print(f"copies: {sum(c for _, c, _ in copies):.0f}/step, "
                              f"{sum(t for _, _, t in copies):.1f} ms/step (Python stacks on)")
                        print("| copy made by | calls/step | ms/step |\n|---|---:|---:|")
                        for origin, count, ms in copies[:args.profile_rows]:
                            print(f"| `{origin}` | {count:.0f} | {ms:.1f} |")
            del runs


# --- memory ---------------------------------------------------------------------------------

def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def call_peak_mib(call):
    """Resident memory (MiB) `call` adds at its peak above what is live before it: free heap
    memory handed back first (glibc's `malloc_trim`), then the process's high-water mark reset
    (`/proc/self/clear_refs`, Linux) and read after the call."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    call()
    return (_status_kib("VmHWM") - before) / 1024


def peak_memory(args):
    """Per model, size and candidate: the most memory one inference call adds (median of
    `--rounds`, candidates interleaved)."""
    candidates = args.candidates.split(",")
    report = dict(batch_size=args.batch_size, unit="MiB", results={})
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.models.split(","):
            runs = runners(name, size, candidates, args.classes, args.batch_size)
            set_mode(runs, "predict")
            peaks = {candidate: [] for candidate in runs}
            for candidate, run in runs.items():
                run.predict()
            for round_index in range(args.rounds):
                order = list(runs) if round_index % 2 == 0 else list(runs)[::-1]
                for candidate in order:
                    peaks[candidate].append(call_peak_mib(runs[candidate].predict))
            key = f"{name}/{size}/predict"
            report["results"][key] = {c: round(statistics.median(v), 1) for c, v in peaks.items()}
            print(json.dumps({key: report["results"][key]}), flush=True)
            del runs
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default="64", help="comma-separated image sides")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--candidates", default="ours,tv_nchw,tv_cl",
                        help=f"comma-separated, 'ours' first; known: {','.join(CANDIDATES)}")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2, help="training steps per round")
    parser.add_argument("--predict-steps-factor", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory of one inference call instead of speed (Linux)")
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--profile-rows", type=int, default=12)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--output", help="write the JSON report here")
    args = parser.parse_args()
    candidates = args.candidates.split(",")
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown or candidates[0] != "ours":
        parser.error(f"`--candidates` must start with 'ours' and name known candidates "
                     f"({', '.join(CANDIDATES)}). Received: candidates={args.candidates!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        profile(args)
        return
    report = peak_memory(args) if args.memory else measure(args)
    print(json.dumps(report, indent=2))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
