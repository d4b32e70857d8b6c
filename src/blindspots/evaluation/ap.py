"""Average precision of box detections: per-class AP, mAP, weighted mAP, and recall and AP by box width.

Inputs are one `GroundTruth` and at most one `Detections` per frame, paired by
`key`. Boxes are `[ymin, xmin, ymax, xmax]` in pixels of the original image,
and class ids are 0-based indices into the `class_names` list.

Matching (per frame and class, greedy in descending score order): a detection
takes the unmatched ground-truth box with the highest IoU >= `iou_threshold`.
A later detection on an already matched box is a false positive (duplicate).
Detections with equal scores keep their input order: frames in the order of
the `ground_truth` sequence, then detections in their order within the frame.
This is the matching of `COCOeval.evaluateImg` in pycocotools 2.0.10. When
two boxes have the same IoU with a detection, the first box in input order
wins, where COCOeval takes the last. Random float boxes make such ties
vanishingly rare.

NOTE: the BSTLD reference evaluation (TF Object Detection API,
`ObjectDetectionEvaluation`) takes the highest-IoU box among all boxes of the
class, matched or not, and counts a detection whose best box is already taken
as a false positive. The two rules differ only when a detection overlaps two
boxes of its class by >= `iou_threshold`, which requires those two boxes to
overlap each other heavily.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

INTERPOLATIONS = ("voc", "coco")
# The 101 recall thresholds of pycocotools' COCOeval (Params.recThrs).
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
# Box-width bucket edges in pixels at the original resolution. Each edge
# doubles the last, so every bucket but the open-ended last one spans one octave.
DEFAULT_WIDTH_EDGES = (4.0, 8.0, 16.0)


# ---------------------------------------------------------------------------
# Input containers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth boxes of one frame.

    `boxes` is float64 [N, 4], `[ymin, xmin, ymax, xmax]` in pixels of the
    original image, and `classes` is int64 [N] of 0-based class ids. A frame
    with N = 0 is an empty frame. Lists and arrays are accepted and converted.
    """

    key: str
    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        boxes = _as_boxes(self.boxes, self.key, "ground truth")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", _as_class_ids(self.classes, len(boxes), self.key, "ground truth"))


@dataclass(frozen=True)
class Detections:
    """Detections of one frame.

    `boxes` is float64 [M, 4], `[ymin, xmin, ymax, xmax]` in pixels of the
    original image (the frame of `GroundTruth`), `classes` is int64 [M] of
    0-based class ids and `scores` is float64 [M]. Lists and arrays are
    accepted and converted.
    """

    key: str
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = _as_boxes(self.boxes, self.key, "detection")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", _as_class_ids(self.classes, len(boxes), self.key, "detection"))
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"frame {self.key!r}: {len(scores)} detection scores for {len(boxes)} boxes. Pass one score per box.")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"frame {self.key!r}: detection scores contain NaN or infinity")
        object.__setattr__(self, "scores", scores)


def _as_boxes(boxes: Any, key: str, kind: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"frame {key!r}: {kind} boxes have shape {array.shape}, but [N, 4] as [ymin, xmin, ymax, xmax] is expected.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"frame {key!r}: {kind} boxes contain NaN or infinity")
    reversed_rows = np.flatnonzero((array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1]))
    if len(reversed_rows):
        row = int(reversed_rows[0])
        raise ValueError(
            f"frame {key!r}: {kind} box {row} is {array[row].tolist()}, with ymax < ymin or xmax < xmin. "
            "Boxes must be [ymin, xmin, ymax, xmax]."
        )
    return array


def _as_class_ids(classes: Any, count: int, key: str, kind: str) -> np.ndarray:
    array = np.asarray(classes).reshape(-1)
    if len(array) != count:
        raise ValueError(f"frame {key!r}: {len(array)} {kind} class ids for {count} boxes. Pass one class id per box.")
    if len(array) and not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValueError(f"frame {key!r}: {kind} class ids {array.tolist()} are not integers")
    return array.astype(np.int64)


# ---------------------------------------------------------------------------
# Frame selection
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationFrame:
    """One frame's ground truth and detections, ready to match."""

    key: str
    ground_truth: GroundTruth
    detections: Detections


