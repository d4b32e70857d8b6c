"""Class confusion of found lights: which class the detector gives each ground-truth box.

AP mixes two failures, missing a light and naming it wrongly. The confusion
matrix keeps them apart. For every ground-truth box it takes the
highest-scoring detection, of any class, that overlaps the box at IoU >=
`iou_threshold`, and counts the pair (true class, detected class). A box
with no such detection counts as `missed`. Detections scored below
`score_threshold` are ignored. Equal scores keep the detection that comes
first in its frame.

Unlike AP matching, one detection may be counted for several boxes, because
the matrix measures how each light is classified, not how detections are
assigned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from blindspots.evaluation.ap import Detections, GroundTruth, box_iou, pair_frames

MISSED = "missed"


@dataclass(frozen=True)
class ClassConfusion:
    """Counts [C, C + 1] with true classes as rows and detected classes, then `missed`, as columns."""

    class_names: list[str]
    iou_threshold: float
    score_threshold: float
    counts: np.ndarray

    def found(self) -> np.ndarray:
        """Return the number of boxes per true class that some detection overlaps, [C]."""
        return self.counts[:, :-1].sum(axis=1)

    def accuracy(self) -> float:
        """Return the share of found boxes given their true class, or NaN when no box was found."""
        found = int(self.found().sum())
        return float(np.trace(self.counts[:, :-1])) / found if found else math.nan

    def accuracy_by_class(self) -> dict[str, float]:
        """Return, per true class, the share of its found boxes given that class (NaN if none was found)."""
        found = self.found()
        return {
            name: float(self.counts[index, index]) / int(found[index]) if found[index] else math.nan
            for index, name in enumerate(self.class_names)
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with counts nested by true and detected class, and NaN as None."""
        columns = [*self.class_names, MISSED]
        rows = {
            name: {column: int(self.counts[index, position]) for position, column in enumerate(columns)}
            for index, name in enumerate(self.class_names)
        }
        accuracy = self.accuracy()
        return {
            "iou_threshold": self.iou_threshold,
            "score_threshold": self.score_threshold,
            "counts": rows,
            "accuracy": None if math.isnan(accuracy) else accuracy,
            "accuracy_by_class": {
                name: None if math.isnan(value) else value for name, value in self.accuracy_by_class().items()
            },
        }


def class_confusion(
    ground_truth: Sequence[GroundTruth],
    detections: Iterable[Detections],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> ClassConfusion:
    """Count, per true class, the class of the best detection overlapping each box.

    Inputs follow `ap.evaluate_detections`: boxes `[ymin, xmin, ymax, xmax]`
    in pixels, 0-based class ids, frames paired by key. Raises ValueError on
    an IoU threshold outside (0, 1] and on the input errors `ap.pair_frames`
    rejects.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold {iou_threshold} is invalid. Use a value in (0, 1].")
    class_names = list(class_names)
    num_classes = len(class_names)
    # Frames without ground truth add no row, so they are skipped.
    frames, _ = pair_frames(ground_truth, detections, num_classes, count_empty_frames=False)
    counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for frame in frames:
        detected = _detected_class(frame.ground_truth, frame.detections, iou_threshold, score_threshold, num_classes)
        np.add.at(counts, (frame.ground_truth.classes, detected), 1)
    return ClassConfusion(class_names, float(iou_threshold), float(score_threshold), counts)


def _detected_class(
    truth: GroundTruth, found: Detections, iou_threshold: float, score_threshold: float, missed: int
) -> np.ndarray:
    """Return the class id of the best overlapping detection per box, or `missed` where none overlaps."""
    keep = found.scores >= score_threshold
    boxes, classes, scores = found.boxes[keep], found.classes[keep], found.scores[keep]
    if len(boxes) == 0:
        return np.full(len(truth.boxes), missed, dtype=np.int64)
    overlaps = box_iou(truth.boxes, boxes) >= iou_threshold
    ranked = np.where(overlaps, scores[np.newaxis, :], -np.inf)
    best = np.argmax(ranked, axis=1)
    return np.where(overlaps.any(axis=1), classes[best], missed)
