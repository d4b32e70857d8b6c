"""tf.data input: flip and crop geometry, resizing, labelled batches and seeding."""

import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

import blindspots  # noqa: F401
from blindspots.config.schema import AugmentConfig, ModelConfig
from blindspots.modeling import anchors as anchor_lib
from blindspots.modeling.targets import AnchorLabeler
from blindspots.training import input_pipeline

INPUT_SIZE = (64, 96)


def ramp_image(height: int, width: int) -> tf.Tensor:
    """Return an image whose neighbouring pixels differ, so flips and crops are visible."""
    values = np.arange(height * width * 3, dtype=np.float32).reshape(height, width, 3) % 251.0
    return tf.constant(values)


def seed_where_flip_is(flip: bool) -> tf.Tensor:
    """Return a stateless seed whose draw does (or does not) flip."""
    for index in range(100):
        seed = tf.constant([0, index], tf.int64)
        if bool(tf.random.stateless_uniform([], seed=seed) < 0.5) == flip:
            return seed
    raise AssertionError("no seed found in 100 draws")


def test_flip_mirrors_image_and_boxes():
    image = ramp_image(4, 6)
    boxes = tf.constant([[0.1, 0.2, 0.5, 0.3], [0.0, 0.0, 1.0, 1.0]])
    flipped_image, flipped_boxes = input_pipeline.horizontal_flip(image, boxes, seed_where_flip_is(True))
    np.testing.assert_array_equal(flipped_image.numpy(), image.numpy()[:, ::-1, :])
    np.testing.assert_allclose(flipped_boxes.numpy(), [[0.1, 0.7, 0.5, 0.8], [0.0, 0.0, 1.0, 1.0]], atol=1e-6)


def test_flip_skipped_by_draw():
    image = ramp_image(4, 6)
    boxes = tf.constant([[0.1, 0.2, 0.5, 0.3]])
    kept_image, kept_boxes = input_pipeline.horizontal_flip(image, boxes, seed_where_flip_is(False))
    np.testing.assert_array_equal(kept_image.numpy(), image.numpy())
    np.testing.assert_array_equal(kept_boxes.numpy(), boxes.numpy())


def crop_window(seed: tf.Tensor, min_side: float) -> np.ndarray:
    """Return the window that `random_crop` draws for `seed`, as [ymin, xmin, ymax, xmax]."""
    sizes = tf.random.stateless_uniform([2], seed=seed, minval=min_side, maxval=1.0).numpy()
    offsets = (tf.random.stateless_uniform([2], seed=seed + 1) * (1.0 - sizes)).numpy()
    return np.concatenate([offsets, offsets + sizes])


def test_crop_maps_and_drops_boxes():
    # A window that leaves room above and to the left of it.
    seed, window = next(
        (seed, window)
        for seed in (tf.constant([3, index], tf.int64) for index in range(100))
        for window in [crop_window(seed, 0.5)]
        if window[0] > 0.05 and window[1] > 0.05
    )
    centre_y, centre_x = (window[0] + window[2]) / 2, (window[1] + window[3]) / 2
    inside = [centre_y - 0.05, centre_x - 0.02, centre_y + 0.05, centre_x + 0.02]
    # Centre inside the window, but the box crosses its top-left corner: clipped.
    straddling = [window[0] - 0.02, window[1] - 0.02, window[0] + 0.06, window[1] + 0.06]
    # Centre before the window: dropped with its class.
    outside = [0.0, 0.0, window[0] / 2, window[1] / 2]
    boxes = tf.constant([inside, straddling, outside], tf.float32)
    classes = tf.constant([1, 2, 3], tf.int64)

    image, cropped, kept_classes = input_pipeline.random_crop(ramp_image(40, 60), boxes, classes, seed, 0.5, INPUT_SIZE)

    size = window[2:] - window[:2]
    expected_inside = (np.array(inside) - np.tile(window[:2], 2)) / np.tile(size, 2)
    expected_straddling = np.clip((np.array(straddling) - np.tile(window[:2], 2)) / np.tile(size, 2), 0.0, 1.0)
    assert image.shape == (*INPUT_SIZE, 3)
    np.testing.assert_array_equal(kept_classes.numpy(), [1, 2])
    np.testing.assert_allclose(cropped.numpy(), [expected_inside, expected_straddling], atol=1e-5)
    assert cropped.numpy()[1, 0] == 0.0
    assert cropped.numpy()[1, 1] == 0.0


def test_crop_without_boxes():
    empty = tf.zeros([0, 4], tf.float32)
    image, boxes, classes = input_pipeline.random_crop(
        ramp_image(40, 60), empty, tf.zeros([0], tf.int64), tf.constant([1, 2], tf.int64), 0.7, INPUT_SIZE
    )
    assert image.shape == (*INPUT_SIZE, 3)
    assert boxes.shape == (0, 4)
    assert classes.shape == (0,)


def test_resize_same_size_is_identity():
    image = ramp_image(*INPUT_SIZE)
    np.testing.assert_array_equal(input_pipeline.resize_to(image, INPUT_SIZE).numpy(), image.numpy())


