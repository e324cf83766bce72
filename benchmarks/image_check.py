"""What the up-front image check costs (issue 27): before the first step, every file of an image
folder is checked with the decoder training uses (`keras_modern_cnn.data.images.check_image_files`:
PIL reads each header, TensorFlow decodes the files in one parallel tf.data pass) instead of
PIL decoding it alone.

    .venv/bin/python benchmarks/image_check.py --files 300 --rounds 5

Both checks run in one process on the same files, alternating round after round (the machine is
noisy); the median per-file time of each and the median ratio are printed as a Markdown table.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def pil_load(path):
    """The check before issue 27: PIL decodes the file."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from PIL import Image

    from keras_modern_cnn.data.images import check_image_files

    rng = np.random.default_rng(0)
    kinds = {"28x28 grey PNG (Fashion-MNIST-like)": (28, "png", "L"),
             "224x224 RGB JPEG (photo-like)": (224, "jpg", "RGB")}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, (side, extension, mode) in kinds.items():
            paths = []
            for index in range(args.files):
                shape = (side, side) if mode == "L" else (side, side, 3)
                path = os.path.join(folder, f"{side}_{index}.{extension}")
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
                paths.append(path)
            checks = {
                "PIL load": lambda: [pil_load(path) for path in paths],
                "check_image_files": lambda: check_image_files(paths),
            }
            for check in checks.values():  # warm-up: imports, TensorFlow's first ops
                check()
            seconds = {name: [] for name in checks}
            for round_index in range(args.rounds):
                order = list(checks) if round_index % 2 == 0 else list(checks)[::-1]
                for name in order:
                    start = time.perf_counter()
                    checks[name]()
                    seconds[name].append((time.perf_counter() - start) / len(paths))
            base = seconds["PIL load"]
            rows.append((label, {name: (statistics.median(values) * 1e3, statistics.median(
                [new / old for old, new in zip(base, values)])) for name, values in seconds.items()}))
    names = list(rows[0][1])
    print("| files | " + " | ".join(f"{name} ms/file (x PIL load)" for name in names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, figures in rows:
        print(f"| {label} | " + " | ".join(f"{ms:.3f} ({ratio:.2f}x)" for ms, ratio in figures.values()) + " |")


if __name__ == "__main__":
    main()
