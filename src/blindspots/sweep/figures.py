"""Figures of a shift sweep: rate by position, rate beside score, and heatmaps.

Every plotting function takes `colours` (variant -> colour), so a variant
keeps its colour in every figure, and returns (figure, caption). Figures
are `matplotlib.figure.Figure` objects rendered with Agg, so no display or
pyplot state is needed. Positions are light centres in model-input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from blindspots import runinfo
from blindspots.modeling import geometry

AXIS_LABELS = {"row": "light centre row y (px, 0 = top)", "column": "light centre column x (px, 0 = left)"}


def variant_colours(names: Sequence[str]) -> dict[str, str]:
    """Map variant names, in params order, to the tab10 colours as hex strings (cycling after 10)."""
    palette = colormaps["tab10"].colors
    return {name: to_hex(palette[index % len(palette)]) for index, name in enumerate(names)}


@dataclass(frozen=True)
class PaddingBand:
    """Input rows (or columns) next to a layer's uneven padding: [start, stop) in pixels.

    `side` is "after" when the extra padding is at the bottom (or right),
    "before" when it is at the top (or left).
    """

    layer: str
    start: int
    stop: int
    side: str

    @property
    def edge(self) -> int:
        """The band's inner edge, where a figure draws its mark."""
        return self.start if self.side == "after" else self.stop


def uneven_padding_bands(
    input_size: tuple[int, int],
    padding: str,
    alignment: str,
    axis: str = "row",
) -> list[PaddingBand]:
    """Return, for each stride-2 layer that pads unevenly, the input band beside the extra padding.

    Rule: a layer pads unevenly when the padding its windows read differs
    between the two sides (`geometry.AxisGeometry.uneven`). The band is the
    set of input pixels that map onto the layer-input position next to the
    extra padding: position p at cumulative stride j has its centre at
    c = c0 + p * j in input pixels and covers [c - j / 2, c + j / 2). For
    padding after (TF SAME on an even size: 0 before, 1 after) that is the
    last position, and the band runs to the bottom border. The band is the
    minimum region the padding touches, because the receptive field reaches
    further.
    """
    traced = geometry.trace_network(input_size, padding, alignment)
    size = input_size[0] if axis == "row" else input_size[1]
    jump = 1.0
    # Centre of layer-input position 0 in input pixels (pixel i has centre i).
    first_centre = 0.0
    bands = []
    for layer in traced:
        axis_geometry = layer.height if axis == "row" else layer.width
        spec = layer.spec
        read_after = axis_geometry.pad_after - axis_geometry.unconsumed_after
        if spec.stride == 2 and axis_geometry.uneven:
            if read_after > axis_geometry.pad_before:
                last_centre = first_centre + (axis_geometry.input_size - 1) * jump
                start = max(0, int(np.ceil(last_centre - jump / 2)))
                bands.append(PaddingBand(spec.name, start, size, "after"))
            else:
                stop = min(size, int(np.ceil(first_centre + jump / 2)))
                bands.append(PaddingBand(spec.name, 0, stop, "before"))
        first_centre += ((spec.kernel - 1) / 2 - axis_geometry.pad_before) * jump
        jump *= spec.stride
    return bands


def _rate_axes(ax, rates: Mapping[str, pd.DataFrame], colours: Mapping[str, str], axis: str, column: str) -> None:
    for variant, table in rates.items():
        ordered = table.sort_values(axis)
        ax.plot(ordered[axis], ordered[column], color=colours[variant], linewidth=1.2, label=variant)
        if column == "rate":
            ax.fill_between(ordered[axis], ordered["lower"], ordered["upper"], color=colours[variant], alpha=0.2, linewidth=0)
    ax.set_xlabel(AXIS_LABELS[axis])
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)


def _band_marks(ax, bands: Mapping[str, Sequence[PaddingBand]], colours: Mapping[str, str]) -> None:
    for variant, variant_bands in bands.items():
        for index, band in enumerate(variant_bands):
            label = f"{variant}: uneven padding" if index == 0 else None
            ax.axvline(band.edge, color=colours[variant], linestyle=":", linewidth=1.0, label=label)