def test_resize_other_size_is_bilinear():
    image = ramp_image(32, 48)
    resized = input_pipeline.resize_to(image, INPUT_SIZE)
    expected = tf.image.resize(image, INPUT_SIZE, method="bilinear")
    assert resized.shape == (*INPUT_SIZE, 3)
    np.testing.assert_array_equal(resized.numpy(), expected.numpy())


def labeler() -> AnchorLabeler:
    cfg = OmegaConf.structured(ModelConfig)
    cfg.input_size = list(INPUT_SIZE)
    return AnchorLabeler(anchor_lib.generate_anchors(INPUT_SIZE, cfg), num_classes=4, match_iou=0.5)


def records(count: int) -> tf.data.Dataset:
    """Return decoded-record dicts with one 12 x 20 px box per image and class index % 4."""
    images = np.stack([np.full((*INPUT_SIZE, 3), 10 * i, np.uint8) for i in range(count)])
    boxes = np.tile(np.array([[[0.25, 0.25, 0.25 + 12 / 64, 0.25 + 20 / 96]]], np.float32), (count, 1, 1))
    classes = np.arange(count, dtype=np.int64)[:, None] % 4
    return tf.data.Dataset.from_tensor_slices({"image": images, "boxes": boxes, "classes": classes})


def test_batch_shapes_and_positives():
    anchor_labeler = labeler()
    augment = OmegaConf.structured(AugmentConfig)
    dataset = input_pipeline.build_dataset(records(6), anchor_labeler, INPUT_SIZE, 4, seed=0, augment_cfg=augment)
    images, targets = next(iter(dataset))
    num_anchors = int(anchor_labeler.anchors.num_boxes())
    assert images.shape == (4, *INPUT_SIZE, 3)
    assert targets["class_targets"].shape == (4, num_anchors, 4)
    assert targets["box_targets"].shape == (4, num_anchors, 4)
    # The forced match gives every ground-truth box at least one positive anchor.
    assert np.all(targets["positive"].numpy().sum(axis=1) >= 1)
    # A positive anchor has exactly one class, and a background anchor has none.
    per_anchor = targets["class_targets"].numpy().sum(axis=2)
    np.testing.assert_array_equal(per_anchor, targets["positive"].numpy())


@pytest.mark.parametrize("random_crop", [False, True])
def test_same_seed_same_stream(random_crop):
    anchor_labeler = labeler()
    augment = OmegaConf.structured(AugmentConfig)
    augment.random_crop = random_crop

    def first_batches(seed: int) -> list[np.ndarray]:
        dataset = input_pipeline.build_dataset(
            records(6), anchor_labeler, INPUT_SIZE, 2, seed=seed, augment_cfg=augment, shuffle_buffer=6
        )
        return [batch[1]["box_targets"].numpy() for batch in dataset.take(6)]

    first, again, other = first_batches(0), first_batches(0), first_batches(1)
    for left, right in zip(first, again):
        np.testing.assert_array_equal(left, right)
    assert any(not np.array_equal(left, right) for left, right in zip(first, other))


def test_finite_pass_keeps_partial_batch():
    dataset = input_pipeline.build_dataset(records(5), labeler(), INPUT_SIZE, 2, seed=0, repeat=False)
    sizes = [int(images.shape[0]) for images, _ in dataset]
    assert sizes == [2, 2, 1]
    assert input_pipeline.count_examples(records(5)) == 5


def test_repeat_counts_repeat_images():
    # Images are filled with 10 * index, so the pixel value names the image.
    dataset = input_pipeline.build_dataset(
        records(3), labeler(), INPUT_SIZE, 1, seed=0, repeat=False, repeat_counts=np.array([1, 3, 2])
    )
    pixel_values = [int(images[0, 0, 0, 0]) for images, _ in dataset]
    assert pixel_values == [0, 10, 10, 10, 20, 20]


def ops_upstream_of(dataset: tf.data.Dataset, op: str) -> set[str]:
    """Return the op types that feed the (single) node of type `op` in the dataset graph."""
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(tf.raw_ops.DatasetToGraphV2(input_dataset=dataset._variant_tensor).numpy())  # noqa: SLF001
    nodes = {node.name: node for node in graph.node}
    (start,) = [node for node in graph.node if node.op == op]
    upstream: set[str] = set()
    pending = list(start.input)
    while pending:
        node = nodes[pending.pop().lstrip("^").split(":")[0]]
        upstream.add(node.op)
        pending.extend(node.input)
    return upstream


def test_cache_holds_each_image_once_under_repeat_counts():
    # The cache must sit before the repetition: a repeated image is then
    # stored once and re-emitted, not stored once per repeat.
    dataset = input_pipeline.build_dataset(
        records(3), labeler(), INPUT_SIZE, 1, seed=0, repeat=False, repeat_counts=np.array([1, 3, 2])
    )
    assert "CacheDatasetV2" in ops_upstream_of(dataset, "FlatMapDataset")
    assert "FlatMapDataset" not in ops_upstream_of(dataset, "CacheDatasetV2")
