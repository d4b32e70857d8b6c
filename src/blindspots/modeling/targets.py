"""Anchor labelling with Model Garden's target assigner.

Argmax matching at IoU >= `model.match_iou` (0.5), with every ground-truth
box forced onto its best anchor, and the Faster R-CNN box coder with scale
factors (10, 10, 5, 5), as in the reference SSD config.
"""

from __future__ import annotations

import tensorflow as tf
from official.vision.ops import iou_similarity
from official.vision.utils.object_detection import argmax_matcher, box_list, faster_rcnn_box_coder, target_assigner

BOX_CODE_SCALES = (10.0, 10.0, 5.0, 5.0)


class AnchorLabeler:
    """Assign class and box targets to a fixed anchor set.

    `anchors` is [N, 4] `[ymin, xmin, ymax, xmax]` in pixels; ground-truth
    boxes passed to `__call__` must be in the same frame.
    """

    def __init__(self, anchors: tf.Tensor, num_classes: int, match_iou: float = 0.5) -> None:
        self.anchors = box_list.BoxList(tf.convert_to_tensor(anchors, tf.float32))
        self.num_classes = num_classes
        self.box_coder = faster_rcnn_box_coder.FasterRcnnBoxCoder(scale_factors=list(BOX_CODE_SCALES))
        matcher = argmax_matcher.ArgMaxMatcher(
            matched_threshold=match_iou,
            unmatched_threshold=match_iou,
            force_match_for_each_row=True,
        )
        self._assigner = target_assigner.TargetAssigner(
            iou_similarity.IouSimilarity(),
            matcher,
            self.box_coder,
            unmatched_cls_target=tf.zeros([num_classes], tf.float32),
        )

    def __call__(self, boxes: tf.Tensor, classes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Label one image.

        Args:
          boxes: [M, 4] ground truth in pixels; M may be 0.
          classes: [M] int class ids in [0, num_classes).

        Returns:
          `class_targets` [N, C] one-hot (all zero for background),
          `box_targets` [N, 4] encoded, `positive` [N] float 0/1.
        """
        one_hot = tf.one_hot(tf.cast(classes, tf.int32), self.num_classes, dtype=tf.float32)
        cls_targets, _, reg_targets, reg_weights, _ = self._assigner.assign(
            self.anchors, box_list.BoxList(tf.cast(boxes, tf.float32)), one_hot
        )
        return {"class_targets": cls_targets, "box_targets": reg_targets, "positive": reg_weights}

    def decode(self, box_encodings: tf.Tensor) -> tf.Tensor:
        """Decode [B, N, 4] encodings to `[ymin, xmin, ymax, xmax]` pixels."""
        anchors = self.anchors.get()
        flat = tf.reshape(box_encodings, [-1, 4])
        batch = tf.shape(box_encodings)[0]
        tiled = tf.tile(anchors, [batch, 1])
        decoded = self.box_coder.decode(flat, box_list.BoxList(tiled)).get()
        return tf.reshape(decoded, tf.shape(box_encodings))
