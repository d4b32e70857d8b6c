"""Matching, and whole sweeps with a detector whose outputs the test controls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from blindspots.config.schema import SweepConfig
from blindspots.sweep import compose, runner

HEIGHT, WIDTH = 48, 64
# Lights whose centre row is in [30, 38) get score 0.2, under the 0.3 threshold.
BLIND_BAND = (30, 38)
LOW_SCORE, HIGH_SCORE = 0.2, 0.9


@tf.function
def bright_box_detector(images: tf.Tensor) -> dict[str, tf.Tensor]:
    """Detect the bounding box of pixels brighter than 128, as class 2.

    Slot 0 is a decoy in the top-left corner with a higher score, so a
    match by score instead of IoU would fail. Slot 2 copies the light box
    as class 0 with score 1 but lies past num_detections = 2, so it must be
    ignored. The light's score is LOW_SCORE when its centre row is in
    BLIND_BAND, else HIGH_SCORE.
    """
    bright = tf.reduce_max(images, axis=-1) > 128.0
    rows = tf.cast(tf.reduce_any(bright, axis=2), tf.int32)
    cols = tf.cast(tf.reduce_any(bright, axis=1), tf.int32)
    ymin = tf.argmax(rows, axis=1, output_type=tf.int32)
    ymax = HEIGHT - tf.argmax(tf.reverse(rows, [1]), axis=1, output_type=tf.int32)
    xmin = tf.argmax(cols, axis=1, output_type=tf.int32)
    xmax = WIDTH - tf.argmax(tf.reverse(cols, [1]), axis=1, output_type=tf.int32)
    light = tf.stack(
        [
            tf.cast(ymin, tf.float32) / HEIGHT,
            tf.cast(xmin, tf.float32) / WIDTH,
            tf.cast(ymax, tf.float32) / HEIGHT,
            tf.cast(xmax, tf.float32) / WIDTH,
        ],
        axis=1,
    )
    centre = tf.cast(ymin + ymax, tf.float32) / 2.0
    in_band = (centre >= BLIND_BAND[0]) & (centre < BLIND_BAND[1])
    light_score = tf.where(in_band, LOW_SCORE, HIGH_SCORE)

    batch = tf.shape(images)[0]
    decoy = tf.tile(tf.constant([[0.0, 0.0, 0.05, 0.05]]), [batch, 1])
    boxes = tf.stack([decoy, light, light], axis=1)
    scores = tf.stack([tf.fill([batch], 0.99), light_score, tf.ones([batch])], axis=1)
    classes = tf.tile(tf.constant([[1, 2, 0]], tf.int32), [batch, 1])
    return {"boxes": boxes, "scores": scores, "classes": classes, "num_detections": tf.fill([batch], 2)}


def _light(crop_id: str, class_id: int, light_height: int) -> compose.LightCrop:
    """A 2 px wide light of value 255 with 3 px of dark surroundings on every side."""
    pixels = np.zeros((light_height + 6, 8, 3), np.float32)
    pixels[3 : 3 + light_height, 3:5] = 255.0
    return compose.LightCrop(crop_id, class_id, pixels, np.array([3, 3, 3 + light_height, 5], np.float32))


@pytest.fixture(scope="module")
def banks() -> tuple[compose.CropBank, compose.BackgroundBank]:
    crops = compose.build_crop_bank([_light("a", 2, 4), _light("b", 1, 6)])
    frames = np.stack([np.zeros((HEIGHT, WIDTH, 3)), np.full((HEIGHT, WIDTH, 3), 20.0)]).astype(np.float32)
    return crops, compose.BackgroundBank(frames, ("dark", "grey"))


def _settings(**overrides) -> SweepConfig:
    values = dict(modes=["vertical"], step=2, columns=2, grid_step=8, batch_size=16, iou=0.5, score_threshold=0.3)
    values.update(overrides)
    return SweepConfig(**values)


@pytest.fixture(scope="module")
def vertical(banks) -> pd.DataFrame:
    crops, backgrounds = banks
    return runner.run_sweep_modes(bright_box_detector, crops, backgrounds, (HEIGHT, WIDTH), _settings(), "v", 3)


def test_box_iou_values():
    boxes = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    candidates = tf.constant([[[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 0.0, 0.0]]])
    # Same box 1; overlap 1 of union 4 + 4 - 1 = 7; disjoint 0; empty box 0.
    np.testing.assert_allclose(runner.box_iou(boxes, candidates).numpy(), [[1.0, 1 / 7, 0.0, 0.0]], rtol=1e-6)


def test_match_detections_ignores_padding_slots():
    placed = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.7, 0.7]])
    boxes = tf.constant(
        [
            [[0.0, 0.0, 0.25, 0.5], [0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]],
            [[0.0, 0.0, 0.1, 0.1], [0.6, 0.6, 0.7, 0.7], [0.6, 0.6, 0.7, 0.7]],
        ]
    )
    scores = tf.constant([[0.9, 0.4, 0.4], [0.8, 0.7, 0.6]])
    classes = tf.constant([[0, 1, 2], [0, 1, 2]])
    # Element 0: slot 0 (IoU 0.125 / 0.25 = 0.5, score 0.9) misses the IoU
    # threshold 0.6. Slots 1 and 2 both have IoU 1 and score 0.4, and the
    # earlier slot wins. Element 1: only slot 0 counts (num_detections 1),
    # and it does not overlap.
    best_iou, score, matched_class = runner.match_detections(placed, boxes, scores, classes, tf.constant([3, 1]), 0.6)
    np.testing.assert_allclose(best_iou.numpy(), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(score.numpy(), [0.4, 0.0], atol=1e-6)
    np.testing.assert_array_equal(matched_class.numpy(), [1, -1])


def test_match_detections_best_score_above_iou():
    placed = tf.constant([[0.0, 0.0, 0.4, 0.4]])
    # Slot 0: a confident box covering 0.32 x 0.4 of the 0.4 x 0.4 light, so
    # IoU 0.128 / 0.16 = 0.8. Slot 1: the exact box, of another class, score 0.05.
    boxes = tf.constant([[[0.0, 0.0, 0.32, 0.4], [0.0, 0.0, 0.4, 0.4]]])
    scores = tf.constant([[0.9, 0.05]])
    classes = tf.constant([[2, 0]])
    best_iou, score, matched_class = runner.match_detections(placed, boxes, scores, classes, tf.constant([2]), 0.5)
    # best_iou stays the maximum over all detections (slot 1).
    np.testing.assert_allclose(best_iou.numpy(), [1.0], atol=1e-6)
    # The match is the higher score among the two that reach IoU 0.5.
    np.testing.assert_allclose(score.numpy(), [0.9], atol=1e-6)
    np.testing.assert_array_equal(matched_class.numpy(), [2])


def test_match_detections_falls_back_to_max_iou():
    placed = tf.constant([[0.0, 0.0, 0.4, 0.4]])
    # IoUs: slot 0 covers 0.16 x 0.4 of the light -> 0.064 / 0.16 = 0.4, and
    # slot 1 covers 0.08 x 0.4 -> 0.2. Neither reaches 0.5, so the max-IoU slot 0 matches.
    boxes = tf.constant([[[0.0, 0.0, 0.16, 0.4], [0.0, 0.0, 0.08, 0.4]]])
    scores = tf.constant([[0.3, 0.95]])
    classes = tf.constant([[1, 3]])
    best_iou, score, matched_class = runner.match_detections(placed, boxes, scores, classes, tf.constant([2]), 0.5)
    np.testing.assert_allclose(best_iou.numpy(), [0.4], atol=1e-6)
    np.testing.assert_allclose(score.numpy(), [0.3], atol=1e-6)
    np.testing.assert_array_equal(matched_class.numpy(), [1])


def test_sweep_counts_and_columns(vertical):
    # Crop a (10 px tall): y = 0, 2, ..., 38 (20 rows); crop b (12 px): y = 0, ..., 36 (19 rows).
    # Two columns and two backgrounds: 2 * (20 + 19) * 2 = 156.
    assert len(vertical) == 156
    assert list(vertical.columns) == list(runner.RECORD_COLUMNS)
    assert set(vertical["variant"]) == {"v"}
    assert set(vertical["seed"]) == {3}


def test_sweep_placement_coordinates(vertical):
    first = vertical.iloc[0]
    # Columns: centres 16 and 48 minus the light's centre x 4 -> x = 12 and 44.
    assert sorted(set(vertical["x"])) == [12, 44]
    assert (first["background_id"], first["crop_id"], first["y"], first["x"]) == ("dark", "a", 0, 12)
    # Light a at rows 3..7, columns 15..17 -> normalised by 48 and 64.
    placed = first[["placed_ymin", "placed_xmin", "placed_ymax", "placed_xmax"]].to_numpy(np.float64)
    np.testing.assert_allclose(placed, [3 / 48, 15 / 64, 7 / 48, 17 / 64], rtol=1e-6)
    assert (first["crop_height"], first["crop_width"]) == (10, 8)


def test_sweep_matches_composited_light(vertical):
    # The detector finds the pasted light exactly, on both backgrounds.
    np.testing.assert_allclose(vertical["best_iou"], 1.0, atol=1e-5)


def test_sweep_detection_follows_score_band(vertical):
    centre = vertical["y"] + np.where(vertical["crop_id"] == "a", 5, 6)
    in_band = (centre >= BLIND_BAND[0]) & (centre < BLIND_BAND[1])
    np.testing.assert_allclose(vertical["score"], np.where(in_band, LOW_SCORE, HIGH_SCORE), atol=1e-6)
    np.testing.assert_array_equal(vertical["detected"], ~in_band)


def test_sweep_class_correct(vertical):
    # The detector always returns class 2, which is right for crop a and wrong for crop b.
    np.testing.assert_array_equal(vertical["class_correct"], vertical["crop_id"] == "a")
    assert set(vertical["matched_class"]) == {2}


def test_sweep_rows_and_blind_metrics(vertical, tmp_path):
    summary = runner.write_sweep_outputs(tmp_path, vertical, blind_fraction=0.5, extra_metrics={"variant": "v"})
    rows = summary.rate_by_row
    # Centres: crop a y + 5 (5..43), crop b y + 6 (6..42) -> bins 4, 6, ..., 42.
    assert list(rows["row"]) == list(range(4, 43, 2))
    # Row 4 contains only crop a (2 backgrounds * 2 columns). The other rows contain 8.
    assert list(rows["n"]) == [4] + [8] * 19
    # Rows 30..36 are the blind band.
    expected = [0.0 if 30 <= row < 38 else 1.0 for row in range(4, 43, 2)]
    np.testing.assert_array_equal(rows["rate"], expected)

    vertical_metrics = summary.metrics["vertical"]
    assert vertical_metrics["blind_rows"] == [30, 32, 34, 36]
    assert vertical_metrics["worst_row"] == 30
    # 16 rows at 1 and 4 at 0: mean 0.8, std sqrt(0.16) = 0.4.
    assert vertical_metrics["row_rate_spread"] == pytest.approx(0.4)
    # Top 10 rows (4..22) all 1; bottom 10 (24..42) have 4 zeros -> 1 - 0.6.
    assert vertical_metrics["top_bottom_asymmetry"] == pytest.approx(0.4)
    # 156 placements, of which 4 rows * 8 = 32 are blind.
    assert vertical_metrics["detection_rate"] == pytest.approx(124 / 156)


def test_write_sweep_outputs_files(vertical, tmp_path):
    runner.write_sweep_outputs(tmp_path, vertical, blind_fraction=0.5, extra_metrics={"variant": "v"})
    written = pd.read_parquet(tmp_path / "placements.parquet")
    assert len(written) == 156
    assert written["detected"].dtype == bool
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["variant"] == "v"
    assert saved["vertical"]["blind_rows"] == [30, 32, 34, 36]
    assert (tmp_path / "rate_by_row.csv").read_text().startswith("row,n,detected,rate,lower,upper")
    assert not (tmp_path / "rate_by_cell.csv").exists()


def test_sweep_horizontal_and_grid(banks):
    crops, backgrounds = banks
    settings = _settings(modes=["horizontal", "grid"], step=4, columns=1)
    table = runner.run_sweep_modes(bright_box_detector, crops, backgrounds, (HEIGHT, WIDTH), settings, "v", 0)
    horizontal = table[table["mode"] == "horizontal"]
    # One row: centre 24 minus the light centre (5 for a, 6 for b) -> y = 19 and 18.
    assert sorted(set(horizontal["y"])) == [18, 19]
    # Columns 0, 4, ..., 56 (frame 64 - crop 8 = 56): 15 per crop and background.
    assert len(horizontal) == 2 * 2 * 15
    grid = table[table["mode"] == "grid"]
    # Rows: a 0, 8, ..., 32, 38 (6); b 0, ..., 32, 36 (6). Columns 0, 8, ..., 56 (8).
    assert len(grid) == 2 * (6 + 6) * 8
    assert set(grid["row"] % 8) == {0}


def test_sweep_rejects_crop_larger_than_frame(banks):
    _, backgrounds = banks
    tall = compose.build_crop_bank([_light("tall", 0, 50)])
    with pytest.raises(ValueError, match="larger than the model input 48x64"):
        runner.run_sweep_modes(bright_box_detector, tall, backgrounds, (HEIGHT, WIDTH), _settings(), "v", 0)
