"""Repeat-factor sampling: class and image factors, rounding, dataset repetition."""

import math

import numpy as np
import pytest
import tensorflow as tf

import blindspots  # noqa: F401
from blindspots.training import sampling


def class_sets(*images: list[int]) -> list[np.ndarray]:
    return [np.unique(np.array(classes, np.int64)) for classes in images]


def test_class_factors_follow_image_share():
    # Class 0 in 1 of 4 images (f = 0.25), class 1 in all 4, class 2 in none.
    images = class_sets([0, 1], [1], [1, 1], [1])
    factors = sampling.class_repeat_factors(images, 3, threshold=1.0)
    assert factors[0] == pytest.approx(math.sqrt(1.0 / 0.25))
    assert factors[1] == 1.0
    assert factors[2] == 1.0


def test_class_factors_never_below_one():
    images = class_sets([0], [0], [1], [])
    factors = sampling.class_repeat_factors(images, 2, threshold=0.1)
    np.testing.assert_array_equal(factors, [1.0, 1.0])


def test_class_factors_reject_no_images():
    with pytest.raises(ValueError, match="found no training images"):
        sampling.class_repeat_factors([], 4, threshold=0.3)


def test_image_counts_use_rarest_class():
    # Class 0 in 1 of 9 images: r = sqrt(1 / (1/9)) = 3, and class 1 in all
    # of them: r = 1. Both are whole, so no random rounding happens.
    images = class_sets([0, 1], *([[1]] * 8))
    counts = sampling.image_repeat_counts(images, 2, threshold=1.0, seed=0)
    assert counts[0] == 3
    np.testing.assert_array_equal(counts[1:], np.ones(8, np.int64))


def test_image_without_boxes_shown_once():
    # Class 0 is in 1 of 3 images (r = 1.73), and the two empty images get 1.
    images = class_sets([0], [], [])
    counts = sampling.image_repeat_counts(images, 1, threshold=1.0, seed=0)
    np.testing.assert_array_equal(counts[1:], [1, 1])
    assert counts[0] in (1, 2)


def test_image_counts_round_to_expected_value():
    # Class 0 in 1 of 2 images with t = 1: r = sqrt(2) = 1.414.
    images = class_sets(*([[0]] * 1000), *([[1, 1]] * 1000))
    counts = sampling.image_repeat_counts(images, 2, threshold=1.0, seed=0)
    rare = counts[:1000]
    assert set(rare.tolist()) == {1, 2}
    assert rare.mean() == pytest.approx(math.sqrt(2.0), abs=0.05)
    assert counts[1000:].min() == 1


def test_image_counts_seeded():
    images = class_sets(*([[0]] * 50), *([[1]] * 50))
    first = sampling.image_repeat_counts(images, 2, threshold=1.0, seed=3)
    again = sampling.image_repeat_counts(images, 2, threshold=1.0, seed=3)
    other = sampling.image_repeat_counts(images, 2, threshold=1.0, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def records_dataset(classes_per_image: list[list[int]]) -> tf.data.Dataset:
    keys = [f"frame_{index}" for index in range(len(classes_per_image))]
    classes = tf.ragged.constant(classes_per_image, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices({"key": keys, "classes": classes}).map(
        lambda record: {"key": record["key"], "classes": record["classes"]}
    )


def test_class_sets_read_from_records():
    records = records_dataset([[1, 1, 3], [], [0]])
    sets = sampling.image_class_sets(records)
    assert [s.tolist() for s in sets] == [[1, 3], [], [0]]


def test_repeat_images_in_place():
    records = records_dataset([[0], [1], [2]])
    repeated = sampling.repeat_images(records, np.array([2, 1, 3]))
    keys = [record["key"].decode() for record in repeated.as_numpy_iterator()]
    assert keys == ["frame_0", "frame_0", "frame_1", "frame_2", "frame_2", "frame_2"]


def test_repeated_stream_checkpoint_restores(tmp_path):
    # Training checkpoints the input iterator, so a resumed run must continue
    # the repeated stream where it stopped.
    records = records_dataset([[0], [1], [2]])
    iterator = iter(sampling.repeat_images(records, np.array([2, 3, 1])).repeat())
    checkpoint = tf.train.Checkpoint(iterator=iterator)
    next(iterator)
    next(iterator)
    path = checkpoint.write(str(tmp_path / "iterator"))
    after_save = [next(iterator)["key"].numpy().decode() for _ in range(4)]
    checkpoint.read(path)
    after_restore = [next(iterator)["key"].numpy().decode() for _ in range(4)]
    assert after_save == ["frame_1", "frame_1", "frame_1", "frame_2"]
    assert after_restore == after_save
