"""Item 2: our train step against a RetinaNet peer built from TF Model Garden.

The peer is Model Garden's MobileNet v1 backbone at our width multiplier
and input size, an FPN decoder on levels 3 to 7 (strides 8 to 128) and a
RetinaNet head. Decoder and head use the widths of Model Garden's
`retinanet_mobile_coco` experiment: 48 filters, separable convolutions and
4 head convolutions. The loss is Model Garden's RetinaNet loss (focal loss
with alpha 0.25 and gamma 1.5, Huber box loss with delta 0.1 and weight
50). The optimizer is ours, so the comparison is of the networks and
losses alone. Both steps train on the same images.
"""

from __future__ import annotations

import logging
from typing import Any

import tensorflow as tf
import tf_keras

from benchmarks import profiles, train_steps
from benchmarks.results import MET, MISSED, Profile, Section, Table, new_section, plural
from benchmarks.settings import Budget, Context
from benchmarks.timing import rate_ratio, spread, time_rounds
from blindspots import paths
from blindspots.data.records import read_dataset
from blindspots.training.trainer import make_optimizer

logger = logging.getLogger(__name__)

MIN_RATIO = 1.0
MIN_LEVEL = 3
MAX_LEVEL = 7
# Model Garden defaults of `configs.retinanet.Anchor`: 3 scales x 3 ratios.
NUM_SCALES = 3
ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHOR_SIZE = 4.0
# Widths of Model Garden's `retinanet_mobile_coco` head.
HEAD_FILTERS = 48
HEAD_CONVS = 4
# Model Garden's `configs.retinanet.Losses` defaults.
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 1.5
HUBER_DELTA = 0.1
BOX_LOSS_WEIGHT = 50.0


def build_peer(model_cfg: Any, num_classes: int) -> tf_keras.Model:
    """Build the Model Garden RetinaNet on MobileNet v1 for `model_cfg.input_size` and width.

    `num_classes` counts the background class 0, as Model Garden's
    RetinaNet does.
    """
    from official.vision.modeling import retinanet_model
    from official.vision.modeling.backbones import MobileNet
    from official.vision.modeling.decoders import fpn
    from official.vision.modeling.heads import dense_prediction_heads
    from official.vision.modeling.layers import detection_generator

    height, width = train_steps.input_size(model_cfg)
    regularizer = tf_keras.regularizers.l2(float(model_cfg.l2_weight_decay)) if model_cfg.l2_weight_decay else None
    backbone = MobileNet(
        model_id="MobileNetV1",
        filter_size_scale=float(model_cfg.width_multiplier),
        input_specs=tf_keras.layers.InputSpec(shape=[None, height, width, 3]),
        min_depth=int(model_cfg.min_depth),
        kernel_regularizer=regularizer,
    )
    decoder = fpn.FPN(
        input_specs=backbone.output_specs,
        min_level=MIN_LEVEL,
        max_level=MAX_LEVEL,
        num_filters=HEAD_FILTERS,
        use_separable_conv=True,
        kernel_regularizer=regularizer,
    )
    head = dense_prediction_heads.RetinaNetHead(
        min_level=MIN_LEVEL,
        max_level=MAX_LEVEL,
        num_classes=num_classes,
        num_anchors_per_location=NUM_SCALES * len(ASPECT_RATIOS),
        num_convs=HEAD_CONVS,
        num_filters=HEAD_FILTERS,
        use_separable_conv=True,
        kernel_regularizer=regularizer,
    )
    model = retinanet_model.RetinaNetModel(
        backbone,
        decoder,
        head,
        detection_generator.MultilevelDetectionGenerator(),
        min_level=MIN_LEVEL,
        max_level=MAX_LEVEL,
        num_scales=NUM_SCALES,
        aspect_ratios=list(ASPECT_RATIOS),
        anchor_size=ANCHOR_SIZE,
    )
    # A subclassed model creates its weights on the first call. The training
    # path skips the detection generator, so this call is cheap.
    model(tf.zeros([1, height, width, 3]), training=True)
    return model