def pair_frames(
    ground_truth: Sequence[GroundTruth],
    detections: Iterable[Detections],
    num_classes: int,
    count_empty_frames: bool = False,
) -> tuple[list[EvaluationFrame], int]:
    """Pair detections with ground truth by key and drop empty frames unless counted.

    Every frame to evaluate needs a `GroundTruth` entry (with zero boxes for an
    empty frame). A frame without a `Detections` entry has no detections.
    Frames without ground truth are skipped, detections included, unless
    `count_empty_frames` is true. The BSTLD reference evaluation skips them.
    Returns the frames in `ground_truth` order and the number skipped.

    Raises ValueError on a duplicate key, on detections for a key without
    ground truth, or on a class id outside [0, num_classes).
    """
    truth_by_key: dict[str, GroundTruth] = {}
    for truth in ground_truth:
        if truth.key in truth_by_key:
            raise ValueError(f"frame {truth.key!r} has two ground-truth entries, but keys must be unique.")
        _check_class_range(truth.classes, num_classes, truth.key, "ground truth")
        truth_by_key[truth.key] = truth

    detections_by_key: dict[str, Detections] = {}
    for found in detections:
        if found.key in detections_by_key:
            raise ValueError(f"frame {found.key!r} has two detection entries, but keys must be unique.")
        if found.key not in truth_by_key:
            raise ValueError(
                f"detections for frame {found.key!r} have no ground-truth entry. "
                "Pass a GroundTruth (with zero boxes if the frame is empty) for every evaluated frame."
            )
        _check_class_range(found.classes, num_classes, found.key, "detection")
        detections_by_key[found.key] = found

    frames = []
    skipped = 0
    for key, truth in truth_by_key.items():
        if len(truth.boxes) == 0 and not count_empty_frames:
            skipped += 1
            continue
        found = detections_by_key.get(key)
        if found is None:
            found = Detections(key, np.zeros((0, 4)), np.zeros(0), np.zeros(0))
        frames.append(EvaluationFrame(key, truth, found))
    return frames, skipped


def _check_class_range(classes: np.ndarray, num_classes: int, key: str, kind: str) -> None:
    outside = classes[(classes < 0) | (classes >= num_classes)]
    if len(outside):
        raise ValueError(
            f"frame {key!r}: {kind} class id {int(outside[0])} is outside [0, {num_classes}). "
            "Class ids must index the class_names list."
        )


