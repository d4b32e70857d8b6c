"""Placement positions per mode, placed boxes and position bins."""

from __future__ import annotations

import numpy as np
import pytest

from blindspots.sweep import placements


def test_swept_positions_adds_last_position():
    # Frame 20, crop 5: 0, 4, 8, 12, then the last fitting position 15.
    np.testing.assert_array_equal(placements.swept_positions(20, 5, 4), [0, 4, 8, 12, 15])


def test_swept_positions_exact_fit():
    # Frame 20, crop 4: 16 is already a multiple of 4, so nothing is added.
    np.testing.assert_array_equal(placements.swept_positions(20, 4, 4), [0, 4, 8, 12, 16])


def test_swept_positions_rejects_large_crop():
    with pytest.raises(ValueError, match="does not fit"):
        placements.swept_positions(10, 11, 2)


def test_spread_positions_cell_centres():
    # Cells of 100 / 4 = 25 px: centres 12.5, 37.5, 62.5, 87.5. Minus the light
    # centre 5 gives 7.5, 32.5, 57.5, 82.5, rounded half up.
    np.testing.assert_array_equal(placements.spread_positions(100, 10, 5.0, 4), [8, 33, 58, 83])


def test_spread_positions_clips_to_frame():
    # One cell: centre 5 minus light centre 9 is -4, clipped to 0.
    np.testing.assert_array_equal(placements.spread_positions(10, 10, 9.0, 1), [0])


def test_crop_positions_vertical():
    ys, xs = placements.crop_positions("vertical", (20, 40), (6, 4), np.array([1, 1, 5, 3]), 4, 2, 8)
    # Rows 0, 4, 8, 12, 14 (frame 20 - crop 6); columns: centres 10 and 30
    # minus the light centre 2 -> 8 and 28.
    np.testing.assert_array_equal(ys, [0, 0, 4, 4, 8, 8, 12, 12, 14, 14])
    np.testing.assert_array_equal(xs, [8, 28] * 5)


def test_crop_positions_horizontal():
    ys, xs = placements.crop_positions("horizontal", (20, 40), (6, 4), np.array([1, 1, 5, 3]), 12, 2, 8)
    # Rows: centres 5 and 15 minus the light centre 3 -> 2 and 12; columns 0, 12, 24, 36.
    np.testing.assert_array_equal(ys, [2, 2, 2, 2, 12, 12, 12, 12])
    np.testing.assert_array_equal(xs, [0, 12, 24, 36] * 2)


def test_crop_positions_grid():
    ys, xs = placements.crop_positions("grid", (20, 40), (6, 4), np.array([1, 1, 5, 3]), 2, 2, 8)
    # Rows 0, 8, 14; columns 0, 8, 16, 24, 32, 36.
    assert len(ys) == 3 * 6
    np.testing.assert_array_equal(np.unique(ys), [0, 8, 14])
    np.testing.assert_array_equal(np.unique(xs), [0, 8, 16, 24, 32, 36])


def test_crop_positions_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown sweep mode 'diagonal'"):
        placements.crop_positions("diagonal", (20, 40), (6, 4), np.array([1, 1, 5, 3]), 2, 2, 8)


def test_build_placements_order_and_count():
    sizes = np.array([[6, 4], [10, 4]])
    boxes = np.array([[1, 1, 5, 3], [3, 1, 7, 3]], np.float32)
    table = placements.build_placements("vertical", (20, 40), sizes, boxes, 2, 4, 1, 8)
    # Crop 0: rows 0, 4, 8, 12, 14; crop 1: rows 0, 4, 8, 10. One column, two backgrounds.
    assert len(table) == 2 * (5 + 4)
    assert list(table.columns) == ["background_index", "crop_index", "y", "x"]
    np.testing.assert_array_equal(table["background_index"], [0] * 9 + [1] * 9)
    np.testing.assert_array_equal(table["crop_index"][:9], [0] * 5 + [1] * 4)
    np.testing.assert_array_equal(table["y"][:9], [0, 4, 8, 12, 14, 0, 4, 8, 10])


def test_placed_boxes_normalised():
    boxes = placements.placed_boxes(np.array([10]), np.array([20]), np.array([[3.0, 3.0, 9.0, 5.0]]), (40, 50))
    # Pixels [13, 23, 19, 25] over (40, 50, 40, 50).
    np.testing.assert_allclose(boxes, [[0.325, 0.46, 0.475, 0.5]], rtol=1e-6)


def test_position_bins_round_down():
    light_boxes = np.array([[3.0, 3.0, 9.0, 5.0], [3.0, 3.0, 8.0, 5.0]])
    rows, columns = placements.position_bins(np.array([10, 10]), np.array([20, 21]), light_boxes, 4)
    # Centres: rows 10 + 6 = 16 and 10 + 5.5 = 15.5; columns 24 and 25.
    np.testing.assert_array_equal(rows, [16, 12])
    np.testing.assert_array_equal(columns, [24, 24])
