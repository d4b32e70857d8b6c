"""Per-class AP, mAP, weighted mAP and width buckets on hand-computed cases.

Boxes are [ymin, xmin, ymax, xmax] in pixels. Unless a test states otherwise,
AP uses VOC all-point interpolation: the sum over recall steps of the step
times the best precision at that recall or beyond.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from blindspots.evaluation.ap import (
    Detections,
    GroundTruth,
    box_iou,
    curve_rows,
    evaluate_detections,
    match_detections,
    width_bucket_ranges,
)

CLASSES = ["Off", "Green", "Yellow", "Red"]
OFF, GREEN, YELLOW, RED = range(4)


def square(y: float, x: float, size: float = 10.0) -> list[float]:
    return [y, x, y + size, x + size]


A = square(0, 0)
B = square(0, 50)
C = square(50, 0)
# Far from every other box, so a detection here is a false positive.
FAR = square(500, 500)


def truth(key: str, boxes: list[list[float]], classes: list[int]) -> GroundTruth:
    return GroundTruth(key, np.array(boxes, dtype=float).reshape(-1, 4), classes)


def found(key: str, boxes: list[list[float]], classes: list[int], scores: list[float]) -> Detections:
    return Detections(key, np.array(boxes, dtype=float).reshape(-1, 4), classes, scores)


def test_box_iou_values() -> None:
    iou = box_iou(np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 0, 0]]), np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]]))
    assert iou[0, 0] == 1.0
    # Intersection 1 x 1, union 4 + 4 - 1 = 7.
    assert iou[1, 1] == pytest.approx(1 / 7)
    assert iou[0, 2] == 0.0
    # A zero-area box overlaps nothing.
    assert iou[2, 0] == 0.0


def test_iou_at_threshold_matches() -> None:
    # [0, 0, 10, 20] covers A (area 100) and has area 200: IoU = 100 / 200 = 0.5.
    matched = match_detections(np.array([A]), np.array([[0, 0, 10, 20]]), np.array([0.9]), iou_threshold=0.5)
    assert matched.tolist() == [0]


@pytest.mark.parametrize("interpolation", ["voc", "coco"])
def test_perfect_detections_ap_one(interpolation: str) -> None:
    ground_truth = [truth("a", [A, B], [GREEN, RED]), truth("b", [C], [GREEN])]
    detections = [found("a", [A, B], [GREEN, RED], [0.9, 0.8]), found("b", [C], [GREEN], [0.7])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES, interpolation=interpolation)

    assert metrics.ap["Green"] == pytest.approx(1.0)
    assert metrics.ap["Red"] == pytest.approx(1.0)
    assert math.isnan(metrics.ap["Off"])
    assert math.isnan(metrics.ap["Yellow"])
    assert metrics.mean_ap == pytest.approx(1.0)
    assert metrics.weighted_mean_ap == pytest.approx(1.0)
    assert metrics.recall["Green"] == 1.0


@pytest.mark.parametrize("interpolation", ["voc", "coco"])
def test_no_detections_ap_zero(interpolation: str) -> None:
    ground_truth = [truth("a", [A, B], [GREEN, RED]), truth("b", [C], [GREEN])]

    metrics = evaluate_detections(ground_truth, [], CLASSES, interpolation=interpolation)

    assert metrics.ap["Green"] == 0.0
    assert metrics.ap["Red"] == 0.0
    assert math.isnan(metrics.ap["Off"])
    assert metrics.mean_ap == 0.0
    assert metrics.weighted_mean_ap == 0.0
    assert metrics.recall["Red"] == 0.0


def test_score_ties_keep_input_order() -> None:
    # One Green box and two detections scored 0.9: a false positive and a hit.
    # False positive first: recall [0, 1], precision [0, 1/2] -> AP = 1 * 1/2.
    # Hit first: recall [1, 1], precision [1, 1/2] -> AP = 1 * 1.
    ground_truth = [truth("a", [A], [GREEN])]
    false_first = [found("a", [FAR, A], [GREEN, GREEN], [0.9, 0.9])]
    hit_first = [found("a", [A, FAR], [GREEN, GREEN], [0.9, 0.9])]

    assert evaluate_detections(ground_truth, false_first, CLASSES).ap["Green"] == pytest.approx(0.5)
    assert evaluate_detections(ground_truth, hit_first, CLASSES).ap["Green"] == pytest.approx(1.0)


def test_score_ties_follow_frame_order() -> None:
    # Frame "a" contains a Green false positive and frame "b" a Green hit, both
    # scored 0.9. The order of the ground-truth list decides which comes
    # first, giving AP 1/2 or 1 as in the test above. Frame "a" needs a box
    # (here Red) so that it is not skipped as empty.
    frame_a = truth("a", [C], [RED])
    frame_b = truth("b", [A], [GREEN])
    detections = [found("a", [FAR], [GREEN], [0.9]), found("b", [A], [GREEN], [0.9])]

    assert evaluate_detections([frame_a, frame_b], detections, CLASSES).ap["Green"] == pytest.approx(0.5)
    assert evaluate_detections([frame_b, frame_a], detections, CLASSES).ap["Green"] == pytest.approx(1.0)


def test_duplicate_detection_false_positive() -> None:
    # Two Green boxes. The 0.8 detection is shifted 1 px off A (IoU 90 / 110)
    # and arrives after A is taken, so it is a duplicate.
    # Recall [1/2, 1/2, 1], precision [1, 1/2, 2/3], envelope [1, 2/3, 2/3]:
    # AP = 1/2 * 1 + 0 * 2/3 + 1/2 * 2/3 = 5/6.
    ground_truth = [truth("a", [A, B], [GREEN, GREEN])]
    detections = [found("a", [A, [0, 1, 10, 11], B], [GREEN] * 3, [0.9, 0.8, 0.7])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES)

    assert metrics.ap["Green"] == pytest.approx(5 / 6)
    assert metrics.curves["Green"].precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3])


def test_match_skips_matched_box() -> None:
    # Box P = [0, 2, 10, 12] overlaps A by 80 / 120. Detection D = [0, 0.5, 10, 10.5]
    # has IoU 95 / 105 with A and 85 / 115 with P.
    boxes = np.array([A, [0, 2, 10, 12]])
    detection_d = [0, 0.5, 10, 10.5]

    # A exact hit (0.9) takes A first, so D (0.8) takes P, the best unmatched box.
    matched = match_detections(boxes, np.array([A, detection_d]), np.array([0.9, 0.8]), 0.5)
    assert matched.tolist() == [0, 1]

    # D first takes A (higher IoU), and the exact hit on A falls back to P (IoU 80 / 120).
    matched = match_detections(boxes, np.array([A, detection_d]), np.array([0.7, 0.8]), 0.5)
    assert matched.tolist() == [1, 0]


def test_match_tie_first_detection_wins() -> None:
    # Both detections score 0.9 and overlap A, so the first in input order takes it.
    matched = match_detections(np.array([A]), np.array([[0, 1, 10, 11], A]), np.array([0.9, 0.9]), 0.5)
    assert matched.tolist() == [0, -1]


def test_class_without_detections() -> None:
    # Green is found, Red is not: APs 1 and 0, mAP 1/2. Pooled: one hit over
    # two boxes, recall [1/2], precision [1] -> weighted AP 1/2.
    ground_truth = [truth("a", [A, B], [GREEN, RED])]
    detections = [found("a", [A], [GREEN], [0.9])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES)

    assert metrics.ap["Green"] == pytest.approx(1.0)
    assert metrics.ap["Red"] == 0.0
    assert metrics.mean_ap == pytest.approx(0.5)
    assert metrics.weighted_mean_ap == pytest.approx(0.5)


def test_class_without_ground_truth() -> None:
    # Off has a detection but no box: its AP is undefined and it leaves both
    # means, so its false positive does not lower the weighted AP either.
    ground_truth = [truth("a", [A], [GREEN])]
    detections = [found("a", [A, FAR], [GREEN, OFF], [0.9, 0.95])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES)

    assert math.isnan(metrics.ap["Off"])
    assert metrics.mean_ap == pytest.approx(1.0)
    assert metrics.weighted_mean_ap == pytest.approx(1.0)
    assert metrics.to_dict()["ap"]["Off"] is None


def test_weighted_map_pools_classes() -> None:
    # Off: one hit -> AP 1. Green: false positive (0.8) then hit (0.7):
    # recall [0, 1], precision [0, 1/2] -> AP 1/2. mAP = 3/4.
    # Pooled by score: hit 0.9, false 0.8, hit 0.7 over 2 boxes:
    # recall [1/2, 1/2, 1], precision [1, 1/2, 2/3] -> AP = 1/2 + 1/2 * 2/3 = 5/6.
    ground_truth = [truth("a", [A, B], [OFF, GREEN])]
    detections = [found("a", [A, FAR, B], [OFF, GREEN, GREEN], [0.9, 0.8, 0.7])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES)

    assert metrics.ap["Off"] == pytest.approx(1.0)
    assert metrics.ap["Green"] == pytest.approx(0.5)
    assert metrics.mean_ap == pytest.approx(0.75)
    assert metrics.weighted_mean_ap == pytest.approx(5 / 6)


@pytest.mark.parametrize(("count_empty_frames", "expected_ap", "expected_frames"), [(False, 1.0, 1), (True, 0.5, 2)])
def test_empty_frames_skipped_or_counted(count_empty_frames: bool, expected_ap: float, expected_frames: int) -> None:
    # Frame "e" has no boxes and a Green detection scored 0.95. Skipped, only
    # the hit in frame "a" counts: AP 1. Counted, the false positive comes
    # first: recall [0, 1], precision [0, 1/2] -> AP 1/2.
    ground_truth = [truth("a", [A], [GREEN]), truth("e", [], [])]
    detections = [found("a", [A], [GREEN], [0.9]), found("e", [FAR], [GREEN], [0.95])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES, count_empty_frames=count_empty_frames)

    assert metrics.ap["Green"] == pytest.approx(expected_ap)
    assert metrics.num_frames == expected_frames
    assert metrics.num_empty_frames_skipped == 2 - expected_frames


def test_voc_and_coco_interpolation_differ() -> None:
    # Two Green boxes, with a hit at 0.9, a false positive at 0.8 and a hit at 0.7.
    # Recall [1/2, 1/2, 1], precision [1, 1/2, 2/3], envelope [1, 2/3, 2/3].
    # VOC: 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # COCO: the 51 thresholds 0, 0.01, ..., 0.50 find recall 1/2 at index 0
    # (envelope 1), the 50 thresholds 0.51, ..., 1 find index 2 (envelope 2/3):
    # AP = (51 * 1 + 50 * 2/3) / 101 = 253 / 303.
    ground_truth = [truth("a", [A, B], [GREEN, GREEN])]
    detections = [found("a", [A, FAR, B], [GREEN] * 3, [0.9, 0.8, 0.7])]

    voc = evaluate_detections(ground_truth, detections, CLASSES, interpolation="voc")
    coco = evaluate_detections(ground_truth, detections, CLASSES, interpolation="coco")

    assert voc.ap["Green"] == pytest.approx(5 / 6, abs=1e-12)
    assert coco.ap["Green"] == pytest.approx(253 / 303, abs=1e-12)


def _bucket_case() -> tuple[list[GroundTruth], list[Detections]]:
    # Green boxes 3 px wide (small) and 20 px wide (large), one hit on each,
    # and false positives 3 px wide (0.95) and 20 px wide (0.7).
    small, large = [0, 0, 10, 3], [100, 100, 140, 120]
    small_far, large_far = [300, 300, 310, 303], [400, 400, 440, 420]
    ground_truth = [truth("a", [small, large], [GREEN, GREEN])]
    detections = [found("a", [small_far, small, large, large_far], [GREEN] * 4, [0.95, 0.9, 0.8, 0.7])]
    return ground_truth, detections


def test_width_bucket_ap_ignores_outside() -> None:
    ground_truth, detections = _bucket_case()

    metrics = evaluate_detections(ground_truth, detections, CLASSES)
    buckets = {bucket.label: bucket for bucket in metrics.width_buckets}

    # All boxes: false, hit, hit, false -> recall [0, 1/2, 1, 1],
    # precision [0, 1/2, 2/3, 1/2], envelope [2/3, 2/3, 2/3, 1/2] -> AP 2/3.
    assert metrics.ap["Green"] == pytest.approx(2 / 3)
    # "<4": the large box, its hit and the 20 px false positive are ignored.
    # False 0.95, hit 0.9 over 1 box: recall [0, 1], precision [0, 1/2] -> AP 1/2.
    assert buckets["<4"].ap["Green"] == pytest.approx(0.5)
    assert buckets["<4"].weighted_mean_ap == pytest.approx(0.5)
    # ">=16": the small box, its hit and the 3 px false positive are ignored.
    # Hit 0.8, false 0.7 over 1 box: recall [1, 1], precision [1, 1/2] -> AP 1.
    assert buckets[">=16"].ap["Green"] == pytest.approx(1.0)
    # No box is 4-16 px wide, so AP and recall there are undefined.
    assert buckets["4-8"].num_ground_truth == 0
    assert math.isnan(buckets["8-16"].mean_ap)
    assert math.isnan(buckets["8-16"].recall)


def test_width_bucket_prefers_box_inside() -> None:
    # Boxes 16 px (LARGE) and 14 px (SMALL) wide share a corner. Detection D is
    # 14.5 px wide, with IoU 140 / 145 to SMALL and 145 / 160 to LARGE.
    large, small, detection_d = [0, 0, 10, 16], [0, 0, 10, 14], [0, 0, 10, 14.5]
    ground_truth = [truth("a", [large, small], [GREEN, GREEN])]
    detections = [found("a", [detection_d], [GREEN], [0.9])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES)
    buckets = {bucket.label: bucket for bucket in metrics.width_buckets}

    # Unrestricted, D takes SMALL (higher IoU): recall 1/2 at precision 1 -> AP 1/2.
    assert metrics.ap["Green"] == pytest.approx(0.5)
    # In ">=16", SMALL is ignored and D falls back to LARGE, a hit: AP 1.
    assert buckets[">=16"].ap["Green"] == pytest.approx(1.0)
    # In "8-16", LARGE is ignored and D takes SMALL: AP 1.
    assert buckets["8-16"].ap["Green"] == pytest.approx(1.0)


def test_many_score_ties_keep_input_order() -> None:
    # Fifty detections alternate between scores 0.9 (even index) and 0.8.
    # Only index 48, the last 0.9 in input order, hits the one box, so recall
    # reaches 1 at rank 25 with precision 1/25 -> AP 1/25. The mixed scores
    # make an unstable sort reorder the ties.
    ground_truth = [truth("a", [A], [GREEN])]
    boxes = [square(500 + 20 * index, 500) for index in range(50)]
    boxes[48] = A
    scores = [0.9 if index % 2 == 0 else 0.8 for index in range(50)]
    detections = [found("a", boxes, [GREEN] * 50, scores)]

    assert evaluate_detections(ground_truth, detections, CLASSES).ap["Green"] == pytest.approx(1 / 25)


def test_width_bucket_recall_threshold() -> None:
    # At 0.85 the small box's hit (0.9) counts and the large box's (0.8) does not.
    ground_truth, detections = _bucket_case()

    metrics = evaluate_detections(ground_truth, detections, CLASSES, score_threshold=0.85)
    buckets = {bucket.label: bucket for bucket in metrics.width_buckets}

    assert buckets["<4"].recall == 1.0
    assert buckets[">=16"].recall == 0.0
    assert buckets[">=16"].num_matched == 0
    assert metrics.recall["Green"] == 0.5


def test_width_bucket_lower_edge_inclusive() -> None:
    # A box exactly 4 px wide belongs to "4-8", not "<4".
    ground_truth = [truth("a", [[0, 0, 10, 4]], [GREEN])]

    metrics = evaluate_detections(ground_truth, [], CLASSES)
    counts = {bucket.label: bucket.num_ground_truth for bucket in metrics.width_buckets}

    assert counts == {"<4": 0, "4-8": 1, "8-16": 0, ">=16": 0}


def test_width_bucket_ranges_labels() -> None:
    ranges = width_bucket_ranges([4, 8, 16])
    assert ranges == [("<4", 0.0, 4.0), ("4-8", 4.0, 8.0), ("8-16", 8.0, 16.0), (">=16", 16.0, math.inf)]


@pytest.mark.parametrize("edges", [[8, 4], [0, 4], [4, 4]])
def test_width_bucket_ranges_invalid(edges: list[float]) -> None:
    with pytest.raises(ValueError, match="width bucket edges"):
        width_bucket_ranges(edges)


def test_curve_points_and_rows() -> None:
    # Hit 0.9, false positive 0.8, hit 0.7 over two Green boxes.
    ground_truth = [truth("a", [A, B], [GREEN, GREEN])]
    detections = [found("a", [A, FAR, B], [GREEN] * 3, [0.9, 0.8, 0.7])]

    metrics = evaluate_detections(ground_truth, detections, CLASSES)
    curve = metrics.curves["Green"]

    assert curve.recall.tolist() == [0.5, 0.5, 1.0]
    assert curve.precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7]
    # Classes without boxes (Off, Yellow, Red) give no rows.
    assert len(curve_rows(metrics.curves)) == 3
    # Thinned to two points: the first and the last.
    assert [row["threshold"] for row in curve_rows(metrics.curves, max_points_per_class=2)] == [0.9, 0.7]


def test_to_dict_strict_json() -> None:
    ground_truth = [truth("a", [A], [GREEN])]

    data = evaluate_detections(ground_truth, [], CLASSES).to_dict()

    assert "curves" not in data
    assert data["width_buckets"][-1]["max_width"] is None
    json.dumps(data, allow_nan=False)


def test_class_id_out_of_range() -> None:
    with pytest.raises(ValueError, match="class id 4 is outside"):
        evaluate_detections([truth("a", [A], [4])], [], CLASSES)


def test_reversed_box_rejected() -> None:
    with pytest.raises(ValueError, match="ymax < ymin"):
        truth("a", [[10, 0, 0, 10]], [GREEN])


def test_unknown_detection_key() -> None:
    with pytest.raises(ValueError, match="no ground-truth entry"):
        evaluate_detections([truth("a", [A], [GREEN])], [found("b", [A], [GREEN], [0.9])], CLASSES)


def test_duplicate_frame_key() -> None:
    with pytest.raises(ValueError, match="two ground-truth entries"):
        evaluate_detections([truth("a", [A], [GREEN]), truth("a", [B], [GREEN])], [], CLASSES)


def test_invalid_interpolation() -> None:
    with pytest.raises(ValueError, match="interpolation 'linear' is invalid"):
        evaluate_detections([truth("a", [A], [GREEN])], [], CLASSES, interpolation="linear")