# ---------------------------------------------------------------------------
# IoU and matching
# ---------------------------------------------------------------------------


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Compute the IoU matrix [A, B] of two box sets.

    Boxes are `[ymin, xmin, ymax, xmax]` in pixels with continuous extents:
    the width is `xmax - xmin`, without the +1 of some VOC tools, as in
    pycocotools. Two boxes of zero area have IoU 0.
    """
    boxes_a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    top = np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    left = np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    bottom = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    right = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    intersection = np.clip(bottom - top, 0.0, None) * np.clip(right - left, 0.0, None)

    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def match_detections(
    gt_boxes: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    iou_threshold: float,
    gt_ignore: np.ndarray | None = None,
) -> np.ndarray:
    """Match one frame's detections of one class to its ground truth, greedily by score.

    Boxes are `[ymin, xmin, ymax, xmax]` in pixels. `gt_boxes` is [N, 4],
    `det_boxes` [M, 4] and `det_scores` [M]. Detections are visited in
    descending score order, equal scores in input order. Each takes the
    unmatched box with the highest IoU >= `iou_threshold`, preferring boxes
    that are not ignored (bool [N] `gt_ignore`) and falling back to ignored
    ones, as COCOeval does with out-of-range boxes.

    Returns int64 [M] in input order: the index of the matched box, or -1.
    """
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return np.full(len(det_boxes), -1, dtype=np.int64)
    iou = box_iou(det_boxes, gt_boxes)
    order = np.argsort(-np.asarray(det_scores, dtype=np.float64), kind="stable")
    ignore = np.zeros(len(gt_boxes), dtype=bool) if gt_ignore is None else np.asarray(gt_ignore, dtype=bool)
    return _greedy_match(iou, iou_threshold, order, ignore)


def _greedy_match(iou: np.ndarray, iou_threshold: float, order: np.ndarray, gt_ignore: np.ndarray) -> np.ndarray:
    """Run the greedy matching of `match_detections` on a precomputed IoU matrix [M, N]."""
    matched = np.full(iou.shape[0], -1, dtype=np.int64)
    overlaps = iou >= iou_threshold
    box_matched = np.zeros(iou.shape[1], dtype=bool)

    # Detections that overlap no box by the threshold cannot match, so the loop skips them.
    for det in order[overlaps[order].any(axis=1)]:
        candidates = overlaps[det] & ~box_matched
        if not candidates.any():
            continue
        preferred = candidates & ~gt_ignore
        pool = np.flatnonzero(preferred if preferred.any() else candidates)
        best = int(pool[np.argmax(iou[det, pool])])
        matched[det] = best
        box_matched[best] = True
    return matched


# ---------------------------------------------------------------------------
# Precision, recall and AP
# ---------------------------------------------------------------------------


@dataclass
class PrecisionRecallCurve:
    """Precision-recall points of one class, one per detection in descending score order.

    Point i counts the first i + 1 detections in descending score order (equal
    scores in input order), and `thresholds[i]` is the score of the last one.
    The three arrays are float64 [D], and `recall` is NaN throughout when
    `num_ground_truth` is 0.
    """

    recall: np.ndarray
    precision: np.ndarray
    thresholds: np.ndarray
    num_ground_truth: int


def precision_recall_curve(scores: np.ndarray, is_true_positive: np.ndarray, num_ground_truth: int) -> PrecisionRecallCurve:
    """Compute cumulative precision and recall over detections sorted by descending score.

    `scores` and `is_true_positive` are [D], in input order, and equal scores
    keep that order. Every detection given counts, so drop ignored detections
    first. Recall is NaN when `num_ground_truth` is 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(np.asarray(is_true_positive, dtype=bool)[order]).astype(np.float64)
    false_positives = np.cumsum(~np.asarray(is_true_positive, dtype=bool)[order]).astype(np.float64)

    if num_ground_truth > 0:
        recall = true_positives / num_ground_truth
    else:
        recall = np.full(len(scores), np.nan)
    precision = true_positives / np.maximum(true_positives + false_positives, 1.0)
    return PrecisionRecallCurve(recall=recall, precision=precision, thresholds=scores[order], num_ground_truth=int(num_ground_truth))