def peer_batch(context: Context, model_cfg: Any, batch_size: int) -> tuple[tf.Tensor, dict[str, Any]]:
    """Label the first `batch_size` training records with Model Garden's RetinaNet anchor labeler.

    Returns images [B, H, W, 3] (0-255) and labels `cls_targets`,
    `box_targets` (dicts by level), `cls_weights` and `box_weights` [B, N].
    Class ids are shifted by one, because class 0 is the background.
    """
    from official.vision.ops import anchor

    height, width = train_steps.input_size(model_cfg)
    anchor_boxes = anchor.Anchor(MIN_LEVEL, MAX_LEVEL, NUM_SCALES, list(ASPECT_RATIOS), ANCHOR_SIZE, [height, width]).multilevel_boxes
    labeler = anchor.AnchorLabeler(match_threshold=0.5, unmatched_threshold=0.5)
    scale = tf.constant([height, width, height, width], tf.float32)

    def label(record: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, Any]]:
        image = tf.image.resize(tf.cast(record["image"], tf.float32), [height, width])
        boxes = record["boxes"] * scale
        classes = tf.cast(record["classes"], tf.int32)[:, tf.newaxis] + 1
        cls_targets, box_targets, _, cls_weights, box_weights = labeler.label_anchors(anchor_boxes, boxes, classes)
        return image, {"cls_targets": cls_targets, "box_targets": box_targets, "cls_weights": cls_weights, "box_weights": box_weights}

    records = read_dataset(paths.split_pattern("train", context.prepared_dir))
    return next(iter(records.repeat().map(label).batch(batch_size, drop_remainder=True)))


def _flatten_levels(outputs: dict[str, tf.Tensor], last_dim: int | None) -> tf.Tensor:
    """Concatenate per-level [B, H, W, A * last_dim] maps into [B, N, last_dim] (or [B, N] when last_dim is None)."""
    parts = []
    for level in sorted(outputs, key=int):
        value = outputs[level]
        batch = tf.shape(value)[0]
        parts.append(tf.reshape(value, [batch, -1] if last_dim is None else [batch, -1, last_dim]))
    return tf.concat(parts, axis=1)


class PeerLoss:
    """Model Garden's RetinaNet training loss: focal class loss plus weighted Huber box loss."""

    def __init__(self, num_classes: int) -> None:
        from official.vision.losses import focal_loss

        self.num_classes = num_classes
        self.class_loss = focal_loss.FocalLoss(FOCAL_ALPHA, FOCAL_GAMMA, reduction=tf_keras.losses.Reduction.SUM)
        self.box_loss = tf_keras.losses.Huber(HUBER_DELTA, reduction=tf_keras.losses.Reduction.SUM)

    def __call__(self, outputs: dict[str, Any], labels: dict[str, Any]) -> tf.Tensor:
        positives = tf.reduce_sum(labels["box_weights"]) + 1.0
        class_true = tf.one_hot(_flatten_levels(labels["cls_targets"], None), self.num_classes)
        class_pred = _flatten_levels(outputs["cls_outputs"], self.num_classes)
        box_true = _flatten_levels(labels["box_targets"], 4)
        box_pred = _flatten_levels(outputs["box_outputs"], 4)
        class_loss = self.class_loss(class_true, class_pred, sample_weight=labels["cls_weights"] / positives)
        box_loss = self.box_loss(box_true, box_pred, sample_weight=labels["box_weights"] / positives)
        return class_loss + BOX_LOSS_WEIGHT * box_loss


def peer_step(context: Context, model_cfg: Any) -> train_steps.TrainStep:
    """Build the peer's train step, shaped like the Trainer's (tape, loss plus weight decay, optimizer update)."""
    num_classes = context.num_classes + 1
    model = build_peer(model_cfg, num_classes)
    loss_fn = PeerLoss(num_classes)
    optimizer = make_optimizer(context.config.train)
    batch_size = int(context.config.train.batch_size)

    @tf.function
    def step_fn(iterator: Any) -> tf.Tensor:
        images, labels = next(iterator)
        with tf.GradientTape() as tape:
            outputs = model(images / 127.5 - 1.0, training=True)
            loss = loss_fn(outputs, labels)
            if model.losses:
                loss += tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    batch = peer_batch(context, model_cfg, batch_size)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    logger.info("peer: %d parameters", model.count_params())
    return train_steps.TrainStep("Model Garden RetinaNet", step_fn, iterator, batch_size, None, batch, model.count_params())


