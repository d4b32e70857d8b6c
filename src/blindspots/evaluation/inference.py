"""Run a detector over a prepared split and collect ground truth and detections.

Boxes come back as `[ymin, xmin, ymax, xmax]` in pixels of the ORIGINAL
image (BSTLD: 1280 x 720), so that width buckets and AP are measured at
the dataset's resolution whatever size the model saw.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from blindspots.evaluation.ap import Detections, GroundTruth

logger = logging.getLogger(__name__)


def _to_pixels(boxes: np.ndarray, original_size: np.ndarray) -> np.ndarray:
    height, width = float(original_size[0]), float(original_size[1])
    return boxes * np.array([height, width, height, width], dtype=np.float64)


def collect_detections(
    detector: Callable[[tf.Tensor], dict[str, tf.Tensor]],
    records: tf.data.Dataset,
    input_size: tuple[int, int],
    batch_size: int,
) -> tuple[list[GroundTruth], list[Detections]]:
    """Run `detector` on every record; return per-image ground truth and detections.

    `records` yields the dicts of `blindspots.data.records.read_dataset`.
    Images are resized to `input_size` (H, W) when the prepared size differs.
    """

    def to_model_input(record: dict[str, Any]) -> dict[str, Any]:
        image = tf.image.resize(tf.cast(record["image"], tf.float32), input_size, method="bilinear")
        return {**record, "image": image}

    batched = records.map(to_model_input).padded_batch(
        batch_size,
        padded_shapes={
            "image": [input_size[0], input_size[1], 3],
            "boxes": [None, 4],
            "classes": [None],
            "occluded": [None],
            "original_size": [2],
            "key": [],
        },
        padding_values={"boxes": -1.0, "classes": -1, "occluded": False, "image": 0.0, "original_size": 0, "key": ""},
    )
    ground_truth: list[GroundTruth] = []
    detections: list[Detections] = []
    for batch in tqdm(batched, desc="evaluate", unit="batch", dynamic_ncols=True):
        outputs = {name: value.numpy() for name, value in detector(batch["image"]).items()}
        for index in range(int(batch["image"].shape[0])):
            key = batch["key"][index].numpy().decode("utf-8")
            original = batch["original_size"][index].numpy()
            valid = batch["classes"][index].numpy() >= 0
            ground_truth.append(
                GroundTruth(
                    key=key,
                    boxes=_to_pixels(batch["boxes"][index].numpy()[valid], original),
                    classes=batch["classes"][index].numpy()[valid].astype(np.int64),
                )
            )
            count = int(outputs["num_detections"][index])
            detections.append(
                Detections(
                    key=key,
                    boxes=_to_pixels(outputs["boxes"][index, :count].astype(np.float64), original),
                    classes=outputs["classes"][index, :count].astype(np.int64),
                    scores=outputs["scores"][index, :count].astype(np.float64),
                )
            )
    logger.info("ran the detector on %d images, %d detections", len(ground_truth), sum(len(d.scores) for d in detections))
    return ground_truth, detections
