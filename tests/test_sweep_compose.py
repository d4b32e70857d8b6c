"""Crop extraction, feathering, the crop bank, compositing and crop/background sampling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from blindspots.sweep import compose


def _light_crop(crop_id: str, class_id: int, height: int, width: int, value: float) -> compose.LightCrop:
    pixels = np.full((height, width, 3), value, np.float32)
    box = np.array([3, 3, height - 3, width - 3], np.float32)
    return compose.LightCrop(crop_id, class_id, pixels, box)


def test_feather_profile_ramp_values():
    # 0.5 - 0.5 cos(pi * (d + 1) / 3): d = 0 -> 0.25, d = 1 -> 0.75, beyond -> 1.
    profile = compose.feather_profile(6, feather=2)
    np.testing.assert_allclose(profile, [0.25, 0.75, 1.0, 1.0, 0.75, 0.25], rtol=0, atol=1e-7)


def test_feather_profile_short_side():
    # Length 3: distances to the nearer edge are 0, 1, 0.
    profile = compose.feather_profile(3, feather=2)
    np.testing.assert_allclose(profile, [0.25, 0.75, 0.25], rtol=0, atol=1e-7)


def test_feather_profile_rejects_empty_side():
    with pytest.raises(ValueError, match="at least 1 pixel"):
        compose.feather_profile(0)


def test_feather_mask_corner_and_centre():
    mask = compose.feather_mask(8, 6)
    assert mask.shape == (8, 6)
    # Corner 0.25 * 0.25, middle of an edge 0.25 * 1, interior 1.
    assert mask[0, 0] == pytest.approx(0.0625, abs=1e-7)
    assert mask[0, 2] == pytest.approx(0.25, abs=1e-7)
    assert mask[4, 3] == 1.0


def test_extract_crop_margin_and_light_box():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    # Normalised [0.25, 0.2, 0.5, 0.4] on 20 x 30 px is rows 5..10, columns 6..12.
    crop = compose.extract_crop(image, np.array([0.25, 0.2, 0.5, 0.4]), "a#0", 3, margin=3)
    # Rows 5 - 3 = 2 to 10 + 3 = 13, columns 6 - 3 = 3 to 12 + 3 = 15.
    assert crop.size == (11, 12)
    np.testing.assert_array_equal(crop.pixels, image[2:13, 3:15].astype(np.float32))
    np.testing.assert_allclose(crop.light_box, [3, 3, 8, 9], atol=1e-5)
    assert crop.class_id == 3


def test_extract_crop_clips_at_border():
    image = np.zeros((20, 30, 3), np.uint8)
    # Rows 0..4, columns 0..6: no room for a margin above or left.
    crop = compose.extract_crop(image, np.array([0.0, 0.0, 0.2, 0.2]), "a#0", 0, margin=3)
    assert crop.size == (7, 9)
    np.testing.assert_allclose(crop.light_box, [0, 0, 4, 6], atol=1e-5)


def test_rescale_crop_keeps_pixels_when_size_rounds_same():
    crop = _light_crop("a", 0, 12, 8, 50.0)
    # 12 * 193 / 192 = 12.06 and 8 * 321 / 320 = 8.03 both round to the same size.
    assert compose.rescale_crop(crop, (193 / 192, 321 / 320)) is crop


def test_rescale_crop_doubles_size_and_box():
    crop = _light_crop("a", 0, 12, 8, 50.0)
    scaled = compose.rescale_crop(crop, (2.0, 2.0))
    assert scaled.size == (24, 16)
    np.testing.assert_allclose(scaled.light_box, [6, 6, 18, 10])
    # A constant image stays constant under bilinear resizing.
    np.testing.assert_allclose(scaled.pixels, 50.0, atol=1e-4)


def test_crop_bank_pads_to_largest_crop():
    bank = compose.build_crop_bank([_light_crop("a", 0, 10, 8, 200.0), _light_crop("b", 1, 12, 7, 100.0)])
    assert bank.pixels.shape == (2, 12, 8, 3)
    assert bank.masks.shape == (2, 12, 8)
    np.testing.assert_array_equal(bank.sizes, [[10, 8], [12, 7]])
    # Crop "a" is 10 rows tall, so its mask is zero on rows 10 and 11.
    assert bank.masks[0, 10:].max() == 0.0
    assert bank.masks[1, :, 7].max() == 0.0
    assert bank.ids == ("a", "b")


def test_crop_bank_rejects_empty_list():
    with pytest.raises(ValueError, match="crop list is empty"):
        compose.build_crop_bank([])


def test_composite_blends_crop_into_background():
    height, width = 20, 24
    backgrounds = tf.constant(np.stack([np.full((height, width, 3), 10.0), np.full((height, width, 3), 30.0)]), tf.float32)
    bank = compose.build_crop_bank([_light_crop("a", 0, 8, 6, 200.0), _light_crop("b", 0, 10, 7, 100.0)])
    frames = compose.composite(
        backgrounds,
        compose.crop_rgba(bank),
        tf.constant([0, 1]),
        tf.constant([0, 1]),
        tf.constant([5, 10]),
        tf.constant([7, 17]),
    ).numpy()
    assert frames.shape == (2, height, width, 3)

    # Frame 0: crop "a" (8 x 6, value 200) at rows 5..12, columns 7..12 on background 10.
    # Alpha is 1 on crop rows 2..5 and columns 2..3, so the crop pixels come through exactly.
    np.testing.assert_array_equal(frames[0, 7:11, 9:11], 200.0)
    outside = np.ones((height, width), bool)
    outside[5:13, 7:13] = False
    np.testing.assert_array_equal(frames[0][outside], 10.0)
    # Edge pixel (crop row 0, column 2): alpha 0.25 -> 10 * 0.75 + 200 * 0.25 = 57.5.
    assert frames[0, 5, 9, 0] == pytest.approx(57.5, abs=1e-4)
    # Corner (crop row 0, column 0): alpha 0.0625 -> 10 * 0.9375 + 200 * 0.0625 = 21.875.
    assert frames[0, 5, 7, 0] == pytest.approx(21.875, abs=1e-4)
    # Second ring (crop row 1, column 3): alpha 0.75 -> 10 * 0.25 + 200 * 0.75 = 152.5.
    assert frames[0, 6, 10, 0] == pytest.approx(152.5, abs=1e-4)

    # Frame 1: crop "b" (10 x 7) flush with the bottom-right corner of background 30.
    np.testing.assert_array_equal(frames[1, 12:18, 19:22], 100.0)
    assert frames[1, 9, 16, 0] == 30.0
    # Bottom-right pixel: alpha 0.0625 -> 30 * 0.9375 + 100 * 0.0625 = 34.375.
    assert frames[1, 19, 23, 0] == pytest.approx(34.375, abs=1e-4)


def test_composite_drops_overhang():
    # Crop "a" (8 x 6, value 200) at y = 16 in a 20-row frame: crop rows 0..3
    # land on frame rows 16..19 and rows 4..7 fall outside. The outside rows
    # must not pile onto the last frame row, which is crop row 3 (alpha 1
    # in the crop's interior columns 2..3).
    backgrounds = tf.constant(np.full((1, 20, 24, 3), 10.0), tf.float32)
    bank = compose.build_crop_bank([_light_crop("a", 0, 8, 6, 200.0)])
    frames = compose.composite(
        backgrounds, compose.crop_rgba(bank), tf.constant([0]), tf.constant([0]), tf.constant([16]), tf.constant([4])
    ).numpy()
    np.testing.assert_array_equal(frames[0, 19, 6:8], 200.0)
    # Crop row 0 at frame row 16, column 6: alpha 0.25 -> 57.5.
    assert frames[0, 16, 6, 0] == pytest.approx(57.5, abs=1e-4)
    np.testing.assert_array_equal(frames[0, :16], 10.0)


def _example(key: str, boxes: list[list[float]], classes: list[int], occluded: list[bool], value: int = 0) -> dict:
    return {
        "image": np.full((40, 60, 3), value, np.uint8),
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "classes": np.array(classes, np.int32),
        "occluded": np.array(occluded, bool),
        "key": key.encode("utf-8"),
        "original_size": np.array([40, 60], np.int32),
    }


def _light_examples() -> list[dict]:
    box = [0.25, 0.25, 0.5, 0.3]
    examples = [_example(f"frame{index}", [box, box], [0, 1], [False, index == 0]) for index in range(10)]
    examples.append(_example("empty", [], [], []))
    return examples


def test_select_crops_occluded_and_cap():
    crops = compose.select_light_crops(_light_examples(), per_class=3, seed=0, num_classes=3)
    classes = [crop.class_id for crop in crops]
    # Class 0 has 10 candidates, class 1 has 9 (frame0's is occluded), class 2 none.
    assert classes == [0, 0, 0, 1, 1, 1]
    assert "frame0#1" not in [crop.crop_id for crop in crops]


def test_select_light_crops_fixed_by_seed():
    first = [crop.crop_id for crop in compose.select_light_crops(_light_examples(), 3, seed=4, num_classes=2)]
    again = [crop.crop_id for crop in compose.select_light_crops(_light_examples(), 3, seed=4, num_classes=2)]
    other = [crop.crop_id for crop in compose.select_light_crops(_light_examples(), 3, seed=5, num_classes=2)]
    assert first == again
    assert first != other


def test_select_light_crops_rescales_to_input_size():
    crops = compose.select_light_crops(_light_examples()[:1], 1, seed=0, num_classes=2, input_size=(80, 120))
    # Frame 40 x 60 -> 80 x 120. The light is rows 10..20, columns 15..18,
    # so the crop is 16 x 9 px and doubles to 32 x 18.
    assert crops[0].size == (32, 18)


def test_select_light_crops_rejects_unknown_class():
    examples = [_example("bad", [[0.1, 0.1, 0.3, 0.3]], [5], [False])]
    with pytest.raises(ValueError, match="class id 5"):
        compose.select_light_crops(examples, 1, seed=0, num_classes=4)


def test_select_backgrounds_takes_empty_frames_and_resizes():
    test_split = [_example("t0", [], [], [], value=7), _example("t1", [[0.1, 0.1, 0.2, 0.2]], [0], [False])]
    val_split = [_example("v0", [], [], [], value=9), _example("v1", [], [], [], value=11)]
    bank = compose.select_backgrounds([test_split, val_split], count=3, seed=0, input_size=(20, 30))
    # One empty test frame, then both empty val frames to reach 3.
    assert bank.ids == ("t0", "v0", "v1")
    assert bank.images.shape == (3, 20, 30, 3)
    np.testing.assert_allclose(bank.images[0], 7.0, atol=1e-4)


def test_select_backgrounds_stops_after_enough():
    def never_read():
        raise AssertionError("the val split was read although the test split had enough empty frames")
        yield  # pragma: no cover

    test_split = [_example("t0", [], [], []), _example("t1", [], [], [])]
    bank = compose.select_backgrounds([test_split, never_read()], count=2, seed=0, input_size=(40, 60))
    assert bank.ids == ("t0", "t1")


def test_select_backgrounds_rejects_no_empty_frame():
    with pytest.raises(ValueError, match="no frame without lights"):
        compose.select_backgrounds([_light_examples()[:2]], count=2, seed=0, input_size=(40, 60))