def _method(context: Context, budget: Budget, model_cfg: Any) -> str:
    size = train_steps.input_size(model_cfg)
    return (
        f"Both networks take {size[0]}x{size[1]} px at width multiplier {model_cfg.width_multiplier}, batch "
        f"{context.config.train.batch_size}, optimizer {context.config.train.optimizer}, on the same first training batch. "
        "Ours is the Trainer's `_train_step_fn`. The peer is `official.vision.modeling.retinanet_model.RetinaNetModel` "
        f"with `backbones.MobileNet(model_id='MobileNetV1', filter_size_scale={model_cfg.width_multiplier})`, "
        f"`decoders.fpn.FPN` (levels {MIN_LEVEL}-{MAX_LEVEL}, {HEAD_FILTERS} filters, separable) and "
        f"`heads.RetinaNetHead` ({HEAD_CONVS} convolutions of {HEAD_FILTERS} filters, separable, "
        f"{NUM_SCALES * len(ASPECT_RATIOS)} anchors per location), trained with Model Garden's RetinaNet loss "
        f"(focal alpha {FOCAL_ALPHA}, gamma {FOCAL_GAMMA}, Huber delta {HUBER_DELTA}, box weight {BOX_LOSS_WEIGHT:g}). "
        f"{plural(budget.repeats, 'round')} of {plural(budget.steps_per_repeat, 'step')} each, after "
        f"{plural(budget.warmup, 'warm-up repeat')}. "
        "The ratio is the median over rounds of (our images/s / peer images/s in the same round)."
    )


def measure(context: Context, budget: Budget, reference: train_steps.TrainStep) -> Section:
    """Time `reference` (our tf_same SSD step) and the peer's step in the same rounds."""
    section = new_section(2)
    model_cfg = train_steps.model_config(context, padding=reference.name)
    peer = peer_step(context, model_cfg)
    ours_name = f"ours: SSD MobileNet v1 ({reference.name})"
    timings = time_rounds(
        {
            ours_name: train_steps.step_task(reference, budget.steps_per_repeat),
            peer.name: train_steps.step_task(peer, budget.steps_per_repeat),
        },
        budget.repeats,
        budget.warmup,
    )
    ratio = rate_ratio(timings[ours_name], timings[peer.name])

    parameters = {ours_name: reference.parameters, peer.name: peer.parameters}
    rows = [
        [
            name,
            f"{parameters[name]:,}",
            f"{1000.0 * timing.median_seconds / budget.steps_per_repeat:.0f}",
            f"{timing.rate:.1f}",
            spread([timing.items_per_repeat / s for s in timing.seconds]),
        ]
        for name, timing in timings.items()
    ]
    section.method = [_method(context, budget, model_cfg)]
    section.tables.append(Table(["network", "parameters", "median step (ms)", "images/s (median)", "images/s (range)"], rows))
    section.notes.append(
        f"The peer predicts from stride 8 (level {MIN_LEVEL}) upwards, ours from stride 16, so the peer's head "
        "reads a map 4 times larger at its lowest level."
    )
    section.headline = f"ours / peer = {ratio:.2f}"
    section.verdict = MET if ratio >= MIN_RATIO else MISSED
    if section.verdict == MISSED:
        traced = train_steps.profile_steps(context, {ours_name: reference, peer.name: peer}, budget.profile_steps, "peer")
        section.profiles.append(
            Profile(
                f"ours against the peer, {plural(budget.profile_steps, 'train step')} each",
                profiles.op_comparison_table(traced),
                "Executor time by op type from the TensorFlow profiler; rows are our top op types.",
            )
        )
    return section
