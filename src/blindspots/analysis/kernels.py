"""Mean kernels and their left-right and top-bottom asymmetry, per layer.

A network trained with uneven padding tends to learn kernels that lean
towards one side, most visibly in its stride-2 layers. Kernels are
[kh, kw, in, out] for convolutions and [kh, kw, in, multiplier] for
depthwise convolutions. Both are averaged over the last two axes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np


if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelRecord:
    """The spatial kernel of one layer: weights [kh, kw, in, out] or [kh, kw] and the layer's stride."""

    name: str
    weights: np.ndarray
    stride: int = 1

    @property
    def downsampling(self) -> bool:
        return self.stride > 1


def mean_kernels(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average a kernel over its channel axes and return (mean of w, mean of |w|), each [kh, kw].

    The mean of raw weights shows a consistent lean. The mean of |w| shows
    where the weight magnitude sits even when signs cancel across channels.
    """
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim == 2:
        array = array[:, :, np.newaxis, np.newaxis]
    if array.ndim != 4:
        raise ValueError(f"kernel has shape {array.shape}; expected [kh, kw, in, out], [kh, kw, in, multiplier] or [kh, kw]")
    return array.mean(axis=(2, 3)), np.abs(array).mean(axis=(2, 3))


def asymmetry(kernel: np.ndarray) -> tuple[float, float]:
    """Return (left_right, top_bottom) asymmetry of a [kh, kw] kernel.

    left_right = (sum of the left column - sum of the right column) /
    sum(|kernel|), and top_bottom likewise with the top and bottom rows.
    Both lie in [-1, 1], and a positive value means the left (top) side
    weighs more. Both are NaN for an all-zero kernel.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    total = np.abs(kernel).sum()
    if total == 0.0:
        return float("nan"), float("nan")
    left_right = (kernel[:, 0].sum() - kernel[:, -1].sum()) / total
    top_bottom = (kernel[0, :].sum() - kernel[-1, :].sum()) / total
    return float(left_right), float(top_bottom)


def kernel_statistics(records: Sequence[KernelRecord]) -> pd.DataFrame:
    """Tabulate per layer the stride and the asymmetry of the mean raw and mean absolute kernels.

    Columns: layer, kernel_h, kernel_w, stride, downsampling, left_right,
    top_bottom (of the mean raw kernel), abs_left_right, abs_top_bottom (of
    the mean |w| kernel).
    """
    import pandas as pd

    rows = []
    for record in records:
        mean_raw, mean_abs = mean_kernels(record.weights)
        left_right, top_bottom = asymmetry(mean_raw)
        abs_left_right, abs_top_bottom = asymmetry(mean_abs)
        rows.append(
            {
                "layer": record.name,
                "kernel_h": mean_raw.shape[0],
                "kernel_w": mean_raw.shape[1],
                "stride": record.stride,
                "downsampling": record.downsampling,
                "left_right": left_right,
                "top_bottom": top_bottom,
                "abs_left_right": abs_left_right,
                "abs_top_bottom": abs_top_bottom,
            }
        )
    return pd.DataFrame(rows)


def kernel_records_from_keras(model: Any) -> list[KernelRecord]:
    """Collect the spatial kernels (larger than 1 x 1) of a tf_keras model, in layer order.

    Reads `kernel` of Conv2D and the project's PaddedConv2D, and
    `depthwise_kernel` of DepthwiseConv2D, SeparableConv2D and
    PaddedDepthwiseConv2D. Nested models are searched too. The stride is
    the layer's height stride.
    """
    records = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            records += kernel_records_from_keras(layer)
            continue
        variable = getattr(layer, "depthwise_kernel", None)
        if variable is None:
            variable = getattr(layer, "kernel", None)
        if variable is None or len(variable.shape) != 4 or tuple(variable.shape[:2]) == (1, 1):
            continue
        strides = getattr(layer, "strides", 1)
        stride = int(strides[0]) if isinstance(strides, (tuple, list)) else int(strides)
        records.append(KernelRecord(layer.name, np.asarray(variable.numpy()), stride))
    return records


def plot_mean_kernels(records: Sequence[KernelRecord], path: Path | str, title: str, absolute: bool = False) -> Path:
    """Draw each layer's mean kernel as a small heat map with its values, and save the figure atomically.

    `absolute` selects the mean of |w| instead of the mean of w. Each
    subplot title gives the layer, its stride when it down-samples (in bold)
    and the two asymmetries. Each subplot has its own colour range,
    symmetric around 0 for raw weights.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from blindspots.sweep.figures import save_figure

    if not records:
        raise ValueError("no kernels to plot; pass at least one KernelRecord")
    path = Path(path)
    columns = min(6, len(records))
    rows = -(-len(records) // columns)
    figure = Figure(figsize=(2.4 * columns, 2.5 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, record in zip(axes.flat, records):
        mean_raw, mean_abs = mean_kernels(record.weights)
        kernel = mean_abs if absolute else mean_raw
        limit = float(np.abs(kernel).max()) or 1.0
        if absolute:
            axis.imshow(kernel, cmap="viridis", vmin=0.0, vmax=limit)
        else:
            axis.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (row, column), value in np.ndenumerate(kernel):
            colour = "white" if abs(value) > 0.6 * limit else "black"
            axis.text(column, row, f"{value:.2g}", ha="center", va="center", fontsize=7, color=colour)
        left_right, top_bottom = asymmetry(kernel)
        stride = f", stride {record.stride}" if record.downsampling else ""
        axis.set_title(
            f"{record.name}{stride}\nleft-right {left_right:+.2f}, top-bottom {top_bottom:+.2f}",
            fontsize=8,
            fontweight="bold" if record.downsampling else "normal",
        )
        axis.set_xticks(range(kernel.shape[1]))
        axis.set_yticks(range(kernel.shape[0]))
        axis.set_xlabel("tap column", fontsize=7)
        axis.set_ylabel("tap row", fontsize=7)
    for axis in list(axes.flat)[len(records) :]:
        axis.set_visible(False)
    figure.suptitle(title)
    save_figure(figure, path, dpi=120)
    logger.info("wrote %s", path)
    return path
