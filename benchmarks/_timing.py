"""What the benchmarks share: interleaved throughput measurement, the train/predict comparison
of a model against its reference built on it, and a seeded random batch.

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


def best_seconds(run, repeats):
    """Seconds of the fastest of `repeats` calls of `run` after one warm-up call (other work only
    ever slows a call, so the best one is the machine's capability)."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def ratio_summary(results, numerator, denominator):
    """Median, min and max of per-round throughput ratios numerator/denominator."""
    ratios = [a / b for a, b in zip(results[numerator], results[denominator])]
    return statistics.median(ratios), min(ratios), max(ratios)


def train_and_predict_ratios(models, images, labels, *, ours, reference, rounds, steps):
    """`train_on_batch`, then `predict_on_batch` (3x the steps), of `models` interleaved.

    Args:
        models: dict name -> compiled model; `ours` and `reference` name the two compared.
    Returns:
        {"train": ..., "predict": ...}, each with the median images/sec of ours and of the
        reference ("keras_img_per_s") and the median, min and max per-round ratio ours/reference.
    """
    batch_size = len(images)
    train = interleaved_throughput(
        {name: (lambda m=m: m.train_on_batch(images, labels)) for name, m in models.items()},
        rounds=rounds, steps=steps, batch_size=batch_size,
    )
    predict = interleaved_throughput(
        {name: (lambda m=m: m.predict_on_batch(images)) for name, m in models.items()},
        rounds=rounds, steps=steps * 3, batch_size=batch_size,
    )
    report = {}
    for mode, results in (("train", train), ("predict", predict)):
        median, low, high = ratio_summary(results, ours, reference)
        report[mode] = {
            "ours_img_per_s": round(float(np.median(results[ours])), 1),
            "keras_img_per_s": round(float(np.median(results[reference])), 1),
            "ratio_median": round(median, 3),
            "ratio_min": round(low, 3),
            "ratio_max": round(high, 3),
        }
    return report


def random_batch(batch_size, image_size, classes, channels=3):
    """Seeded uniform [0, 1) float32 square images (channels last) and integer labels."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(batch_size, image_size, image_size, channels)).astype("float32")
    return images, rng.integers(0, classes, size=(batch_size,))
