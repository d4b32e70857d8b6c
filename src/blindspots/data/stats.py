"""Dataset statistics per split: counts, labels, box sizes and repairs.

Box widths and heights are in pixels of the original images, so BSTLD's
numbers compare directly with the published dataset description.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from blindspots.data.bstld import Frame, RepairReport

logger = logging.getLogger(__name__)

# Histogram bin edges in original pixels. Bins are narrow below 32 px,
# where BSTLD's lights and the evaluation's width buckets (4, 8, 16 px)
# are. Sizes above the last edge are counted in the last bin.
SIZE_BIN_EDGES_PX: tuple[float, ...] = (0, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 256)


def size_histogram(sizes: np.ndarray, edges: Sequence[float] = SIZE_BIN_EDGES_PX) -> dict[str, list[float] | list[int]]:
    """Count sizes per bin `[edge_i, edge_i+1)`, with sizes past the last edge in the last bin."""
    clipped = np.minimum(np.asarray(sizes, dtype=np.float64), edges[-1])
    counts, _ = np.histogram(clipped, bins=np.asarray(edges, dtype=np.float64))
    return {"edges_px": [float(edge) for edge in edges], "counts": [int(count) for count in counts]}


def split_stats(frames: Sequence[Frame], class_names: Sequence[str]) -> dict[str, Any]:
    """Return image and box counts, label counts and box-size statistics of one split."""
    boxes = [box for frame in frames for box in frame.boxes]
    widths = np.array([box.width for box in boxes], dtype=np.float64)
    heights = np.array([box.height for box in boxes], dtype=np.float64)
    original = Counter(box.label for box in boxes)
    mapped = Counter(class_names[box.class_id] for box in boxes)
    empty = sum(1 for frame in frames if not frame.boxes)
    return {
        "images": len(frames),
        "boxes": len(boxes),
        "occluded_boxes": sum(1 for box in boxes if box.occluded),
        "empty_frame_share": empty / len(frames) if frames else 0.0,
        "labels_original": dict(sorted(original.items())),
        "labels_mapped": {name: mapped.get(name, 0) for name in class_names},
        "median_width_px": float(np.median(widths)) if boxes else None,
        "median_height_px": float(np.median(heights)) if boxes else None,
        "width_histogram": size_histogram(widths),
        "height_histogram": size_histogram(heights),
        "sequences": len({frame.sequence for frame in frames if frame.sequence is not None}),
    }


def dataset_stats(
    splits: Mapping[str, Sequence[Frame]], class_names: Sequence[str], reports: Mapping[str, RepairReport]
) -> dict[str, Any]:
    """Return per-split statistics plus the repair report of each annotation file."""
    return {
        "class_names": list(class_names),
        "splits": {name: split_stats(frames, class_names) for name, frames in splits.items()},
        "repairs": {source: report.as_dict() for source, report in reports.items()},
    }


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Return one tick label per histogram bin, e.g. "4-6", and ">=128" for the last bin."""
    labels = [f"{low:g}-{high:g}" for low, high in zip(edges[:-2], edges[1:-1])]
    return labels + [f">={edges[-2]:g}"]


def plot_box_sizes(stats: Mapping[str, Any], path: Path | str) -> None:
    """Plot the box width and height histograms of every split into a PNG at `path`.

    Bins are drawn at equal widths, labelled with their pixel range, and
    each split's counts are shown as a share of its boxes, so splits of
    different sizes compare directly. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from blindspots.runinfo import atomic_path

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for axis, dimension in zip(axes, ("width", "height")):
        edges: Sequence[float] = SIZE_BIN_EDGES_PX
        for split, values in stats["splits"].items():
            histogram = values[f"{dimension}_histogram"]
            counts = np.asarray(histogram["counts"], dtype=np.float64)
            edges = histogram["edges_px"]
            if counts.sum() == 0:
                continue
            share = 100.0 * counts / counts.sum()
            axis.stairs(share, np.arange(len(counts) + 1), label=f"{split} ({int(counts.sum())} boxes)")
        axis.set_xticks(np.arange(len(edges) - 1) + 0.5, bin_labels(edges), rotation=45, ha="right")
        axis.set_xlabel(f"box {dimension} (px, original resolution)")
        axis.set_title(f"Box {dimension}")
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of the split's boxes (%)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(title="split")
    figure.suptitle("Traffic-light box sizes per split")
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=120)
    plt.close(figure)


def boxes_in_model_pixels(frames: Sequence[Frame], input_size: Sequence[int]) -> np.ndarray:
    """Return every box as [N, 4] `[ymin, xmin, ymax, xmax]` in pixels of a model input of `input_size` (H, W).

    Each image is resized to the model input without keeping its aspect
    ratio, so each axis scales by its own factor.
    """
    height, width = float(input_size[0]), float(input_size[1])
    rows = [
        (
            box.ymin / frame.height * height,
            box.xmin / frame.width * width,
            box.ymax / frame.height * height,
            box.xmax / frame.width * width,
        )
        for frame in frames
        for box in frame.boxes
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


# The reference SSD config matches anchors at IoU 0.5.
REFERENCE_MATCH_IOU = 0.5


def anchor_coverage_by_split(splits: Mapping[str, Sequence[Frame]], model_cfg: Any) -> dict[str, Any]:
    """Return, per split, the share of boxes that some anchor of `model_cfg` matches.

    Boxes are scaled to `model_cfg.input_size`, and a box counts as matched
    at IoU >= `model_cfg.match_iou`, the training matcher's threshold. The
    share at the reference matcher's IoU 0.5 is reported as well, under
    `covered_share_by_iou`. A split without boxes gets `{"boxes": 0}`
    because a share of zero boxes is undefined.
    """
    from blindspots.modeling.anchors import anchor_coverage

    input_size = (int(model_cfg.input_size[0]), int(model_cfg.input_size[1]))
    coverage: dict[str, Any] = {"input_size": list(input_size), "splits": {}}
    for split, frames in splits.items():
        boxes = boxes_in_model_pixels(frames, input_size)
        if len(boxes) == 0:
            coverage["splits"][split] = {"boxes": 0}
            continue
        coverage["splits"][split] = anchor_coverage(
            boxes, input_size, model_cfg, iou_threshold=float(model_cfg.match_iou), extra_thresholds=(REFERENCE_MATCH_IOU,)
        )
        shares = ", ".join(
            f"{100.0 * share:.1f}% at IoU >= {threshold}"
            for threshold, share in coverage["splits"][split]["covered_share_by_iou"].items()
        )
        logger.info("anchor coverage of %s (%d boxes): %s", split, len(boxes), shares)
    return coverage
