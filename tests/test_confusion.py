"""Class confusion of found lights, on hand-built frames."""

import json
import math

import numpy as np
import pytest

from blindspots.evaluation.ap import Detections, GroundTruth
from blindspots.evaluation.confusion import MISSED, class_confusion

CLASSES = ["Off", "Green", "Yellow", "Red"]
OFF, GREEN, YELLOW, RED = range(4)
LIGHT = [10.0, 10.0, 30.0, 18.0]  # 20 x 8 px
# The same light shifted down by 4 px: IoU 16 / 24 = 0.67 with LIGHT.
SHIFTED = [14.0, 10.0, 34.0, 18.0]
FAR = [100.0, 100.0, 120.0, 108.0]


def truth(key: str, *boxes_and_classes: tuple[list[float], int]) -> GroundTruth:
    boxes = [box for box, _ in boxes_and_classes]
    return GroundTruth(key, np.array(boxes).reshape(-1, 4), [label for _, label in boxes_and_classes])


def found(key: str, *rows: tuple[list[float], int, float]) -> Detections:
    return Detections(
        key, np.array([box for box, _, _ in rows]).reshape(-1, 4), [row[1] for row in rows], [row[2] for row in rows]
    )


def test_best_overlap_names_light():
    # A Red light seen as Green (0.7) and as Red (0.4): the higher score counts.
    result = class_confusion(
        [truth("a", (LIGHT, RED))], [found("a", (LIGHT, GREEN, 0.7), (SHIFTED, RED, 0.4))], CLASSES
    )
    assert result.counts[RED].tolist() == [0, 1, 0, 0, 0]
    assert result.accuracy() == 0.0


def test_counts_with_missed_column():
    ground_truth = [
        truth("a", (LIGHT, GREEN), (FAR, RED)),
        truth("b", (LIGHT, GREEN)),
        truth("c", (LIGHT, YELLOW)),
    ]
    detections = [
        found("a", (LIGHT, GREEN, 0.9)),  # FAR Red has no detection: missed
        found("b", (SHIFTED, GREEN, 0.5)),
        found("c", (LIGHT, RED, 0.6)),
    ]
    result = class_confusion(ground_truth, detections, CLASSES)
    assert result.counts.tolist() == [
        [0, 0, 0, 0, 0],
        [0, 2, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ]
    assert result.found().tolist() == [0, 2, 1, 0]
    assert result.accuracy() == pytest.approx(2 / 3)
    by_class = result.accuracy_by_class()
    assert by_class["Green"] == 1.0
    assert by_class["Yellow"] == 0.0
    assert math.isnan(by_class["Off"])
    assert math.isnan(by_class["Red"])


def test_iou_threshold_decides_overlap():
    ground_truth = [truth("a", (LIGHT, GREEN))]
    detections = [found("a", (SHIFTED, GREEN, 0.9))]
    assert class_confusion(ground_truth, detections, CLASSES, iou_threshold=0.6).counts[GREEN, GREEN] == 1
    assert class_confusion(ground_truth, detections, CLASSES, iou_threshold=0.7).counts[GREEN, -1] == 1


def test_score_threshold_drops_detections():
    ground_truth = [truth("a", (LIGHT, RED))]
    detections = [found("a", (LIGHT, GREEN, 0.2), (LIGHT, RED, 0.1))]
    assert class_confusion(ground_truth, detections, CLASSES).counts[RED, GREEN] == 1
    assert class_confusion(ground_truth, detections, CLASSES, score_threshold=0.15).counts[RED, GREEN] == 1
    assert class_confusion(ground_truth, detections, CLASSES, score_threshold=0.3).counts[RED, -1] == 1


def test_equal_scores_keep_first():
    ground_truth = [truth("a", (LIGHT, RED))]
    detections = [found("a", (LIGHT, YELLOW, 0.5), (LIGHT, RED, 0.5))]
    assert class_confusion(ground_truth, detections, CLASSES).counts[RED, YELLOW] == 1


def test_detection_names_two_lights():
    # Two lights close together, one wide detection over both.
    left, right = [10.0, 10.0, 30.0, 18.0], [10.0, 12.0, 30.0, 20.0]
    ground_truth = [truth("a", (left, RED), (right, GREEN))]
    detections = [found("a", ([10.0, 11.0, 30.0, 19.0], RED, 0.8))]
    result = class_confusion(ground_truth, detections, CLASSES)
    assert result.counts[RED, RED] == 1
    assert result.counts[GREEN, RED] == 1


def test_empty_and_undetected_frames():
    ground_truth = [truth("empty"), truth("lonely", (LIGHT, OFF))]
    # Detections on an empty frame add nothing. A frame without detections misses its lights.
    result = class_confusion(ground_truth, [found("empty", (LIGHT, OFF, 0.9))], CLASSES)
    assert result.counts.sum() == 1
    assert result.counts[OFF, -1] == 1
    assert math.isnan(result.accuracy())


def test_to_dict_strict_json():
    result = class_confusion([truth("a", (LIGHT, GREEN))], [found("a", (LIGHT, GREEN, 0.9))], CLASSES, 0.5, 0.05)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["iou_threshold"] == 0.5
    assert data["score_threshold"] == 0.05
    assert list(data["counts"]["Green"]) == [*CLASSES, MISSED]
    assert data["counts"]["Green"]["Green"] == 1
    assert data["accuracy"] == 1.0
    assert data["accuracy_by_class"]["Red"] is None


@pytest.mark.parametrize("iou", [0.0, -0.1, 1.5])
def test_invalid_iou_threshold(iou):
    with pytest.raises(ValueError, match=r"iou_threshold .* Use a value in \(0, 1\]"):
        class_confusion([truth("a", (LIGHT, GREEN))], [], CLASSES, iou_threshold=iou)


def test_unknown_class_id_rejected():
    with pytest.raises(ValueError, match="class id 4 is outside"):
        class_confusion([truth("a", (LIGHT, 4))], [], CLASSES)
