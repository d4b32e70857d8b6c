"""Recompute batch-norm statistics of a trained model ("precise BN").

During training, each batch-norm layer keeps an exponential moving average
of its batch statistics. After a short run those averages still mix in
statistics of weights from hundreds of steps earlier. The error compounds
through the 35 batch-norm layers of SSD MobileNet v1, so the inference-mode
network can output nearly the same detections for every image although the
training loss is low. The remedy, known as precise BN, freezes the weights,
runs training-mode forward passes over a number of batches, and sets each
layer's moving mean and variance to the average of its per-batch statistics.
"""

from __future__ import annotations

import logging
from typing import Iterable

import tensorflow as tf
import tf_keras

logger = logging.getLogger(__name__)


def batch_norm_layers(model: tf_keras.Model) -> list[tf_keras.layers.BatchNormalization]:
    """Return the model's batch-norm layers, in graph order."""
    return [layer for layer in model.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]


def _probe(model: tf_keras.Model, layers: list[tf_keras.layers.BatchNormalization]) -> tf_keras.Model:
    """Build a model that outputs the input tensor of each batch-norm layer."""
    return tf_keras.Model(model.input, [layer.input for layer in layers], name="batch_norm_inputs")


def recalibrate(model: tf_keras.Model, images: Iterable[tf.Tensor], num_batches: int) -> int:
    """Set every batch-norm layer's moving statistics from `num_batches` batches.

    `images` yields model inputs [B, H, W, 3]. The forward passes run in
    training mode, so each layer receives the inputs it received during training
    (normalised by batch statistics upstream). The moving mean becomes the
    mean of the per-batch means and the moving variance the mean of the
    per-batch variances. Trainable weights are not changed.

    Returns the number of batches used; 0 leaves the model untouched.
    Raises ValueError when `num_batches` is negative.
    """
    if num_batches < 0:
        raise ValueError(f"num_batches must be >= 0, got {num_batches}")
    layers = batch_norm_layers(model)
    if num_batches == 0 or not layers:
        return 0
    # The probe shares the model's layers, so its training-mode calls also
    # move the averages. They are overwritten below.
    probe = _probe(model, layers)

    @tf.function(reduce_retracing=True)
    def batch_moments(batch: tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
        inputs = probe(batch, training=True)
        # A model with one output returns a bare tensor, not a list.
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        return [tf.nn.moments(tf.cast(x, tf.float32), axes=[0, 1, 2]) for x in inputs]

    sums: list[list[tf.Tensor]] | None = None
    used = 0
    for batch in images:
        if used == num_batches:
            break
        moments = batch_moments(batch)
        if sums is None:
            sums = [[mean, variance] for mean, variance in moments]
        else:
            for total, (mean, variance) in zip(sums, moments):
                total[0] += mean
                total[1] += variance
        used += 1
    if sums is None:
        logger.warning("no input batches for batch-norm recalibration, so the moving averages are kept")
        return 0
    for layer, (mean_sum, variance_sum) in zip(layers, sums):
        layer.moving_mean.assign(mean_sum / used)
        layer.moving_variance.assign(variance_sum / used)
    logger.info("recalibrated %d batch-norm layers on %d batches", len(layers), used)
    return used
