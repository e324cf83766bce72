"""What pretrained weights cost: converting a PyTorch file at build time, and preprocessing inside.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/weights.py --rounds 3

1. Building `resnet50_tv` (full size) with `weights=` a torchvision-layout `.pth`, a `.safetensors`
   file, or the `.keras` file `kmc convert` writes, against building it with random weights,
   interleaved round by round: what the conversion adds, and whether converting once pays.
2. `predict_on_batch` of ResNet-18 (224x224, batch 16) on raw uint8 images with
   `include_preprocessing=True` against the same model fed `preprocess_input` output, interleaved.

The PyTorch file is torchvision's ResNet-50 with random weights (no network here): the same
tensors, names and sizes as `IMAGENET1K_V2`'s 98 MB file.
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import keras_modern_cnn as kmc  # noqa: E402


def seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def conversion(rounds, folder):
    import torch
    from _torch_models import torchvision
    from safetensors.torch import save_file

    state = torchvision().resnet50().state_dict()
    torch.save(state, os.path.join(folder, "resnet50.pth"))
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(folder, "resnet50.safetensors"))
    kmc.saving.save_model(kmc.ResNet50TV(weights=os.path.join(folder, "resnet50.pth")),
                          os.path.join(folder, "resnet50_tv.keras"))
    candidates = {
        "random weights": lambda: kmc.ResNet50TV(),
        ".pth (converted)": lambda: kmc.ResNet50TV(weights=os.path.join(folder, "resnet50.pth")),
        ".safetensors (converted)": lambda: kmc.ResNet50TV(weights=os.path.join(folder, "resnet50.safetensors")),
        ".keras (kmc convert's)": lambda: kmc.saving.load_model(os.path.join(folder, "resnet50_tv.keras")),
    }
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, build in candidates.items():
            times[name].append(seconds(build))
            keras.backend.clear_session()
    reference = np.array(times["random weights"])
    print("| build resnet50_tv | seconds (median) | ratio to random weights (median, min-max) |")
    print("|---|---:|---|")
    for name, values in times.items():
        ratio = np.array(values) / reference
        print(f"| {name} | {np.median(values):.2f} | {np.median(ratio):.2f} "
              f"({ratio.min():.2f}-{ratio.max():.2f}) |")


def preprocessing(rounds, steps=5):
    images = np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3)).astype("uint8")
    inside = kmc.ResNet18(include_preprocessing=True)
    outside = kmc.ResNet18()
    outside.set_weights(inside.get_weights())
    normalised = kmc.preprocess_input(images, "torch")
    np.testing.assert_allclose(inside.predict_on_batch(images), outside.predict_on_batch(normalised),
                               rtol=1e-4, atol=1e-5)
    ratios = []
    for _ in range(rounds):
        with_layer = min(seconds(lambda: inside.predict_on_batch(images)) for _ in range(steps))
        without = min(seconds(lambda: outside.predict_on_batch(kmc.preprocess_input(images, "torch")))
                      for _ in range(steps))
        ratios.append(with_layer / without)
    ratios = np.array(ratios)
    print(f"predict, preprocessing inside / preprocess_input outside: {np.median(ratios):.2f} "
          f"({ratios.min():.2f}-{ratios.max():.2f}) over {rounds} rounds, best of {steps} steps each")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}")
    with tempfile.TemporaryDirectory() as folder:
        conversion(args.rounds, folder)
    preprocessing(args.rounds)


if __name__ == "__main__":
    main()