def average_precision(curve: PrecisionRecallCurve, interpolation: str = "voc") -> float:
    """Compute AP as the area under the monotone precision envelope of a curve.

    `voc`: all-point interpolation (Pascal VOC 2010 and later, and the TF
    Object Detection API used by the BSTLD tools), the sum over recall steps
    of the step times the maximum precision at that recall or higher.
    `coco`: the mean of that envelope sampled at the 101 recall thresholds
    0, 0.01, ..., 1 with `searchsorted(side='left')`, 0 beyond the last recall
    reached, as pycocotools' COCOeval.accumulate computes it.

    Returns NaN when the class has no ground truth, and 0 when it has ground
    truth but no detections.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r} is invalid. Use one of {', '.join(INTERPOLATIONS)}.")
    if curve.num_ground_truth == 0:
        return math.nan
    if len(curve.recall) == 0:
        return 0.0

    # Precision envelope: at each point, the best precision at this recall or beyond.
    envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
    if interpolation == "voc":
        recall_steps = np.diff(curve.recall, prepend=0.0)
        return float(np.sum(recall_steps * envelope))

    indices = np.searchsorted(curve.recall, COCO_RECALL_THRESHOLDS, side="left")
    sampled = np.zeros(len(COCO_RECALL_THRESHOLDS))
    reached = indices < len(envelope)
    sampled[reached] = envelope[indices[reached]]
    return float(np.mean(sampled))


# ---------------------------------------------------------------------------
# Matching all frames, once per width range
# ---------------------------------------------------------------------------


@dataclass
class _MatchOutcome:
    """Per-detection and per-box results of matching all frames, concatenated in input order."""

    det_classes: np.ndarray
    det_scores: np.ndarray
    det_true_positive: np.ndarray
    det_ignored: np.ndarray
    gt_classes: np.ndarray
    gt_ignored: np.ndarray
    # Score of the detection that matched each box, NaN when unmatched.
    gt_match_scores: np.ndarray


@dataclass
class _OutcomeParts:
    """Per-frame pieces of one `_MatchOutcome`, collected frame by frame."""

    det_true_positive: list[np.ndarray] = field(default_factory=list)
    det_ignored: list[np.ndarray] = field(default_factory=list)
    gt_ignored: list[np.ndarray] = field(default_factory=list)
    gt_match_scores: list[np.ndarray] = field(default_factory=list)


def _match_frames(
    frames: Sequence[EvaluationFrame],
    iou_threshold: float,
    width_ranges: Sequence[tuple[float, float] | None],
) -> list[_MatchOutcome]:
    """Match every frame class by class, once per box-width range.

    A range `None` matches all boxes. A range `(low, high)` ignores, in the
    style of COCO area ranges, three things: boxes whose width is outside
    [low, high), detections matched to an ignored box, and unmatched
    detections whose own width is outside the range. An ignored detection is
    neither a true nor a false positive. IoU is computed once per frame and
    class and reused across ranges. Returns one outcome per range, in order.
    """
    parts = [_OutcomeParts() for _ in width_ranges]
    for frame in frames:
        truth, found = frame.ground_truth, frame.detections
        class_groups = _overlapping_class_groups(frame, iou_threshold)

        for width_range, part in zip(width_ranges, parts):
            box_ignore = _outside_width(truth.boxes, width_range)
            matched = np.full(len(found.boxes), -1, dtype=np.int64)
            for gt_index, det_index, iou, order in class_groups:
                local = _greedy_match(iou, iou_threshold, order, box_ignore[gt_index])
                hit = local >= 0
                matched[det_index[hit]] = gt_index[local[hit]]

            hit = matched >= 0
            match_scores = np.full(len(truth.boxes), np.nan)
            match_scores[matched[hit]] = found.scores[hit]
            matched_ignored = np.zeros(len(found.boxes), dtype=bool)
            matched_ignored[hit] = box_ignore[matched[hit]]

            part.det_true_positive.append(hit & ~matched_ignored)
            part.det_ignored.append(matched_ignored | (~hit & _outside_width(found.boxes, width_range)))
            part.gt_ignored.append(box_ignore)
            part.gt_match_scores.append(match_scores)

    det_classes = _concatenate([frame.detections.classes for frame in frames], np.int64)
    det_scores = _concatenate([frame.detections.scores for frame in frames], np.float64)
    gt_classes = _concatenate([frame.ground_truth.classes for frame in frames], np.int64)
    return [
        _MatchOutcome(
            det_classes=det_classes,
            det_scores=det_scores,
            det_true_positive=_concatenate(part.det_true_positive, bool),
            det_ignored=_concatenate(part.det_ignored, bool),
            gt_classes=gt_classes,
            gt_ignored=_concatenate(part.gt_ignored, bool),
            gt_match_scores=_concatenate(part.gt_match_scores, np.float64),
        )
        for part in parts
    ]


def _overlapping_class_groups(frame: EvaluationFrame, iou_threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Return (box indices, detection indices, IoU [M, N], score order) per class with a possible match."""
    truth, found = frame.ground_truth, frame.detections
    groups = []
    for class_id in np.intersect1d(truth.classes, found.classes):
        gt_index = np.flatnonzero(truth.classes == class_id)
        det_index = np.flatnonzero(found.classes == class_id)
        iou = box_iou(found.boxes[det_index], truth.boxes[gt_index])
        if not np.any(iou >= iou_threshold):
            continue
        order = np.argsort(-found.scores[det_index], kind="stable")
        groups.append((gt_index, det_index, iou, order))
    return groups


def _outside_width(boxes: np.ndarray, width_range: tuple[float, float] | None) -> np.ndarray:
    if width_range is None:
        return np.zeros(len(boxes), dtype=bool)
    widths = boxes[:, 3] - boxes[:, 1]
    return (widths < width_range[0]) | (widths >= width_range[1])


