"""How long `kmc` takes to answer: `--help`, every sub-command's `--help`, `list`, `info`.

Each command runs as a fresh process (the console script, as a user types it), `--repeat`
times; the median and the range are printed as a markdown table. Bars (issue 19): every
`--help` under 1 s, `kmc list` (with parameter counts) under 2 s on the 2-core machine.

    .venv/bin/python benchmarks/startup.py --repeat 5
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ["--help"],
    *[[command, "--help"] for command in
      ("list", "info", "summary", "train", "compare", "evaluate", "predict", "export", "tune")],
    ["list"],
    ["info", "resnet18"],
]


def seconds(argv):
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--kmc", default=os.path.join(os.path.dirname(sys.executable), "kmc"),
        help="the console script to time (default: the one beside this Python)",
    )
    args = parser.parse_args()
    print("| command | median s | min-max s |")
    print("|---|---:|---:|")
    for command in COMMANDS:
        times = [seconds([args.kmc, *command]) for _ in range(args.repeat)]
        print(f"| `kmc {' '.join(command)}` | {statistics.median(times):.2f} | "
              f"{min(times):.2f}-{max(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
