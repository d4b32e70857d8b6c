"""Precise-BN recalibration: exact statistics on small models the tests build."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from blindspots.training import batch_norm


def one_layer_model() -> tf_keras.Model:
    inputs = tf_keras.Input(shape=(2, 2, 3))
    outputs = tf_keras.layers.BatchNormalization(momentum=0.99, name="bn")(inputs)
    return tf_keras.Model(inputs, outputs)


def two_layer_model() -> tf_keras.Model:
    """BN -> fixed 1x1 conv -> BN, so the second layer's input depends on the first's mode."""
    inputs = tf_keras.Input(shape=(2, 2, 2))
    x = tf_keras.layers.BatchNormalization(momentum=0.99, name="bn_1")(inputs)
    x = tf_keras.layers.Conv2D(
        2, 1, use_bias=False, kernel_initializer=tf_keras.initializers.Constant([[1.0, 2.0], [0.5, -1.0]]), name="mix"
    )(x)
    outputs = tf_keras.layers.BatchNormalization(momentum=0.99, name="bn_2")(x)
    return tf_keras.Model(inputs, outputs)


def random_batches(shape, count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(loc=3.0, scale=2.0, size=shape).astype(np.float32) for _ in range(count)]


def test_statistics_average_batch_moments():
    model = one_layer_model()
    batches = random_batches((4, 2, 2, 3), 3)
    used = batch_norm.recalibrate(model, iter(batches), 3)
    layer = model.get_layer("bn")
    expected_mean = np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0)
    expected_variance = np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0)
    assert used == 3
    np.testing.assert_allclose(layer.moving_mean.numpy(), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), expected_variance, rtol=1e-5)


def test_stops_after_num_batches():
    model = one_layer_model()
    batches = random_batches((4, 2, 2, 3), 5)
    assert batch_norm.recalibrate(model, iter(batches), 2) == 2
    expected_mean = np.mean([b.mean(axis=(0, 1, 2)) for b in batches[:2]], axis=0)
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), expected_mean, rtol=1e-5)


def test_second_layer_gets_training_inputs():
    model = two_layer_model()
    batches = random_batches((3, 2, 2, 2), 2, seed=1)
    batch_norm.recalibrate(model, iter(batches), 2)
    kernel = np.array([[1.0, 2.0], [0.5, -1.0]], dtype=np.float64)
    means, variances = [], []
    for batch in batches:
        data = batch.astype(np.float64)
        # bn_1 in training mode: gamma 1, beta 0, epsilon 1e-3.
        normalised = (data - data.mean(axis=(0, 1, 2))) / np.sqrt(data.var(axis=(0, 1, 2)) + 1e-3)
        mixed = normalised @ kernel
        means.append(mixed.mean(axis=(0, 1, 2)))
        variances.append(mixed.var(axis=(0, 1, 2)))
    layer = model.get_layer("bn_2")
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean(means, axis=0), atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean(variances, axis=0), rtol=1e-4)


def test_trainable_weights_unchanged():
    model = two_layer_model()
    before = [w.numpy().copy() for w in model.trainable_weights]
    batch_norm.recalibrate(model, iter(random_batches((3, 2, 2, 2), 2)), 2)
    for old, new in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_inference_matches_training_one_batch():
    """With one batch, inference normalises with exactly that batch's statistics."""
    model = one_layer_model()
    batch = random_batches((8, 2, 2, 3), 1)[0]
    batch_norm.recalibrate(model, iter([batch]), 1)
    training = model(batch, training=True).numpy()
    inference = model(batch, training=False).numpy()
    np.testing.assert_allclose(inference, training, rtol=1e-3, atol=1e-4)


def test_zero_batches_changes_nothing():
    model = one_layer_model()
    assert batch_norm.recalibrate(model, iter(random_batches((4, 2, 2, 3), 2)), 0) == 0
    np.testing.assert_array_equal(model.get_layer("bn").moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(model.get_layer("bn").moving_variance.numpy(), np.ones(3))


def test_empty_input_keeps_averages():
    model = one_layer_model()
    layer = model.get_layer("bn")
    layer.moving_mean.assign([1.0, 2.0, 3.0])
    assert batch_norm.recalibrate(model, iter([]), 4) == 0
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(3))


def test_negative_batches_rejected():
    with pytest.raises(ValueError, match="num_batches must be >= 0, got -1"):
        batch_norm.recalibrate(one_layer_model(), iter([]), -1)


def test_model_without_batch_norm():
    inputs = tf_keras.Input(shape=(2, 2, 3))
    model = tf_keras.Model(inputs, tf_keras.layers.Conv2D(1, 1)(inputs))
    assert batch_norm.batch_norm_layers(model) == []
    assert batch_norm.recalibrate(model, iter([tf.zeros([1, 2, 2, 3])]), 1) == 0
