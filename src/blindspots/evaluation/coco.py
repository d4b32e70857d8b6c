"""COCO detection metrics through pycocotools' COCOeval, built in memory.

Boxes arrive as `[ymin, xmin, ymax, xmax]` in pixels of the original image
and go to COCO as `[x, y, width, height]` in the same pixels. COCOeval's
settings apply unchanged: IoU thresholds 0.50:0.05:0.95, at most 100
detections per image and class (`maxDets`), and the area range 'all'
(0 to 1e10 px^2), which every box falls in. pycocotools' 'small', 'medium' and
'large' ranges split at 32^2 and 96^2 px^2. Nearly every BSTLD light is
'small', so these ranges are not reported here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from typing import Any, Iterable, Sequence

import numpy as np

from blindspots.evaluation.ap import Detections, EvaluationFrame, GroundTruth, pair_frames

logger = logging.getLogger(__name__)

# Indices into COCOeval.stats after summarize() for bounding boxes.
_STATS_INDEX = {"ap": 0, "ap50": 1, "ap75": 2, "ar100": 8}


def to_coco_box(boxes: np.ndarray) -> np.ndarray:
    """Convert [N, 4] `[ymin, xmin, ymax, xmax]` boxes to COCO `[x, y, width, height]`, both in pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], axis=1)


def build_coco_datasets(frames: Sequence[EvaluationFrame], class_names: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the COCO ground-truth and detection datasets of the given frames.

    Image ids are 1-based frame positions and category ids are class ids
    plus 1. Ground truth has `iscrowd` 0 and `area` = width * height, so no
    box is ignored. Detections carry the fields that `COCO.loadRes` would add
    for boxes, which lets an empty detection set load too.
    """
    images = [{"id": index + 1, "file_name": frame.key} for index, frame in enumerate(frames)]
    categories = [{"id": class_id + 1, "name": name} for class_id, name in enumerate(class_names)]

    truth_annotations: list[dict[str, Any]] = []
    detection_annotations: list[dict[str, Any]] = []
    for image_id, frame in enumerate(frames, start=1):
        truth_annotations += _annotations(frame.ground_truth.boxes, frame.ground_truth.classes, None, image_id, len(truth_annotations))
        found = frame.detections
        detection_annotations += _annotations(found.boxes, found.classes, found.scores, image_id, len(detection_annotations))

    truth = {"images": images, "categories": categories, "annotations": truth_annotations}
    detections = {"images": images, "categories": categories, "annotations": detection_annotations}
    return truth, detections


def _annotations(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray | None, image_id: int, first_id: int) -> list[dict[str, Any]]:
    annotations = []
    for index, (box, class_id) in enumerate(zip(to_coco_box(boxes), classes)):
        annotation = {
            "id": first_id + index + 1,
            "image_id": image_id,
            "category_id": int(class_id) + 1,
            "bbox": [float(value) for value in box],
            "area": float(box[2] * box[3]),
            "iscrowd": 0,
        }
        if scores is not None:
            annotation["score"] = float(scores[index])
        annotations.append(annotation)
    return annotations


def coco_metrics(
    ground_truth: Sequence[GroundTruth],
    detections: Iterable[Detections],
    class_names: Sequence[str],
    count_empty_frames: bool = False,
) -> dict[str, Any]:
    """Run COCOeval on boxes and return AP@[.5:.95], AP50, AP75, AR@100 and per-class AP50.

    Boxes are `[ymin, xmin, ymax, xmax]` in pixels of the original image.
    Frames are paired and empty frames skipped as in `ap.evaluate_detections`,
    so per-class AP50 here equals that function's AP with `coco`
    interpolation at IoU 0.5. Returns keys `ap`, `ap50`, `ap75`, `ar100` and
    `ap50_per_class` (class name -> AP50). A value COCOeval cannot define
    (no ground truth) is NaN. COCOeval's progress output goes to
    logger.debug.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    class_names = list(class_names)
    frames, skipped = pair_frames(ground_truth, detections, len(class_names), count_empty_frames)
    undefined = {key: math.nan for key in _STATS_INDEX}
    undefined["ap50_per_class"] = {name: math.nan for name in class_names}
    if not any(len(frame.ground_truth.boxes) for frame in frames):
        logger.warning("COCO metrics are undefined: no ground-truth boxes in %d frames", len(frames))
        return undefined

    truth_dataset, detection_dataset = build_coco_datasets(frames, class_names)
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        coco_truth = COCO()
        coco_truth.dataset = truth_dataset
        coco_truth.createIndex()
        coco_detections = COCO()
        coco_detections.dataset = detection_dataset
        coco_detections.createIndex()

        evaluation = COCOeval(coco_truth, coco_detections, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    logger.debug("COCOeval on %d frames (%d empty frames skipped):\n%s", len(frames), skipped, captured.getvalue())

    metrics: dict[str, Any] = {key: _defined(evaluation.stats[index]) for key, index in _STATS_INDEX.items()}
    metrics["ap50_per_class"] = _per_class_ap50(evaluation, class_names)
    return metrics


def _per_class_ap50(evaluation: Any, class_names: Sequence[str]) -> dict[str, float]:
    """Read per-class AP50 from COCOeval's precision array [T, R, K, A, M]."""
    params = evaluation.params
    iou_index = int(np.argmin(np.abs(params.iouThrs - 0.5)))
    area_index = params.areaRngLbl.index("all")
    max_dets_index = params.maxDets.index(100)
    per_class = {}
    for class_id, name in enumerate(class_names):
        category_index = params.catIds.index(class_id + 1)
        precision = evaluation.eval["precision"][iou_index, :, category_index, area_index, max_dets_index]
        # COCOeval fills -1 where a class has no ground truth.
        defined = precision[precision > -1]
        per_class[name] = float(np.mean(defined)) if len(defined) else math.nan
    return per_class


def _defined(value: float) -> float:
    # COCOeval.summarize reports -1 for a metric with no ground truth.
    return math.nan if value == -1 else float(value)
