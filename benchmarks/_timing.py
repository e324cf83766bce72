"""What the benchmarks share: interleaved throughput measurement and a seeded random batch.

The machine is noisy (x2 swings between runs), so candidates are always measured in the same
process, in alternating order, round after round; ratios are reported per round and the median
ratio is the figure to record.
"""

import statistics
import time

import numpy as np


def interleaved_throughput(candidates, *, rounds, steps, batch_size, warmup=2):
    """Images/sec per round for each candidate, run in alternating order.

    Args:
        candidates: dict name -> zero-argument callable running one step on `batch_size` images.
    Returns:
        dict name -> list of images/sec, one per round.
    """
    for step in candidates.values():
        for _ in range(warmup):
            step()
    results = {name: [] for name in candidates}
    names = list(candidates)
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            for _ in range(steps):
                candidates[name]()
            results[name].append(steps * batch_size / (time.perf_counter() - start))
    return results


def ratio_summary(results, numerator, denominator):
    """Median, min and max of per-round throughput ratios numerator/denominator."""
    ratios = [a / b for a, b in zip(results[numerator], results[denominator])]
    return statistics.median(ratios), min(ratios), max(ratios)


def random_batch(batch_size, image_size, classes):
    """Seeded uniform [0, 1) float32 images (square, 3 channels) and integer labels."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch_size, image_size, image_size, 3)).astype("float32")
    return images, rng.integers(0, classes, size=(batch_size,))
