"""SSD multiple-grid anchors, built from Model Garden's single-level generator.

Layer i of m has scale s_i = min + (max - min) * i / (m - 1). Each layer
gets one anchor per aspect ratio at s_i, plus a square anchor at
sqrt(s_i * s_{i+1}) (s_m = 1), as in Liu et al. 2016, "SSD: Single Shot
MultiBox Detector". The lowest layer keeps 3 anchors at s_0, with the
ratios of `anchors.lowest_layer_ratios` (1, 2 and 0.5 in the reference). Scales are relative to the shorter image side, and aspect ratios
are width / height, as in Model Garden's generator.

Anchors are `[ymin, xmin, ymax, xmax]` in pixels of the model input, in
the order the SSD head emits its predictions: feature map by feature map,
then row, column and anchor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from blindspots.modeling import geometry


@dataclass(frozen=True)
class AnchorSpec:
    """(scale, aspect ratio) pairs of one feature map, in emission order."""

    stride: int
    boxes: tuple[tuple[float, float], ...]

    @property
    def num_anchors(self) -> int:
        return len(self.boxes)


def layer_scales(min_scale: float, max_scale: float, num_layers: int) -> list[float]:
    """Return the linearly spaced scales s_0 .. s_{m-1}."""
    if num_layers == 1:
        return [min_scale]
    return [min_scale + (max_scale - min_scale) * i / (num_layers - 1) for i in range(num_layers)]


def anchor_specs(anchor_cfg: Any) -> list[AnchorSpec]:
    """Expand the anchor config into per-layer (scale, ratio) lists."""
    num_layers = int(anchor_cfg.num_layers)
    scales = layer_scales(float(anchor_cfg.min_scale), float(anchor_cfg.max_scale), num_layers) + [1.0]
    ratios = [float(r) for r in anchor_cfg.aspect_ratios] + [float(r) for r in anchor_cfg.extra_aspect_ratios]
    strides = [16 * 2**i for i in range(num_layers)]
    specs = []
    for index in range(num_layers):
        scale = scales[index]
        if index == 0 and anchor_cfg.reduce_boxes_in_lowest_layer:
            boxes = tuple((scale, float(ratio)) for ratio in anchor_cfg.lowest_layer_ratios)
        else:
            between = math.sqrt(scale * scales[index + 1])
            boxes = tuple((scale, ratio) for ratio in ratios) + ((between, 1.0),)
        specs.append(AnchorSpec(strides[index], boxes))
    return specs


def _grid_anchors(
    image_size: tuple[int, int], feature_size: tuple[int, int], spec: AnchorSpec
) -> np.ndarray:
    """Return [fh * fw * k, 4] anchors of one feature map, in pixels."""
    import tensorflow as tf
    from official.vision.ops.anchor_generator import _SingleAnchorGenerator

    height, width = image_size
    base = float(min(height, width))
    per_box = []
    for scale, ratio in spec.boxes:
        # Model Garden's generator places centres at (i + 0.5) * stride for
        # ceil(size / stride) positions, which equals the feature-map size
        # under SAME-sized padding. `valid` maps are smaller, so their grid
        # is cropped to the map (centres stay on the stride-s lattice).
        generator = _SingleAnchorGenerator(base * scale, [1.0], [ratio], spec.stride)
        grid = generator(tf.constant([height, width]))
        grid = grid[: feature_size[0], : feature_size[1], :]
        per_box.append(np.asarray(grid).reshape(grid.shape[0], grid.shape[1], 1, 4))
    anchors = np.concatenate(per_box, axis=2)
    return anchors.reshape(-1, 4)


def generate_anchors(image_size: tuple[int, int], model_cfg: Any) -> np.ndarray:
    """Return every anchor of the detector, [N, 4] pixels, as float32.

    Raises ValueError when a feature map is larger than the stride grid of
    the image, which only happens with an inconsistent config.
    """
    image_size = (int(image_size[0]), int(image_size[1]))
    feature_sizes = geometry.feature_map_sizes(image_size, model_cfg.padding, model_cfg.alignment)
    specs = anchor_specs(model_cfg.anchors)
    parts = []
    for spec, feature_size in zip(specs, feature_sizes):
        grid_size = (math.ceil(image_size[0] / spec.stride), math.ceil(image_size[1] / spec.stride))
        if feature_size[0] > grid_size[0] or feature_size[1] > grid_size[1]:
            raise ValueError(f"feature map {feature_size} exceeds the stride-{spec.stride} anchor grid {grid_size}")
        parts.append(_grid_anchors(image_size, feature_size, spec))
    return np.concatenate(parts, axis=0).astype(np.float32)


def anchors_per_location(model_cfg: Any) -> list[int]:
    return [spec.num_anchors for spec in anchor_specs(model_cfg.anchors)]


def iou_matrix(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Return IoU [num_boxes, num_anchors] of two `[ymin, xmin, ymax, xmax]` sets."""
    boxes = boxes[:, np.newaxis, :]
    anchors = anchors[np.newaxis, :, :]
    height = np.clip(np.minimum(boxes[..., 2], anchors[..., 2]) - np.maximum(boxes[..., 0], anchors[..., 0]), 0, None)
    width = np.clip(np.minimum(boxes[..., 3], anchors[..., 3]) - np.maximum(boxes[..., 1], anchors[..., 1]), 0, None)
    inter = height * width
    area_boxes = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area_anchors = (anchors[..., 2] - anchors[..., 0]) * (anchors[..., 3] - anchors[..., 1])
    return inter / np.maximum(area_boxes + area_anchors - inter, 1e-12)


def anchor_coverage(
    boxes_px: np.ndarray,
    image_size: Sequence[int],
    model_cfg: Any,
    iou_threshold: float = 0.5,
    chunk: int = 512,
    extra_thresholds: Sequence[float] = (),
) -> dict[str, Any]:
    """Return the share of ground-truth boxes that some anchor matches at IoU >= threshold.

    `boxes_px` is [N, 4] `[ymin, xmin, ymax, xmax]` in pixels of the model
    input. Also reports the distribution of each box's best IoU, since a
    box below the threshold is only matched by the forced best-anchor rule,
    and `covered_share_by_iou`: the share at `iou_threshold` and at each of
    `extra_thresholds`, keyed by the threshold written with `:g`.
    """
    anchors = generate_anchors((int(image_size[0]), int(image_size[1])), model_cfg)
    boxes_px = np.asarray(boxes_px, dtype=np.float64).reshape(-1, 4)
    best = np.zeros(len(boxes_px))
    for start in range(0, len(boxes_px), chunk):
        best[start : start + chunk] = iou_matrix(boxes_px[start : start + chunk], anchors).max(axis=1)
    thresholds = [float(iou_threshold)] + [float(t) for t in extra_thresholds if float(t) != float(iou_threshold)]
    by_iou = {f"{t:g}": float(np.mean(best >= t)) if len(best) else float("nan") for t in thresholds}
    covered = by_iou[f"{float(iou_threshold):g}"]
    quantiles = np.quantile(best, [0.1, 0.5, 0.9]).tolist() if len(best) else [float("nan")] * 3
    return {
        "iou_threshold": iou_threshold,
        "boxes": int(len(best)),
        "anchors": int(len(anchors)),
        "covered_share": covered,
        "covered_share_by_iou": by_iou,
        "best_iou_p10": quantiles[0],
        "best_iou_median": quantiles[1],
        "best_iou_p90": quantiles[2],
        "min_scale": float(model_cfg.anchors.min_scale),
        "max_scale": float(model_cfg.anchors.max_scale),
    }
