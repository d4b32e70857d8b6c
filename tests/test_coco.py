"""COCO metrics through pycocotools, and agreement with `ap.py`'s COCO interpolation.

Boxes are [ymin, xmin, ymax, xmax] in pixels of the original image.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from blindspots.evaluation.ap import Detections, GroundTruth, evaluate_detections
from blindspots.evaluation.coco import coco_metrics, to_coco_box

CLASSES = ["Off", "Green", "Yellow", "Red"]
# BSTLD frames are 1280 x 720 px.
IMAGE_HEIGHT, IMAGE_WIDTH = 720, 1280


def _random_box(rng: np.random.Generator, width: float) -> list[float]:
    # Traffic lights are 1.5 to 3 times taller than wide.
    height = width * rng.uniform(1.5, 3.0)
    top = rng.uniform(0, IMAGE_HEIGHT - height)
    left = rng.uniform(0, IMAGE_WIDTH - width)
    return [top, left, top + height, left + width]


def _jitter(rng: np.random.Generator, box: list[float]) -> list[float]:
    # Shift each edge by about 10% of the box width, keeping at least 1 px per side.
    width = box[3] - box[1]
    top, left, bottom, right = np.asarray(box) + rng.normal(0.0, 0.1 * width, size=4)
    return [top, left, max(bottom, top + 1.0), max(right, left + 1.0)]


def generate_detection_set(seed: int, num_images: int = 200) -> tuple[list[GroundTruth], list[Detections]]:
    """Generate ground truth 3-30 px wide and detections: jittered hits, duplicates, misses, false positives.

    About 15% of frames are empty. Scores are continuous, so no two tie. A
    frame gets about 20 detections at most, below COCOeval's cap of 100 per
    image and class, so the cap never drops a detection.
    """
    rng = np.random.default_rng(seed)
    ground_truth, detections = [], []
    for index in range(num_images):
        key = f"frame_{index:03d}"
        num_boxes = 0 if rng.random() < 0.15 else int(rng.integers(1, 7))
        boxes = [_random_box(rng, rng.uniform(3.0, 30.0)) for _ in range(num_boxes)]
        classes = rng.choice(4, size=num_boxes, p=[0.05, 0.45, 0.1, 0.4]).tolist()
        ground_truth.append(GroundTruth(key, np.array(boxes).reshape(-1, 4), classes))

        det_boxes, det_classes, det_scores = [], [], []
        for box, class_id in zip(boxes, classes):
            if rng.random() < 0.2:  # miss
                continue
            copies = 2 if rng.random() < 0.1 else 1  # duplicate detection
            for _ in range(copies):
                det_boxes.append(_jitter(rng, box))
                det_classes.append(class_id if rng.random() < 0.9 else int(rng.integers(4)))
                det_scores.append(rng.uniform(0.2, 1.0))
        for _ in range(int(rng.poisson(3))):  # false positives
            det_boxes.append(_random_box(rng, rng.uniform(3.0, 30.0)))
            det_classes.append(int(rng.integers(4)))
            det_scores.append(rng.uniform(0.0, 0.8))
        detections.append(Detections(key, np.array(det_boxes).reshape(-1, 4), det_classes, det_scores))
    return ground_truth, detections


@pytest.fixture(scope="module")
def detection_set() -> tuple[list[GroundTruth], list[Detections]]:
    return generate_detection_set(seed=0)


@pytest.mark.parametrize("count_empty_frames", [False, True])
def test_coco_ap50_matches_pycocotools(detection_set: tuple, count_empty_frames: bool) -> None:
    ground_truth, detections = detection_set

    ours = evaluate_detections(ground_truth, detections, CLASSES, iou_threshold=0.5, interpolation="coco", count_empty_frames=count_empty_frames)
    reference = coco_metrics(ground_truth, detections, CLASSES, count_empty_frames=count_empty_frames)

    for name in CLASSES:
        assert ours.ap[name] == pytest.approx(reference["ap50_per_class"][name], abs=1e-6), name
    # pycocotools' AP50 is the mean over classes with ground truth, like mAP.
    assert ours.mean_ap == pytest.approx(reference["ap50"], abs=1e-6)


def test_generated_set_is_nontrivial(detection_set: tuple) -> None:
    # Guards the comparison above: every class has boxes, some frames are
    # empty, and APs are neither near 0 nor 1, so misses, duplicates and
    # false positives all occur. Empty width_edges keep one bucket, which
    # shortens the run.
    ground_truth, detections = detection_set

    ours = evaluate_detections(ground_truth, detections, CLASSES, interpolation="coco", width_edges=[])

    assert min(ours.num_ground_truth.values()) > 0
    assert ours.num_empty_frames_skipped > 0
    assert all(0.1 < ap < 0.95 for ap in ours.ap.values())


def test_coco_perfect_detections() -> None:
    ground_truth = [GroundTruth("a", [[0, 0, 20, 8], [40, 40, 60, 48]], [1, 3])]
    detections = [Detections("a", [[0, 0, 20, 8], [40, 40, 60, 48]], [1, 3], [0.9, 0.8])]

    metrics = coco_metrics(ground_truth, detections, CLASSES)

    assert metrics["ap"] == pytest.approx(1.0)
    assert metrics["ap75"] == pytest.approx(1.0)
    assert metrics["ar100"] == pytest.approx(1.0)
    assert metrics["ap50_per_class"]["Red"] == pytest.approx(1.0)
    assert math.isnan(metrics["ap50_per_class"]["Off"])


def test_coco_no_detections() -> None:
    ground_truth = [GroundTruth("a", [[0, 0, 20, 8]], [1])]

    metrics = coco_metrics(ground_truth, [], CLASSES)

    assert metrics["ap"] == 0.0
    assert metrics["ap50"] == 0.0
    assert metrics["ar100"] == 0.0
    assert metrics["ap50_per_class"]["Green"] == 0.0


def test_coco_no_ground_truth() -> None:
    ground_truth = [GroundTruth("a", np.zeros((0, 4)), [])]
    detections = [Detections("a", [[0, 0, 20, 8]], [1], [0.9])]

    metrics = coco_metrics(ground_truth, detections, CLASSES, count_empty_frames=True)

    assert math.isnan(metrics["ap"])
    assert math.isnan(metrics["ap50_per_class"]["Green"])


def test_to_coco_box() -> None:
    # [ymin, xmin, ymax, xmax] = [10, 20, 40, 28] -> [x, y, w, h] = [20, 10, 8, 30].
    assert to_coco_box(np.array([[10, 20, 40, 28]])).tolist() == [[20.0, 10.0, 8.0, 30.0]]
