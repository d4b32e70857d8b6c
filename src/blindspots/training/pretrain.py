"""Backbone warm start: classify light crops before SSD training.

The reference detector starts from ImageNet weights, which cannot be
fetched everywhere. Trained from scratch by the SSD loss alone, the
backbone keeps almost no lamp colour at stride 16: a linear probe at
`Conv2d_11_pointwise` separates Red from Green lights no better than it
does on random weights. This phase first trains the MobileNet v1 backbone
to sort square crops of the training frames into the dataset's classes
plus background, then copies its weights into the detector. Its pooled
features come from both SSD backbone feature maps, so the colour has to
survive down to stride 16.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from blindspots.modeling import geometry
from blindspots.modeling.mobilenet_v1 import build_backbone
from blindspots.training.input_pipeline import resize_to

logger = logging.getLogger(__name__)

BACKBONE_PREFIX = "Conv2d_"
# Attempts per background crop to find a window free of light centres.
BACKGROUND_ATTEMPTS = 10


@dataclass
class LightCrops:
    """Square crops and their labels; label `num_classes` is background."""

    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int32 [N]

    def class_counts(self, num_labels: int) -> list[int]:
        return [int(count) for count in np.bincount(self.labels, minlength=num_labels)]


@dataclass
class PretrainResult:
    steps: int
    crops: int
    crops_by_label: list[int]
    final_loss: float
    final_accuracy: float
    seconds: float
    variables_copied: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "crops": self.crops,
            "crops_by_label": self.crops_by_label,
            "final_loss": self.final_loss,
            "final_accuracy": self.final_accuracy,
            "seconds": self.seconds,
            "variables_copied": self.variables_copied,
        }


def _window(padded: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return padded[top : top + size, left : left + size]


def sample_crops(
    records: tf.data.Dataset,
    num_classes: int,
    input_size: tuple[int, int],
    crop_size: int,
    jitter: int,
    crops_per_light: int,
    backgrounds_per_image: int,
    seed: int,
) -> LightCrops:
    """Cut `crops_per_light` crops around every light and background crops from each frame.

    Frames are first resized to `input_size`, the detector's input, so a
    light has the same size in pixels as during SSD training. A light crop
    is centred on the light's centre shifted by up to `jitter` pixels on
    each axis. Where a crop reaches past the frame, it takes mirrored
    content (numpy "reflect"). A background crop lies inside the frame and holds no
    light centre. `records` yields the dicts of `records.read_dataset`.
    Raises ValueError when a frame is smaller than `crop_size`.
    """
    rng = np.random.default_rng(seed)
    height, width = input_size
    if crop_size > min(height, width):
        raise ValueError(
            f"train.pretrain.crop_size {crop_size} exceeds the model input {height} x {width}; "
            "choose a crop size no larger than the input's shorter side"
        )
    scale = np.array([height, width, height, width], np.float32)
    images: list[np.ndarray] = []
    labels: list[int] = []
    for record in records.map(lambda r: (resize_to(tf.cast(r["image"], tf.float32), input_size), r["boxes"], r["classes"])):
        frame = np.clip(np.rint(record[0].numpy()), 0, 255).astype(np.uint8)
        boxes = record[1].numpy() * scale
        classes = record[2].numpy()
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1) if len(boxes) else np.zeros((0, 2))
        padded = np.pad(frame, ((crop_size, crop_size), (crop_size, crop_size), (0, 0)), mode="reflect")
        for (centre_y, centre_x), label in zip(centres, classes):
            for _ in range(crops_per_light):
                offset_y, offset_x = rng.integers(-jitter, jitter + 1, size=2)
                top = int(round(centre_y)) + int(offset_y) - crop_size // 2 + crop_size
                left = int(round(centre_x)) + int(offset_x) - crop_size // 2 + crop_size
                images.append(_window(padded, top, left, crop_size))
                labels.append(int(label))
        for _ in range(backgrounds_per_image):
            for _ in range(BACKGROUND_ATTEMPTS):
                top = int(rng.integers(0, height - crop_size + 1))
                left = int(rng.integers(0, width - crop_size + 1))
                inside = (
                    (centres[:, 0] >= top) & (centres[:, 0] < top + crop_size)
                    & (centres[:, 1] >= left) & (centres[:, 1] < left + crop_size)
                )
                if not inside.any():
                    images.append(frame[top : top + crop_size, left : left + crop_size])
                    labels.append(num_classes)
                    break
    if not images:
        return LightCrops(np.zeros((0, crop_size, crop_size, 3), np.uint8), np.zeros((0,), np.int32))
    return LightCrops(np.stack(images), np.asarray(labels, np.int32))


def build_crop_classifier(model_cfg: Any, num_classes: int, crop_size: int) -> tf_keras.Model:
    """MobileNet v1 with a linear classifier over pooled stride-16 and stride-32 features.

    The backbone layers have the detector's names, padding and width, so
    their weights copy across by name. Outputs logits [B, num_classes + 1],
    the last column for background.
    """
    images = tf_keras.Input(shape=(crop_size, crop_size, 3), name="crops")
    scaled = tf_keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(images)
    endpoints = build_backbone(scaled, model_cfg)
    pooled = [
        tf_keras.layers.GlobalAveragePooling2D(name=f"pool_{name}")(endpoints[name]) for name in geometry.FEATURE_LAYERS[:2]
    ]
    features = tf_keras.layers.Concatenate(name="pooled_features")(pooled)
    logits = tf_keras.layers.Dense(num_classes + 1, name="crop_logits")(features)
    return tf_keras.Model(images, logits, name="crop_classifier")


def copy_backbone(source: tf_keras.Model, target: tf_keras.Model) -> int:
    """Copy every `Conv2d_*` layer's weights from `source` to the same-named layer of `target`.

    Returns the number of variables copied. Raises ValueError when a layer
    is missing from `target` or its weights have other shapes.
    """
    copied = 0
    for layer in source.layers:
        if not layer.name.startswith(BACKBONE_PREFIX):
            continue
        try:
            other = target.get_layer(layer.name)
        except ValueError as error:
            raise ValueError(f"backbone layer {layer.name} is missing from model {target.name}") from error
        weights = layer.get_weights()
        shapes = [tuple(w.shape) for w in weights]
        other_shapes = [tuple(w.shape) for w in other.get_weights()]
        if shapes != other_shapes:
            raise ValueError(f"backbone layer {layer.name}: shapes {shapes} in {source.name} but {other_shapes} in {target.name}")
        other.set_weights(weights)
        copied += len(weights)
    return copied


def _sampling_probabilities(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Per-crop probabilities that draw every present label equally often."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()


def pretrain_backbone(
    detector: tf_keras.Model,
    records: tf.data.Dataset,
    model_cfg: Any,
    pretrain_cfg: Any,
    num_classes: int,
    seed: int,
) -> PretrainResult:
    """Train the crop classifier from the detector's backbone and copy the result back.

    Batches draw crops with class-balanced probabilities, so rare classes
    such as Yellow are seen as often as Green, and flip half of them left
    to right. Adam with a cosine decay from `pretrain_cfg.learning_rate`.
    """
    started = time.perf_counter()
    steps = int(pretrain_cfg.steps)
    crop_size = int(pretrain_cfg.crop_size)
    input_size = (int(model_cfg.input_size[0]), int(model_cfg.input_size[1]))
    crops = sample_crops(
        records,
        num_classes,
        input_size,
        crop_size,
        int(pretrain_cfg.jitter),
        int(pretrain_cfg.crops_per_light),
        int(pretrain_cfg.backgrounds_per_image),
        seed,
    )
    num_labels = num_classes + 1
    by_label = crops.class_counts(num_labels)
    if len(crops.labels) == 0:
        raise ValueError("train.pretrain: the training split gave no crops; set train.pretrain.steps: 0 or add training frames")
    logger.info("pretraining the backbone for %d steps on %d crops (by label, background last: %s)", steps, len(crops.labels), by_label)

    classifier = build_crop_classifier(model_cfg, num_classes, crop_size)
    copy_backbone(detector, classifier)
    optimizer = tf_keras.optimizers.Adam(tf_keras.optimizers.schedules.CosineDecay(float(pretrain_cfg.learning_rate), steps))

    @tf.function
    def train_step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = classifier(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            total = loss + (tf.add_n(classifier.losses) if classifier.losses else 0.0)
        gradients = tape.gradient(total, classifier.trainable_variables)
        optimizer.apply_gradients(zip(gradients, classifier.trainable_variables))
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return loss, tf.reduce_mean(correct)

    rng = np.random.default_rng(seed + 1)
    probabilities = _sampling_probabilities(crops.labels, num_labels)
    batch_size = int(pretrain_cfg.batch_size)
    log_every = max(1, steps // 10)
    tail = max(1, steps // 10)
    losses: list[float] = []
    accuracies: list[float] = []
    for step in range(1, steps + 1):
        index = rng.choice(len(crops.labels), batch_size, p=probabilities)
        batch = crops.images[index].astype(np.float32)
        flip = rng.random(batch_size) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        loss, accuracy = train_step(tf.constant(batch), tf.constant(crops.labels[index]))
        losses.append(float(loss.numpy()))
        accuracies.append(float(accuracy.numpy()))
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"pretraining loss became {losses[-1]} at step {step}. Lower train.pretrain.learning_rate.")
        if step % log_every == 0 or step == steps:
            logger.info("pretrain step %d/%d: loss %.3f, batch accuracy %.3f", step, steps, losses[-1], accuracies[-1])

    copied = copy_backbone(classifier, detector)
    seconds = time.perf_counter() - started
    result = PretrainResult(
        steps=steps,
        crops=int(len(crops.labels)),
        crops_by_label=by_label,
        final_loss=float(np.mean(losses[-tail:])),
        final_accuracy=float(np.mean(accuracies[-tail:])),
        seconds=seconds,
        variables_copied=copied,
    )
    logger.info(
        "pretrained the backbone in %.1f s: loss %.3f, accuracy %.3f over the last %d batches; copied %d variables",
        seconds, result.final_loss, result.final_accuracy, tail, copied,
    )
    return result
