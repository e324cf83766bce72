"""Every picture the package draws, in one style: training curves, model comparisons, trials.

`curves.png` (`kmc train`, `kmc compare`), `comparison.png` (`kmc compare`) and `trials.png`
(`kmc tune`) share the figure set-up here (matplotlib's Agg backend, light grid, whole-number
axes where counts are plotted, 200 dpi) and are written atomically.
"""

import contextlib

from keras_modern_cnn.files import atomic_write

DPI = 200
PANEL_HEIGHT = 3.6  # inches


@contextlib.contextmanager
def _figure(path, columns=1, width=6.0):
    """Yield `(figure, axes)` (axes: one per column) and save the figure to `path` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, columns, figsize=(width, PANEL_HEIGHT), squeeze=False)
    try:
        yield figure, list(axes[0])
        figure.tight_layout()
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=DPI))
    finally:
        pyplot.close(figure)


def _wrapped(title, figure):
    """`title` broken into lines that fit the figure's width (about 11 characters per inch)."""
    import textwrap

    return textwrap.fill(title, width=max(30, int(figure.get_figwidth() * 11)))


def _integer_ticks(axis, first, last):
    """Whole-number ticks on the x axis from `first` to `last`, with half a step of margin
    (a one-epoch run would otherwise read 0.945 ... 1.050)."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axis.set_xlim(first - 0.5, last + 0.5)


def plot_curves(histories, path, title=None):
    """Loss and accuracy per epoch, train (solid) and test (dashed), one colour per model.

    Separate panels (a loss of 3 would squash accuracies on a shared axis), whole-number epoch
    ticks. A segmentation run adds a panel of mean IoU and mean Dice: its pixel accuracy is
    high from the background alone. `histories`: model name -> `rundir.read_history` rows;
    `title`: the settings.
    """
    rows_all = [row for rows in histories.values() for row in rows]
    segmentation = any("mean_iou" in row for row in rows_all)
    panels = [(("loss",), "loss (cross-entropy)"),
              (("accuracy",), "pixel accuracy" if segmentation else "accuracy")]
    if segmentation:
        panels.append((("mean_iou", "mean_dice"), "mean IoU (o), mean Dice (s)"))
    epochs_all = [row["epoch"] for row in rows_all] or [1]
    with _figure(path, columns=len(panels), width=5 * len(panels)) as (figure, axes):
        for axis, (keys, label) in zip(axes, panels):
            for index, (name, rows) in enumerate(histories.items()):
                epochs = [row["epoch"] for row in rows]
                prefix = "" if len(histories) == 1 else f"{name} "
                for number, (key, marker) in enumerate(zip(keys, "os")):
                    metric = "" if len(keys) == 1 else {"mean_iou": "IoU ", "mean_dice": "Dice "}[key]
                    # One colour per model; a single model's IoU and Dice get one each.
                    colour = f"C{index if len(histories) > 1 else number}"
                    for split, style in (("", "-"), ("val_", "--")):
                        axis.plot(epochs, [row.get(split + key) for row in rows], style,
                                  marker=marker, markersize=3, color=colour,
                                  label=prefix + metric + ("test" if split else "train"))
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            _integer_ticks(axis, min(epochs_all), max(epochs_all))
            axis.grid(alpha=0.3)
        axes[0].set_ylim(bottom=0)
        for axis in axes[1:]:
            axis.set_ylim(0, 1.02)
        axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))  # off the data
        figure.suptitle(_wrapped(title or ", ".join(histories), figure))
    return path


def plot_comparison(all_metrics, path, title):
    """Bar charts of test accuracy and training examples/sec, one bar per model (`kmc compare`)."""
    names = [metrics["model"] for metrics in all_metrics]
    with _figure(path, columns=2, width=max(6, 1.6 * len(names) + 2)) as (figure, axes):
        panels = [("test_accuracy", "test accuracy", "{:.3f}"),
                  ("examples_per_second", "training examples/sec", "{:,.0f}")]
        for axis, (key, label, number) in zip(axes, panels):
            values = [metrics[key] or 0 for metrics in all_metrics]  # None: no epoch timed
            bars = axis.bar(names, values, color=[f"C{i}" for i in range(len(names))])
            axis.bar_label(bars, labels=[number.format(value) for value in values], fontsize="small")
            axis.set_ylabel(label)
            axis.tick_params(axis="x", labelrotation=30 if len(names) > 3 else 0)
            axis.margins(y=0.15)
            axis.grid(axis="y", alpha=0.3)
        axes[0].set_ylim(0, 1.1)
        figure.suptitle(_wrapped(title, figure))
    return path


# Objectives whose natural range is [0, 1] (accuracies, IoU, Dice): plotted on all of it.
UNIT_RANGE_OBJECTIVES = ("accuracy", "iou", "dice")


def plot_trials(trials, objective, maximize, path, title, chance=None):
    """Score of each trial in the order they ran, and the best score so far (`kmc tune`).

    `trials`: `(trial number, score or None)` pairs; `objective`: the score's name; `chance`:
    the score of guessing (1 / classes for an accuracy), drawn as a line. An accuracy-like
    objective is plotted on [0, 1] and a loss from 0, never auto-zoomed: noise around chance
    level must not look like progress.
    """
    best = max if maximize else min
    numbers, scores, best_so_far = [], [], []
    for number, score in sorted(trials):
        if score is not None:
            numbers.append(number)
            scores.append(score)
            best_so_far.append(best(scores))
    failed = len(trials) - len(scores)
    with _figure(path) as (figure, (axis,)):
        axis.plot(numbers, scores, "o", color="C0", label="trial")
        axis.step(numbers, best_so_far, where="post", color="C1", label="best so far")
        if chance is not None:
            axis.axhline(chance, color="0.4", linestyle=":", label=f"chance ({chance:.2g})")
        axis.set_xlabel("trial (as in results.csv, in the order run)")
        axis.set_ylabel(objective)
        numbered = [number for number, _ in trials] or [1]
        _integer_ticks(axis, min(numbered), max(numbered))
        if any(word in objective.lower() for word in UNIT_RANGE_OBJECTIVES):
            axis.set_ylim(0, 1.02)
        else:
            axis.set_ylim(bottom=min([0.0, *scores]))
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
        axis.set_title(f"{title}: {len(trials)} trials"
                       + (f", {failed} without a score (failed)" if failed else ""))
    return path


def compare_title(configs, metrics):
    """`kmc compare`'s title: the data and its subset, epochs, and the input size and width
    when the models share them (else "per model"; results.csv has each model's settings)."""
    first = configs[0]

    def shared(values, form):
        values = set(values)
        return form(values.pop()) if len(values) == 1 else "per model"

    subset = ("all examples" if first.train_examples is None and first.test_examples is None
              else f"{first.train_examples or 'all'} train / {first.test_examples or 'all'} test examples")
    size = shared([config.image_size for config in configs], lambda side: f"{side}x{side}")
    width = shared([config.width_ratio for config in configs],
                   lambda ratio: "model's own" if ratio is None else f"x{ratio:g}")
    return (f"{metrics[0]['dataset']} ({subset}), {first.epochs} epochs, input {size}, "
            f"width {width}")


def run_title(config, data_name):
    """The settings a run's curves depend on, for a plot's title (`config`: a `RunConfig`)."""
    width = "" if config.width_ratio is None else f", width x{config.width_ratio:g}"
    encoder = "" if config.encoder is None else f" ({config.encoder} encoder)"
    return (f"{config.model}{encoder} on {data_name} ({config.image_size}px{width}): {config.optimizer} "
            f"lr {config.learning_rate:g}, batch {config.batch_size}")
