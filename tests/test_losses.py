"""Detection losses: focal and SSD terms, normalisation and class weights."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from omegaconf import OmegaConf
from official.vision.losses import focal_loss

from blindspots.modeling.losses import DetectionLoss, class_weight_vector

CLASS_NAMES = ("Off", "Green", "Yellow", "Red")


def model_cfg(loss="focal"):
    return OmegaConf.create(
        {"loss": loss, "focal_alpha": 0.25, "focal_gamma": 2.0, "negatives_per_positive": 3.0, "localization_weight": 1.0}
    )


def batch(seed=0, anchors=12):
    """One image: anchors 0 (Yellow) and 1 (Green) positive, the rest background."""
    rng = np.random.default_rng(seed)
    class_targets = np.zeros((1, anchors, 4), np.float32)
    class_targets[0, 0, 2] = 1.0
    class_targets[0, 1, 1] = 1.0
    positive = np.zeros((1, anchors), np.float32)
    positive[0, :2] = 1.0
    box_targets = np.zeros((1, anchors, 4), np.float32)
    box_targets[0, :2] = rng.normal(size=(2, 4))
    outputs = {
        "class_logits": tf.constant(rng.normal(size=(1, anchors, 4)), tf.float32),
        "box_encodings": tf.constant(rng.normal(size=(1, anchors, 4)), tf.float32),
    }
    targets = {"class_targets": tf.constant(class_targets), "positive": tf.constant(positive), "box_targets": tf.constant(box_targets)}
    return outputs, targets


def test_focal_matches_model_garden_per_positive():
    outputs, targets = batch()
    _, parts = DetectionLoss(model_cfg())(outputs, targets)
    reference = focal_loss.FocalLoss(alpha=0.25, gamma=2.0, reduction=tf_keras.losses.Reduction.NONE)
    expected = float(tf.reduce_sum(reference(targets["class_targets"], outputs["class_logits"]))) / 2.0
    assert float(parts["class"]) == pytest.approx(expected, rel=1e-6)


def test_box_loss_is_smooth_l1_over_positives():
    outputs, targets = batch()
    _, parts = DetectionLoss(model_cfg())(outputs, targets)
    error = np.abs(outputs["box_encodings"].numpy()[0, :2] - targets["box_targets"].numpy()[0, :2])
    smooth = np.where(error < 1.0, 0.5 * error**2, error - 0.5)
    assert float(parts["box"]) == pytest.approx(smooth.sum() / 2.0, rel=1e-6)


def test_ssd_loss_keeps_three_negatives_per_positive():
    outputs, targets = batch(anchors=20)
    _, parts = DetectionLoss(model_cfg("ssd"))(outputs, targets)
    per_anchor = tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=targets["class_targets"], logits=outputs["class_logits"]), axis=-1
    ).numpy()[0]
    hardest_negatives = np.sort(per_anchor[2:])[::-1][:6]
    assert float(parts["class"]) == pytest.approx((per_anchor[:2].sum() + hardest_negatives.sum()) / 2.0, rel=1e-6)


@pytest.mark.parametrize("loss", ["focal", "ssd"])
def test_class_weight_scales_only_its_positive_terms(loss):
    outputs, targets = batch(anchors=20)
    _, plain = DetectionLoss(model_cfg(loss))(outputs, targets)
    _, weighted = DetectionLoss(model_cfg(loss), class_weight_vector({"Yellow": 3.0}, CLASS_NAMES))(outputs, targets)

    # Only anchor 0 has a Yellow target, so the weighted loss adds twice its
    # Yellow term. Negative mining ranks the same negatives in both runs.
    logits = outputs["class_logits"][:, :1, 2:3]
    ones = tf.ones_like(logits)
    if loss == "focal":
        reference = focal_loss.FocalLoss(alpha=0.25, gamma=2.0, reduction=tf_keras.losses.Reduction.NONE)
        yellow_term = float(tf.reduce_sum(reference(ones, logits)))
    else:
        yellow_term = float(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=ones, logits=logits)))
    assert float(weighted["class"]) == pytest.approx(float(plain["class"]) + 2.0 * yellow_term / 2.0, rel=1e-5)
    assert float(weighted["box"]) == pytest.approx(float(plain["box"]), rel=1e-6)


def test_class_weights_of_ones_change_nothing():
    outputs, targets = batch()
    plain, _ = DetectionLoss(model_cfg())(outputs, targets)
    ones, _ = DetectionLoss(model_cfg(), class_weight_vector({"Off": 1.0}, CLASS_NAMES))(outputs, targets)
    assert float(ones) == pytest.approx(float(plain), rel=1e-7)


def test_class_weight_vector_follows_class_ids():
    assert class_weight_vector({"Yellow": 4.0, "Off": 2.5}, CLASS_NAMES) == [2.5, 1.0, 4.0, 1.0]
    assert class_weight_vector({}, CLASS_NAMES) == [1.0, 1.0, 1.0, 1.0]


def test_class_weight_vector_rejects_unknown_class():
    with pytest.raises(ValueError, match=r"names \['Blue'\], which are not classes of this dataset \(Off, Green, Yellow, Red\)"):
        class_weight_vector({"Blue": 2.0}, CLASS_NAMES)
