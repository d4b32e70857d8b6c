"""Foveation maps: how many convolution windows each input pixel reaches the output through.

Take a network with all weights 1, no bias and no nonlinearity. The count
map is the gradient of sum(output) with respect to the input: the number of
paths from each input pixel to the output, over all windows and all layers.
Zero padding gives border pixels fewer paths. Mirror, edge and wrap-around
padding also count a pixel where its copy fills the padding. Partial
convolution (Liu et al. 2018) weights each window by
(window size) / (valid pixels in the window).

Each layer is a linear map T along each axis, [output, input], so counts go
back one layer as count_in = T_h^T @ count_out @ T_w. This 2-D step is exact
for every mode here, for two reasons. Padding is applied one axis at a time,
so the corners of tf.pad REFLECT and SYMMETRIC are the mirror of a mirror.
And a rectangular window's valid-pixel count is the product of the per-axis
counts, so the partial-convolution factor is a product too.
Channels are left out: with all-ones weights they scale every count by the
same factor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from blindspots.analysis.borders import border_statistics
from blindspots.analysis.padding_audit import pads_fit
from blindspots.modeling import geometry
from blindspots.modeling.geometry import AxisGeometry, ConvSpec

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# Modes that pad with zeros, so padded positions add no count.
ZERO_FILL_MODES = ("tf_same", "zero_explicit", "valid", "partial")


def source_index(position: int, n: int, mode: str) -> int | None:
    """Map a position on a padded axis to the input pixel it copies.

    `position` is in input coordinates, so -1 is the first padded pixel
    before the input and n the first after it. Returns None for a zero.
    Raises ValueError when a mirror padding is wider than the input allows,
    which tf.pad also rejects.
    """
    if 0 <= position < n:
        return position
    if mode in ZERO_FILL_MODES:
        return None
    if mode == "replicate":
        return 0 if position < 0 else n - 1
    if mode == "circular":
        return position % n
    if mode == "reflect":
        # The edge pixel is not repeated, so -1 copies pixel 1 and n copies n - 2.
        mirrored = -position if position < 0 else 2 * (n - 1) - position
    elif mode == "symmetric":
        # The edge pixel is repeated, so -1 copies pixel 0 and n copies n - 1.
        mirrored = -position - 1 if position < 0 else 2 * n - 1 - position
    else:
        raise ValueError(f"unknown padding mode '{mode}'; valid modes: {', '.join(ZERO_FILL_MODES)}, reflect, symmetric, replicate, circular")
    if not 0 <= mirrored < n:
        raise ValueError(f"padding '{mode}' cannot fill position {position} of an axis of {n} px; the padding is wider than the input allows")
    return mirrored


def window_matrix(geo: AxisGeometry, kernel: int, stride: int, mode: str) -> np.ndarray:
    """Build the all-ones window operator of one layer along one axis, shape [output, input].

    Entry [o, i] is how often window o reads input pixel i, directly or
    through a padded copy. Under `partial` each row is scaled by
    kernel / (taps on real pixels).
    """
    matrix = np.zeros((geo.output_size, geo.input_size))
    for output in range(geo.output_size):
        start = output * stride - geo.pad_before
        valid = 0
        for position in range(start, start + kernel):
            source = source_index(position, geo.input_size, mode)
            if source is not None:
                matrix[output, source] += 1.0
            valid += 0 <= position < geo.input_size
        if mode == "partial":
            matrix[output] *= kernel / max(valid, 1)
    return matrix


def trace_layers(n: int, layers: Sequence[ConvSpec], mode: str, alignment: str) -> list[AxisGeometry]:
    """Follow an axis of n px through `layers` and return each layer's geometry.

    Raises geometry.GeometryError when a layer gets an empty output or a
    padding wider than `mode` can fill from its input.
    """
    traced = []
    for spec in layers:
        geo = geometry.axis_geometry(n, spec.kernel, spec.stride, mode, alignment)
        if geo.output_size < 1 or not pads_fit(mode, geo):
            raise geometry.GeometryError(
                f"layer {spec.name} gets {n} px, too small for kernel {spec.kernel}, stride {spec.stride} with padding '{mode}'"
            )
        traced.append(geo)
        n = geo.output_size
    return traced


def foveation_counts_1d(n: int, layers: Sequence[ConvSpec], mode: str, alignment: str = "tf") -> np.ndarray:
    """Count the paths from each of n input pixels along one axis to every output of the last layer, shape [n]."""
    matrices = [window_matrix(geo, spec.kernel, spec.stride, mode) for spec, geo in zip(layers, trace_layers(n, layers, mode, alignment))]
    counts = np.ones(matrices[-1].shape[0]) if matrices else np.ones(n)
    for matrix in reversed(matrices):
        counts = matrix.T @ counts
    return counts


def foveation_map(
    input_size: tuple[int, int],
    mode: str,
    alignment: str = "tf",
    layers: Sequence[ConvSpec] | None = None,
) -> np.ndarray:
    """Count the paths from each input pixel to every output of the last layer, shape [height, width].

    `layers` defaults to every padded layer of SSD MobileNet v1 with the four
    SSD extra layers (`geometry.mobilenet_ssd_layers`). Pass a prefix of that
    list to stop earlier, for example at the backbone's last layer. Counts
    are float64 and grow as roughly 3^(layers) per axis, so compare maps by
    ratios, not absolute values.
    """
    if layers is None:
        layers = geometry.mobilenet_ssd_layers()
    height, width = input_size
    rows = [window_matrix(geo, s.kernel, s.stride, mode) for s, geo in zip(layers, trace_layers(height, layers, mode, alignment))]
    cols = [window_matrix(geo, s.kernel, s.stride, mode) for s, geo in zip(layers, trace_layers(width, layers, mode, alignment))]
    out_h = rows[-1].shape[0] if rows else height
    out_w = cols[-1].shape[0] if cols else width
    counts = np.ones((out_h, out_w))
    for row_matrix, col_matrix in zip(reversed(rows), reversed(cols)):
        counts = row_matrix.T @ counts @ col_matrix
    return counts


def centre_border_ratio(count_map: np.ndarray) -> float:
    """Return mean count of the central region divided by mean count of the outermost 1-px ring.

    The central region is rows [H // 4, H - H // 4) and columns
    [W // 4, W - W // 4), the middle half of each side. The ring is the
    first and last row and column, each pixel counted once. Needs H, W >= 3.
    """
    height, width = count_map.shape
    if height < 3 or width < 3:
        raise ValueError(f"count map of shape {count_map.shape} is too small; centre and border need at least 3 x 3 pixels")
    centre = count_map[height // 4 : height - height // 4, width // 4 : width - width // 4]
    ring = np.concatenate([count_map[0, :], count_map[-1, :], count_map[1:-1, 0], count_map[1:-1, -1]])
    return float(centre.mean() / ring.mean())


def foveation_maps(
    input_size: tuple[int, int],
    modes: Sequence[str],
    alignment: str = "tf",
    layers: Sequence[ConvSpec] | None = None,
) -> dict[str, np.ndarray]:
    """Compute `foveation_map` for each padding mode, keyed by mode."""
    maps = {}
    for mode in modes:
        maps[mode] = foveation_map(input_size, mode, alignment, layers)
        logger.info("foveation map %s at %dx%d: centre/border %.3f", mode, *input_size, centre_border_ratio(maps[mode]))
    return maps


def foveation_summary(maps: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Tabulate per mode the centre/border ratio and the border statistics of the count map.

    Border columns come from `borders.border_statistics`: each border's mean
    relative to the interior mean, and the top-bottom and left-right
    differences. An uneven padding shows as top != bottom or left != right.
    """
    import pandas as pd

    rows = []
    for mode, count_map in maps.items():
        row = {"mode": mode, "height": count_map.shape[0], "width": count_map.shape[1]}
        row["centre_border_ratio"] = centre_border_ratio(count_map)
        row.update(border_statistics(count_map))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_foveation_maps(maps: Mapping[str, np.ndarray], path: Path | str, title: str) -> Path:
    """Plot one count map per mode and save the figure atomically.

    Each map is divided by its own mean and drawn on a log colour scale,
    because mirror and edge padding pile paths onto the corners. Pixels
    with no path (the unread last row of VALID padding, for example) are
    black. The image format follows the suffix of `path` (png, pdf, svg).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from blindspots.sweep.figures import save_figure

    path = Path(path)
    columns = min(4, len(maps))
    rows = -(-len(maps) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="black")
    for axis, (mode, count_map) in zip(axes.flat, maps.items()):
        relative = count_map / count_map.mean()
        shown = np.ma.masked_less_equal(relative, 0.0)
        image = axis.imshow(shown, cmap=colours, norm=LogNorm(vmin=shown.min(), vmax=shown.max()), interpolation="nearest")
        axis.set_title(f"{mode}: centre/border {centre_border_ratio(count_map):.2f}")
        axis.set_xlabel("x (px)")
        axis.set_ylabel("y (px)")
        figure.colorbar(image, ax=axis, label="paths / mean paths")
    for axis in list(axes.flat)[len(maps) :]:
        axis.set_visible(False)
    figure.suptitle(title)
    save_figure(figure, path, dpi=120)
    logger.info("wrote %s", path)
    return path