def _concatenate(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def _curve_for(outcome: _MatchOutcome, class_ids: Sequence[int]) -> PrecisionRecallCurve:
    """Build the precision-recall curve of the given classes' detections pooled together."""
    det_mask = ~outcome.det_ignored & np.isin(outcome.det_classes, class_ids)
    gt_mask = ~outcome.gt_ignored & np.isin(outcome.gt_classes, class_ids)
    return precision_recall_curve(outcome.det_scores[det_mask], outcome.det_true_positive[det_mask], int(gt_mask.sum()))


def _per_class_ap(outcome: _MatchOutcome, class_names: Sequence[str], interpolation: str) -> tuple[dict[str, float], float, float]:
    """Return per-class AP, their mean over defined classes, and the pooled (weighted) AP.

    The pool leaves out classes without ground truth, whose detections
    would all be false positives, as the TF Object Detection API's weighted
    mean AP does.
    """
    per_class = {name: average_precision(_curve_for(outcome, [class_id]), interpolation) for class_id, name in enumerate(class_names)}
    defined_ids = [class_id for class_id, name in enumerate(class_names) if not math.isnan(per_class[name])]
    if not defined_ids:
        return per_class, math.nan, math.nan
    mean_ap = float(np.mean([per_class[class_names[class_id]] for class_id in defined_ids]))
    weighted_ap = average_precision(_curve_for(outcome, defined_ids), interpolation)
    return per_class, mean_ap, weighted_ap


def _recall_at(match_scores: np.ndarray, score_threshold: float) -> float:
    if len(match_scores) == 0:
        return math.nan
    return float(np.count_nonzero(match_scores >= score_threshold) / len(match_scores))


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass
class WidthBucketMetrics:
    """Recall and AP for ground-truth boxes with width in [min_width, max_width) pixels."""

    label: str
    min_width: float
    max_width: float
    num_ground_truth: int
    # Boxes matched by a detection scored >= the score threshold.
    num_matched: int
    recall: float
    ap: dict[str, float]
    mean_ap: float
    weighted_mean_ap: float


@dataclass
class DetectionMetrics:
    """Detection accuracy on one evaluation set.

    AP is NaN for a class without ground truth and excluded from `mean_ap`.
    `weighted_mean_ap` is one AP over the detections of all classes with
    ground truth, pooled (matching stays class-aware), against their total
    ground-truth count, so classes weigh by their number of boxes. `recall`
    counts matches by detections scored >= `score_threshold`. `curves`
    contains per-class precision-recall points, which `to_dict()` leaves out
    and `curve_rows` flattens for plots. Counts cover the evaluated frames.
    """

    iou_threshold: float
    interpolation: str
    count_empty_frames: bool
    score_threshold: float
    # Frames evaluated, after empty frames were skipped or kept.
    num_frames: int
    num_empty_frames_skipped: int
    num_ground_truth: dict[str, int]
    num_detections: dict[str, int]
    ap: dict[str, float]
    mean_ap: float
    weighted_mean_ap: float
    recall: dict[str, float]
    width_buckets: list[WidthBucketMetrics]
    curves: dict[str, PrecisionRecallCurve] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics as JSON-ready Python types without the curves.

        NaN (undefined AP or recall) and the infinite `max_width` of the last
        width bucket become None, because strict JSON has neither.
        """
        data = {item.name: getattr(self, item.name) for item in fields(self) if item.name != "curves"}
        data["width_buckets"] = [asdict(bucket) for bucket in self.width_buckets]
        return _non_finite_to_none(data)


def _non_finite_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _non_finite_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_non_finite_to_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def width_bucket_ranges(edges: Sequence[float]) -> list[tuple[str, float, float]]:
    """Turn increasing edges, e.g. [4, 8, 16], into labelled [low, high) ranges in pixels.

    Returns `[("<4", 0, 4), ("4-8", 4, 8), ("8-16", 8, 16), (">=16", 16, inf)]`.
    """
    edges = [float(edge) for edge in edges]
    if any(edge <= 0 for edge in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"width bucket edges {edges} are invalid. Give positive pixel widths in strictly increasing order.")
    if not edges:
        return [("all", 0.0, math.inf)]
    ranges = [(f"<{edges[0]:g}", 0.0, edges[0])]
    ranges += [(f"{low:g}-{high:g}", low, high) for low, high in zip(edges, edges[1:])]
    ranges.append((f">={edges[-1]:g}", edges[-1], math.inf))
    return ranges


def evaluate_detections(
    ground_truth: Sequence[GroundTruth],
    detections: Iterable[Detections],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    interpolation: str = "voc",
    count_empty_frames: bool = False,
    width_edges: Sequence[float] = DEFAULT_WIDTH_EDGES,
    score_threshold: float = 0.0,
) -> DetectionMetrics:
    """Match detections to ground truth and compute AP, mAP, weighted mAP and width-bucket metrics.

    Boxes are `[ymin, xmin, ymax, xmax]` in pixels of the original image, and
    bucket widths are `xmax - xmin` in those pixels, each bucket [low, high).
    Per bucket, AP ignores boxes outside the bucket (see `_match_frames`),
    while recall is the share of the bucket's boxes, all classes together,
    matched by a detection scored >= `score_threshold` under the unrestricted
    matching. `score_threshold` affects recall only, and AP uses every
    detection.

    A model that predicts nothing gets AP 0 for every class with ground truth.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r} is invalid. Use one of {', '.join(INTERPOLATIONS)}.")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold {iou_threshold} is invalid. Use a value in (0, 1].")
    class_names = list(class_names)
    bucket_ranges = width_bucket_ranges(width_edges)

    frames, skipped = pair_frames(ground_truth, detections, len(class_names), count_empty_frames)
    logger.debug("evaluating %d frames, %d empty frames skipped", len(frames), skipped)

    outcome, *bucket_outcomes = _match_frames(frames, iou_threshold, [None] + [(low, high) for _, low, high in bucket_ranges])
    per_class, mean_ap, weighted_ap = _per_class_ap(outcome, class_names, interpolation)
    curves = {name: _curve_for(outcome, [class_id]) for class_id, name in enumerate(class_names)}
    recall = {
        name: _recall_at(outcome.gt_match_scores[outcome.gt_classes == class_id], score_threshold)
        for class_id, name in enumerate(class_names)
    }

    gt_widths = _concatenate([frame.ground_truth.boxes[:, 3] - frame.ground_truth.boxes[:, 1] for frame in frames], np.float64)
    buckets = []
    for (label, low, high), bucket_outcome in zip(bucket_ranges, bucket_outcomes):
        in_bucket = (gt_widths >= low) & (gt_widths < high)
        bucket_ap, bucket_mean, bucket_weighted = _per_class_ap(bucket_outcome, class_names, interpolation)
        bucket_scores = outcome.gt_match_scores[in_bucket]
        buckets.append(
            WidthBucketMetrics(
                label=label,
                min_width=low,
                max_width=high,
                num_ground_truth=int(in_bucket.sum()),
                num_matched=int(np.count_nonzero(bucket_scores >= score_threshold)),
                recall=_recall_at(bucket_scores, score_threshold),
                ap=bucket_ap,
                mean_ap=bucket_mean,
                weighted_mean_ap=bucket_weighted,
            )
        )

    return DetectionMetrics(
        iou_threshold=float(iou_threshold),
        interpolation=interpolation,
        count_empty_frames=bool(count_empty_frames),
        score_threshold=float(score_threshold),
        num_frames=len(frames),
        num_empty_frames_skipped=skipped,
        num_ground_truth={name: int(np.count_nonzero(outcome.gt_classes == class_id)) for class_id, name in enumerate(class_names)},
        num_detections={name: int(np.count_nonzero(outcome.det_classes == class_id)) for class_id, name in enumerate(class_names)},
        ap=per_class,
        mean_ap=mean_ap,
        weighted_mean_ap=weighted_ap,
        recall=recall,
        width_buckets=buckets,
        curves=curves,
    )


def curve_rows(curves: dict[str, PrecisionRecallCurve], max_points_per_class: int | None = None) -> list[dict[str, Any]]:
    """Flatten per-class curves into rows `{class, recall, precision, threshold}` for DVC plots.

    With `max_points_per_class`, each class keeps at most that many points,
    evenly spaced in detection rank, always including the first and the last.
    Classes without ground truth give no rows.
    """
    if max_points_per_class is not None and max_points_per_class < 2:
        raise ValueError(f"max_points_per_class is {max_points_per_class}, but at least 2 points are needed. Pass 2 or more, or None.")
    rows = []
    for name, curve in curves.items():
        count = len(curve.recall)
        if count == 0 or curve.num_ground_truth == 0:
            continue
        indices = np.arange(count)
        if max_points_per_class is not None and count > max_points_per_class:
            indices = np.unique(np.linspace(0, count - 1, max_points_per_class).round().astype(np.int64))
        for index in indices:
            rows.append(
                {
                    "class": name,
                    "recall": float(curve.recall[index]),
                    "precision": float(curve.precision[index]),
                    "threshold": float(curve.thresholds[index]),
                }
            )
    return rows
