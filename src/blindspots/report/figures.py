"""Report-level figures: accuracy bars, precision-recall curves and training curves.

Like `blindspots.sweep.figures`, every function takes `colours` (variant ->
colour) so a variant keeps its colour in every figure, and returns
(figure, caption). Figures are `matplotlib.figure.Figure` objects, which
need no display or pyplot state.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

# Line styles that tell the seeds of one variant apart, in seed order.
SEED_LINESTYLES = ("-", "--", ":", "-.")
TRAINING_TITLES = {"loss": "total loss", "class_loss": "classification loss", "box_loss": "box regression loss"}


def plot_accuracy(accuracy: pd.DataFrame, colours: Mapping[str, str], iou: float, interpolation: str) -> tuple[Figure, str]:
    """Draw mAP and weighted mAP per variant as bars with 95% CI error bars.

    `accuracy` is the table of `blindspots.evaluation.table.accuracy_table`,
    indexed by variant, with mean_ap, weighted_mean_ap and their `_ci95`
    half-widths (NaN for one seed, drawn without an error bar).
    """
    metrics = [("mean_ap", "mAP"), ("weighted_mean_ap", "weighted mAP")]
    names = list(accuracy.index)
    figure = Figure(figsize=(max(6.0, 1.6 * len(names) + 3.0), 4.2), layout="constrained")
    ax = figure.add_subplot()
    width = 0.8 / len(names)
    positions = np.arange(len(metrics))
    for index, name in enumerate(names):
        means = [float(accuracy.loc[name, key]) for key, _ in metrics]
        errors = [float(accuracy.loc[name, f"{key}_ci95"]) for key, _ in metrics]
        offset = (index - (len(names) - 1) / 2) * width
        ax.bar(positions + offset, np.nan_to_num(means), width, color=colours[name], label=name)
        # A zero-length error bar still draws its caps, which reads as a
        # measured interval of zero, so a one-seed bar gets no error bar at all.
        finite = [position for position, error in enumerate(errors) if not math.isnan(error)]
        if finite:
            ax.errorbar(
                positions[finite] + offset,
                [means[position] for position in finite],
                yerr=[errors[position] for position in finite],
                fmt="none",
                ecolor="black",
                capsize=3,
            )
    ax.set_xticks(positions, [label for _, label in metrics])
    ax.set_ylabel(f"average precision at IoU {iou:g} ({interpolation} interpolation)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title("Detection accuracy on the test split")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    caption = (
        "Mean over seeds of mAP (classes weigh equally) and weighted mAP (classes weigh by their number of boxes). "
        "Error bars are the 95% confidence interval across seeds, absent for a variant with one seed. "
        "Look for bars whose error bars do not overlap: only those differences exceed seed-to-seed variation."
    )
    return figure, caption


def plot_pr_curves(
    curves: Mapping[tuple[str, int], pd.DataFrame],
    colours: Mapping[str, str],
    class_names: Sequence[str],
    iou: float,
) -> tuple[Figure, str]:
    """Overlay the precision-recall curves of every run, one panel per class.

    `curves` maps (variant, seed) to the run's pr_curves.csv table with
    columns class, recall and precision. Seeds of a variant share its colour
    and differ in line style. Classes without any curve get no panel.
    """
    present = [name for name in class_names if any((table["class"] == name).any() for table in curves.values())]
    panels = present or list(class_names[:1])
    columns = min(len(panels), 2)
    rows = int(math.ceil(len(panels) / columns))
    figure = Figure(figsize=(5.5 * columns, 4.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    seed_index = _seed_indices(curves)
    for ax, class_name in zip(axes, panels):
        for (variant, seed), table in curves.items():
            points = table.loc[table["class"] == class_name].sort_values("recall", kind="stable")
            if points.empty:
                continue
            linestyle = SEED_LINESTYLES[seed_index[(variant, seed)] % len(SEED_LINESTYLES)]
            ax.plot(points["recall"], points["precision"], color=colours[variant], linestyle=linestyle, linewidth=1.2)
        ax.set_title(f"class {class_name}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(handles=_legend_handles(curves, colours), fontsize="small", loc="lower left")
    figure.suptitle(f"Precision-recall curves per class at IoU {iou:g}")
    caption = (
        "Precision against recall on the test split as the score threshold falls, one line per run: colour "
        "is the variant and line style the seed. A class without ground truth or without detections has no "
        "panel. Look for a variant "
        "whose curve lies below the others at the same recall in every seed: a gap that changes sign between seeds "
        "is seed-to-seed variation."
    )
    return figure, caption


def plot_training_curves(
    series: Mapping[tuple[str, int], Mapping[str, pd.DataFrame]],
    colours: Mapping[str, str],
) -> tuple[Figure, str]:
    """Plot every run's training losses against the step, one panel per loss series.

    `series` maps (variant, seed) to series name -> table with columns step
    and value, the format of `collect.RunOutputs.training`.
    """
    names = [name for name in TRAINING_TITLES if any(name in run for run in series.values())]
    figure = Figure(figsize=(5.0 * max(len(names), 1), 4.0), layout="constrained")
    axes = figure.subplots(1, max(len(names), 1), squeeze=False).ravel()
    seed_index = _seed_indices(series)
    for ax, name in zip(axes, names):
        for (variant, seed), run in series.items():
            if name not in run:
                continue
            table = run[name]
            linestyle = SEED_LINESTYLES[seed_index[(variant, seed)] % len(SEED_LINESTYLES)]
            ax.plot(table["step"], table["value"], color=colours[variant], linestyle=linestyle, linewidth=1.0)
        ax.set_title(TRAINING_TITLES[name])
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{TRAINING_TITLES[name]} (per positive anchor)")
        ax.grid(alpha=0.3)
    axes[0].legend(handles=_legend_handles(series, colours), fontsize="small")
    figure.suptitle("Training losses by step")
    caption = (
        "Losses logged by DVCLive during training, one line per run: colour is the variant and line style the seed. "
        "The total loss is the classification loss plus the box regression loss, both divided by the batch's "
        "positive anchors, plus the L2 weight decay. "
        "Look for runs that have not flattened by the last step, or a variant that converges to a clearly "
        "higher loss: either makes its accuracy and sweep numbers less comparable."
    )
    return figure, caption


def _seed_indices(runs: Mapping[tuple[str, int], object]) -> dict[tuple[str, int], int]:
    """Number each variant's seeds 0, 1, ... in ascending order, for the line style."""
    indices: dict[tuple[str, int], int] = {}
    for variant in dict.fromkeys(variant for variant, _ in runs):
        seeds = sorted(seed for name, seed in runs if name == variant)
        indices.update({(variant, seed): index for index, seed in enumerate(seeds)})
    return indices


def _legend_handles(runs: Mapping[tuple[str, int], object], colours: Mapping[str, str]) -> list[Line2D]:
    """Build one colour entry per variant, then one line-style entry per seed position when a variant has several seeds."""
    handles = [Line2D([], [], color=colours[variant], label=variant) for variant in dict.fromkeys(v for v, _ in runs)]
    seeds_per_variant = max((sum(1 for name, _ in runs if name == variant) for variant, _ in runs), default=1)
    if seeds_per_variant > 1:
        for index in range(min(seeds_per_variant, len(SEED_LINESTYLES))):
            handles.append(Line2D([], [], color="black", linestyle=SEED_LINESTYLES[index], label=f"seed #{index + 1}"))
    return handles
