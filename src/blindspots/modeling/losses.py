"""Detection losses: focal (Model Garden) or the reference SSD loss.

Both take the model outputs and the targets of `targets.AnchorLabeler`,
batched: logits [B, N, C], box encodings [B, N, 4], `positive` [B, N].
Both normalise by the number of positive anchors in the batch (at least 1).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf
import tf_keras
from official.vision.losses import focal_loss


def _box_loss(box_encodings: tf.Tensor, box_targets: tf.Tensor, positive: tf.Tensor) -> tf.Tensor:
    """Smooth L1 (Huber, delta 1) summed over positive anchors, [B, N] -> scalar."""
    error = tf.abs(box_encodings - box_targets)
    smooth_l1 = tf.where(error < 1.0, 0.5 * tf.square(error), error - 0.5)
    return tf.reduce_sum(tf.reduce_sum(smooth_l1, axis=-1) * positive)


def _hard_negative_mask(per_anchor: tf.Tensor, positive: tf.Tensor, ratio: float) -> tf.Tensor:
    """Keep, per image, the `ratio` x positives negatives with the largest loss."""
    negative_loss = tf.where(positive > 0, tf.fill(tf.shape(per_anchor), -1.0), per_anchor)
    num_negatives = tf.cast(tf.reduce_sum(1.0 - positive, axis=1), tf.int32)
    keep = tf.minimum(tf.cast(ratio * tf.reduce_sum(positive, axis=1), tf.int32), num_negatives)
    # A negative's rank is its position when sorted by descending loss.
    order = tf.argsort(negative_loss, axis=1, direction="DESCENDING", stable=True)
    ranks = tf.argsort(order, axis=1, stable=True)
    return tf.cast(ranks < keep[:, tf.newaxis], tf.float32) * (1.0 - positive)


def class_weight_vector(weights: Mapping[str, float], class_names: Sequence[str]) -> list[float]:
    """Return one weight per class id from `model.class_weights` (name -> weight, default 1).

    Raises ValueError on a name that is not in `class_names`.
    """
    unknown = sorted(set(weights) - set(class_names))
    if unknown:
        raise ValueError(
            f"model.class_weights names {unknown}, which are not classes of this dataset ({', '.join(class_names)}). "
            "Remove them or change prepare.label_map."
        )
    return [float(weights.get(name, 1.0)) for name in class_names]


class DetectionLoss:
    """Callable returning (total, {"class": ..., "box": ...}) for one batch.

    `class_weights` has one factor per class. It scales that class's
    classification term at the anchors whose target is that class, which
    counters the rarity of Off and Yellow lights. The other terms keep
    weight 1.
    """

    def __init__(self, model_cfg: Any, class_weights: Sequence[float] | None = None) -> None:
        self.kind = model_cfg.loss
        self.class_weights = tf.constant(class_weights, tf.float32) if class_weights else None
        self.localization_weight = float(model_cfg.localization_weight)
        self.negatives_per_positive = float(model_cfg.negatives_per_positive)
        self._focal = focal_loss.FocalLoss(
            alpha=float(model_cfg.focal_alpha),
            gamma=float(model_cfg.focal_gamma),
            reduction=tf_keras.losses.Reduction.NONE,
        )

    def __call__(self, outputs: dict[str, tf.Tensor], targets: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        logits = outputs["class_logits"]
        positive = targets["positive"]
        normaliser = tf.maximum(tf.reduce_sum(positive), 1.0)
        class_targets = targets["class_targets"]
        if self.kind == "focal":
            class_loss = tf.reduce_sum(self._weighted(self._focal(class_targets, logits), class_targets))
        else:
            per_element = tf.nn.sigmoid_cross_entropy_with_logits(labels=class_targets, logits=logits)
            per_anchor = tf.reduce_sum(self._weighted(per_element, class_targets), axis=-1)
            weights = positive + _hard_negative_mask(tf.stop_gradient(per_anchor), positive, self.negatives_per_positive)
            class_loss = tf.reduce_sum(per_anchor * weights)
        box_loss = _box_loss(outputs["box_encodings"], targets["box_targets"], positive)
        class_loss = class_loss / normaliser
        box_loss = self.localization_weight * box_loss / normaliser
        return class_loss + box_loss, {"class": class_loss, "box": box_loss}

    def _weighted(self, per_element: tf.Tensor, class_targets: tf.Tensor) -> tf.Tensor:
        """Scale the [B, N, C] loss terms whose one-hot target is 1 by their class weight."""
        if self.class_weights is None:
            return per_element
        return per_element * (1.0 + class_targets * (self.class_weights - 1.0))