def plot_rate_by_position(
    rates: Mapping[str, pd.DataFrame],
    colours: Mapping[str, str],
    bands: Mapping[str, Sequence[PaddingBand]] | None = None,
    axis: str = "row",
) -> tuple[Figure, str]:
    """Plot detection rate against light position for every variant, with Wilson 95% bands.

    `rates` maps variant -> table with columns `axis`, rate, lower, upper
    (from `metrics.rate_table` or `metrics.aggregate_seeds`). `bands` maps
    variant -> `uneven_padding_bands`, drawn as dotted lines at each band's
    inner edge.
    """
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    ax = figure.add_subplot()
    _rate_axes(ax, rates, colours, axis, "rate")
    if bands:
        _band_marks(ax, bands, colours)
    direction = "vertical" if axis == "row" else "horizontal"
    ax.set_ylabel("detection rate (IoU and score above threshold)")
    ax.set_title(f"Detection rate by {direction} position of a pasted traffic light")
    ax.legend(loc="lower left", fontsize="small")
    caption = (
        f"Share of pasted lights detected, by the light's centre {axis} in model-input pixels, pooled over "
        "crops, backgrounds and the fixed positions on the other axis. The shaded band is the Wilson 95% interval. "
        "Look for dips that one padding variant shows and the others do not: a narrow dip is a blind spot. "
        "Dotted lines mark, per variant, where a stride-2 layer pads unevenly: the inner edge of the input "
        "band next to that layer's extra padding row. Dips at those lines point to the padding."
    )
    return figure, caption


def plot_rate_and_score(
    rates: Mapping[str, pd.DataFrame],
    colours: Mapping[str, str],
    score_threshold: float,
    axis: str = "row",
) -> tuple[Figure, str]:
    """Plot the thresholded detection rate beside the mean score of the matched detections, by position.

    `rates` as for `plot_rate_by_position`, with a mean_score column.
    """
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    rate_ax, score_ax = figure.subplots(1, 2, sharex=True)
    _rate_axes(rate_ax, rates, colours, axis, "rate")
    rate_ax.set_ylabel("detection rate")
    rate_ax.set_title("Thresholded: detection rate")
    _rate_axes(score_ax, rates, colours, axis, "mean_score")
    score_ax.axhline(score_threshold, color="black", linestyle="--", linewidth=1, label=f"score threshold {score_threshold:g}")
    score_ax.set_ylabel("mean score of the matched detection")
    score_ax.set_title("Unthresholded: mean score")
    rate_ax.legend(loc="lower left", fontsize="small")
    score_ax.legend(loc="lower left", fontsize="small")
    figure.suptitle(f"Detection rate and score by {axis} position")
    caption = (
        "Left: share of pasted lights detected. Right: mean score of the detection matched to each light "
        "(the best score among detections that reach the IoU threshold, else the one of maximum IoU, and 0 "
        "when none overlaps), with the score threshold dashed. The score shows how close a position is to the "
        "threshold: a shallow score dip that crosses the line becomes a deep rate dip."
    )
    return figure, caption


def plot_heatmaps(
    cells: Mapping[str, pd.DataFrame],
    colours: Mapping[str, str],
    bin_size: int,
) -> tuple[Figure, str]:
    """Draw one detection-rate heatmap over (x, y) per variant, from grid mode.

    `cells` maps variant -> table with row, column and rate
    (`metrics.rate_table(table, ["row", "column"])`). Each cell spans
    `bin_size` pixels. Titles take the variant's colour.
    """
    count = len(cells)
    columns = min(count, 2)
    rows = int(np.ceil(count / columns))
    figure = Figure(figsize=(6 * columns, 3.6 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")
    image = None
    for ax, (variant, table) in zip(axes, cells.items()):
        grid = table.pivot(index="row", columns="column", values="rate")
        # Reindex onto every bin, so a bin without placements is a grey cell
        # and not a gap that imshow would close up.
        grid = grid.reindex(
            index=np.arange(grid.index.min(), grid.index.max() + 1, bin_size),
            columns=np.arange(grid.columns.min(), grid.columns.max() + 1, bin_size),
        )
        extent = (
            grid.columns.min(),
            grid.columns.max() + bin_size,
            grid.index.max() + bin_size,
            grid.index.min(),
        )
        image = ax.imshow(grid.to_numpy(np.float64), extent=extent, cmap=cmap, vmin=0.0, vmax=1.0, aspect="equal")
        ax.set_title(variant, color=colours[variant])
        ax.set_xlabel(AXIS_LABELS["column"])
        ax.set_ylabel(AXIS_LABELS["row"])
    for ax in axes[count:]:
        ax.set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=list(axes[:count]), label="detection rate")
    figure.suptitle("Detection rate by light position (grid sweep)")
    caption = (
        f"Each cell is the share of lights detected whose centre fell in that {bin_size} x {bin_size} px cell, "
        "pooled over crops and backgrounds. Grey cells had no placement. Look for horizontal or vertical "
        "stripes of low rate that one variant shows and another does not: a stripe is a blind spot row or column."
    )
    return figure, caption


def save_figure(figure: Figure, path: Path | str, dpi: int = 150) -> Path:
    """Write `figure` to `path` atomically, in the format that the suffix names."""
    path = Path(path)
    with runinfo.atomic_path(path) as temp:
        figure.savefig(temp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path
