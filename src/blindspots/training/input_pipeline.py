"""tf.data input pipeline: prepared records -> augmented, labelled batches.

Augmentation draws from stateless random ops seeded by (seed, example
index), so a run is reproducible and a resumed run reads the same stream:
the iterator state, checkpointed with the model, carries the index.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from blindspots.modeling.targets import AnchorLabeler
from blindspots.training import sampling


def horizontal_flip(image: tf.Tensor, boxes: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Flip image and normalised `[ymin, xmin, ymax, xmax]` boxes with probability 0.5."""
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    flipped_boxes = tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], axis=1)
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    boxes = tf.cond(flip, lambda: flipped_boxes, lambda: boxes)
    return image, boxes


def random_crop(
    image: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    seed: tf.Tensor,
    min_side: float,
    output_size: tuple[int, int],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """SSD-style crop: a random window keeping >= `min_side` of each side.

    Boxes whose centre falls outside the window are dropped; the rest are
    clipped to it. The window is resized to `output_size`, so the output
    has the model input size. Boxes are normalised.
    """
    sizes = tf.random.stateless_uniform([2], seed=seed, minval=min_side, maxval=1.0)
    offsets = tf.random.stateless_uniform([2], seed=seed + 1) * (1.0 - sizes)
    window = tf.concat([offsets, offsets + sizes], axis=0)
    image = tf.image.crop_and_resize(
        tf.cast(image[tf.newaxis], tf.float32), window[tf.newaxis], [0], output_size, method="bilinear"
    )[0]

    centre_y = (boxes[:, 0] + boxes[:, 2]) / 2.0
    centre_x = (boxes[:, 1] + boxes[:, 3]) / 2.0
    keep = (centre_y > window[0]) & (centre_y < window[2]) & (centre_x > window[1]) & (centre_x < window[3])
    boxes = tf.boolean_mask(boxes, keep)
    classes = tf.boolean_mask(classes, keep)
    scale = tf.concat([sizes, sizes], axis=0)
    origin = tf.concat([offsets, offsets], axis=0)
    boxes = tf.clip_by_value((boxes - origin) / scale, 0.0, 1.0)
    return image, boxes, classes


def resize_to(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Bilinear resize to `size`, skipped when the image already has it.

    A bilinear resize to the same size returns the input values unchanged,
    so the skip saves time without changing results. Prepared records
    usually already have the model input size.
    """
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(size, tf.int32)))
    return tf.cond(same, lambda: image, lambda: tf.image.resize(image, size, method="bilinear"))


def make_example_fn(
    labeler: AnchorLabeler,
    input_size: tuple[int, int],
    augment_cfg: Any | None,
    seed: int,
):
    """Return a map function (index, record) -> (image, targets)."""
    height, width = input_size
    scale = tf.constant([height, width, height, width], tf.float32)

    def example_fn(index: tf.Tensor, record: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        image = tf.cast(record["image"], tf.float32)
        boxes = record["boxes"]
        classes = record["classes"]
        example_seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
        if augment_cfg is not None and augment_cfg.horizontal_flip:
            image, boxes = horizontal_flip(image, boxes, example_seed)
        if augment_cfg is not None and augment_cfg.random_crop:
            image, boxes, classes = random_crop(
                image, boxes, classes, example_seed + 7, float(augment_cfg.crop_min_side), input_size
            )
        else:
            image = resize_to(image, input_size)
        image = tf.ensure_shape(image, [height, width, 3])
        targets = labeler(boxes * scale, classes)
        return image, targets

    return example_fn


def build_dataset(
    records: tf.data.Dataset,
    labeler: AnchorLabeler,
    input_size: tuple[int, int],
    batch_size: int,
    seed: int,
    augment_cfg: Any | None = None,
    shuffle_buffer: int = 0,
    repeat: bool = True,
    cache: bool = True,
    repeat_counts: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Turn decoded records into batches of (images [B,H,W,3] 0-255, targets).

    `records` yields the dicts of `blindspots.data.records.read_dataset`.
    `repeat_counts`, from `sampling.image_repeat_counts`, repeats the i-th
    record that many times per epoch.
    """
    dataset = records
    # Repeating after the cache keeps one decoded copy of each image in
    # memory; the repeats are re-emitted from it every epoch.
    if cache:
        dataset = dataset.cache()
    if repeat_counts is not None:
        dataset = sampling.repeat_images(dataset, repeat_counts)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.enumerate()
    dataset = dataset.map(make_example_fn(labeler, input_size, augment_cfg, seed), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    return dataset.prefetch(tf.data.AUTOTUNE)


def count_examples(records: tf.data.Dataset) -> int:
    return int(records.reduce(np.int64(0), lambda count, _: count + 1).numpy())
