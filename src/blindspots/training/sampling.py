"""Repeat-factor sampling: show training images with rare classes more often.

BSTLD is dominated by Green and Red lights, and Yellow and Off make up a few
percent of the boxes. Repeat-factor sampling (Gupta et al., "LVIS: A Dataset
for Large Vocabulary Instance Segmentation", CVPR 2019) repeats each image
within an epoch by a factor derived from its rarest class:

    f_c = share of training images that contain class c
    r_c = max(1, sqrt(t / f_c))
    r_i = max(r_c for the classes c in image i), and 1 for an image without boxes

where t is `train.repeat_factor_threshold`. Classes present in more than a
share t of the images are not repeated. Fractional factors are rounded up
or down at random, with a seeded generator, so that the expected count is
r_i and a run is reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def image_class_sets(records: tf.data.Dataset) -> list[np.ndarray]:
    """Read the distinct class ids of every record, in dataset order."""
    class_ids = records.map(lambda record: record["classes"], num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return [np.unique(classes) for classes in class_ids.as_numpy_iterator()]


def class_repeat_factors(class_sets: Sequence[np.ndarray], num_classes: int, threshold: float) -> np.ndarray:
    """Return r_c = max(1, sqrt(t / f_c)) per class, and 1 for a class that no image contains."""
    if not class_sets:
        raise ValueError("repeat-factor sampling found no training images. Check that the train split of data/prepared has records.")
    images_with_class = np.zeros(num_classes, np.int64)
    for classes in class_sets:
        images_with_class[classes] += 1
    frequency = images_with_class / len(class_sets)
    factors = np.ones(num_classes, np.float64)
    present = frequency > 0
    factors[present] = np.maximum(1.0, np.sqrt(threshold / frequency[present]))
    return factors


def image_repeat_counts(
    class_sets: Sequence[np.ndarray], num_classes: int, threshold: float, seed: int
) -> np.ndarray:
    """Return how many times each image appears per epoch (an int >= 1 each).

    The count is floor(r_i) plus one more with probability r_i - floor(r_i).
    """
    factors = class_repeat_factors(class_sets, num_classes, threshold)
    image_factors = np.array([factors[classes].max() if len(classes) else 1.0 for classes in class_sets])
    whole = np.floor(image_factors)
    rng = np.random.default_rng(seed)
    extra = rng.random(len(image_factors)) < image_factors - whole
    counts = (whole + extra).astype(np.int64)
    logger.info(
        "repeat-factor sampling at threshold %g: class factors %s, %d images -> %d per epoch",
        threshold,
        np.round(factors, 2).tolist(),
        len(counts),
        int(counts.sum()),
    )
    return counts


def repeat_images(records: tf.data.Dataset, counts: np.ndarray) -> tf.data.Dataset:
    """Repeat the i-th record `counts[i]` times in place, keeping dataset order."""
    counts_tensor = tf.constant(counts, tf.int64)

    def repeat_one(index: tf.Tensor, record: dict[str, tf.Tensor]) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensors(record).repeat(counts_tensor[index])

    return records.enumerate().flat_map(repeat_one)
