"""Wilson intervals, rate tables, blind-spot metrics and seed pooling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from blindspots.sweep import metrics


def _placements(rows: list[int], detected: list[bool], scores: list[float], mode: str = "vertical") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mode": mode,
            "row": rows,
            "column": [0] * len(rows),
            "detected": detected,
            "score": scores,
            "class_correct": [True] * len(rows),
        }
    )


def test_wilson_half_rate():
    # Standard table value for 5 of 10: 0.2366 to 0.7634.
    lower, upper = metrics.wilson_interval(5, 10)
    assert lower == pytest.approx(0.2366, abs=1e-4)
    assert upper == pytest.approx(0.7634, abs=1e-4)


def test_wilson_zero_successes():
    # 0 of 10: the lower bound is exactly 0 (centre = half = z^2 / (2n (1 + z^2 / n))),
    # the upper bound 3.8415 / 13.8415 = 0.2775.
    lower, upper = metrics.wilson_interval(0, 10)
    assert lower == pytest.approx(0.0, abs=1e-12)
    assert upper == pytest.approx(0.2775, abs=1e-4)


def test_wilson_all_successes_mirrors_zero():
    lower, upper = metrics.wilson_interval(10, 10)
    assert lower == pytest.approx(1 - 0.2775, abs=1e-4)
    assert upper == pytest.approx(1.0, abs=1e-12)


def test_wilson_zero_trials_is_nan():
    lower, upper = metrics.wilson_interval(0, 0)
    assert math.isnan(lower)
    assert math.isnan(upper)


def test_rate_table_counts_and_scores():
    table = metrics.rate_table(
        _placements([0, 0, 0, 0, 2, 2], [True, True, True, False, False, True], [0.9, 0.8, 0.7, 0.2, 0.1, 0.5])
    )
    assert list(table["row"]) == [0, 2]
    assert list(table["n"]) == [4, 2]
    assert list(table["detected"]) == [3, 1]
    assert list(table["rate"]) == [0.75, 0.5]
    # Mean scores: (0.9 + 0.8 + 0.7 + 0.2) / 4 = 0.65 and (0.1 + 0.5) / 2 = 0.3.
    np.testing.assert_allclose(table["mean_score"], [0.65, 0.3])
    lower, upper = metrics.wilson_interval(3, 4)
    assert table["lower"][0] == pytest.approx(lower)
    assert table["upper"][0] == pytest.approx(upper)


def test_rate_table_correct_needs_detection():
    frame = _placements([0, 0, 0], [True, True, False], [0.9, 0.9, 0.1])
    frame["class_correct"] = [True, False, True]
    table = metrics.rate_table(frame)
    # Only the first placement is detected with the right class.
    assert table["correct"][0] == 1
    assert table["correct_rate"][0] == pytest.approx(1 / 3)


def test_rate_table_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        metrics.rate_table(_placements([], [], []))


def _rates(rates: list[float], axis: str = "row") -> pd.DataFrame:
    return pd.DataFrame({axis: np.arange(len(rates)) * 2, "rate": rates})


def test_blind_spot_metrics_rows():
    summary = metrics.blind_spot_metrics(_rates([1.0, 0.9, 0.2, 0.8, 0.1, 1.0]), blind_fraction=0.5)
    # Median of 0.1, 0.2, 0.8, 0.9, 1, 1 is 0.85, so the threshold is 0.425.
    assert summary["median_row_rate"] == pytest.approx(0.85)
    assert summary["blind_row_threshold"] == pytest.approx(0.425)
    # Rows 4 (0.2) and 8 (0.1) fall below it.
    assert summary["blind_rows"] == [4, 8]
    assert summary["blind_row_count"] == 2
    assert summary["worst_row"] == 8
    assert summary["worst_row_rate"] == pytest.approx(0.1)
    # Mean 4 / 6. Squared deviations sum to 5 / 6, so std = sqrt(5 / 36) = 0.372678.
    assert summary["row_rate_spread"] == pytest.approx(0.372678, abs=1e-6)
    # Top half (1, 0.9, 0.2) mean 0.7, bottom half (0.8, 0.1, 1) mean 0.6333.
    assert summary["top_bottom_asymmetry"] == pytest.approx(0.7 - 1.9 / 3)


def test_blind_spot_metrics_worst_tie_takes_top():
    summary = metrics.blind_spot_metrics(_rates([1.0, 0.0, 1.0, 0.0]), blind_fraction=0.5)
    assert summary["worst_row"] == 2


def test_blind_spot_metrics_columns():
    summary = metrics.blind_spot_metrics(_rates([0.2, 1.0, 1.0], "column"), blind_fraction=0.5, axis="column")
    assert summary["blind_columns"] == [0]
    # Odd count: the middle column belongs to neither half, so 0.2 - 1.0.
    assert summary["left_right_asymmetry"] == pytest.approx(-0.8)


def test_blind_metrics_zero_median():
    summary = metrics.blind_spot_metrics(_rates([0.0, 0.0, 0.5]), blind_fraction=0.5)
    assert summary["blind_rows"] == []


def test_blind_spot_metrics_rejects_unknown_axis():
    with pytest.raises(ValueError, match="unknown axis 'depth'"):
        metrics.blind_spot_metrics(_rates([1.0]), 0.5, axis="depth")


def test_half_asymmetry_single_value_is_nan():
    assert math.isnan(metrics.half_asymmetry([0.5]))


def test_summarise_sweep_grid_has_both_axes():
    frame = _placements([0, 0, 2, 2], [True, False, True, True], [0.9, 0.1, 0.8, 0.7], mode="grid")
    frame["column"] = [0, 2, 0, 2]
    summary = metrics.summarise_sweep(frame, blind_fraction=0.5)
    grid = summary.metrics["grid"]
    assert grid["placements"] == 4
    assert grid["detection_rate"] == pytest.approx(0.75)
    assert "top_bottom_asymmetry" in grid
    assert "left_right_asymmetry" in grid
    # Rows: 0 -> 1 / 2, 2 -> 2 / 2, so top minus bottom is -0.5.
    assert grid["top_bottom_asymmetry"] == pytest.approx(-0.5)
    assert list(summary.rate_by_cell["n"]) == [1, 1, 1, 1]
    # With no vertical mode, the row table comes from grid.
    assert list(summary.rate_by_row["rate"]) == [0.5, 1.0]


def test_summarise_sweep_vertical_has_no_column_table():
    summary = metrics.summarise_sweep(_placements([0, 2], [True, False], [0.9, 0.1]), blind_fraction=0.5)
    assert summary.rate_by_column is None
    assert summary.rate_by_cell is None
    assert "left_right_asymmetry" not in summary.metrics["vertical"]


def test_aggregate_seeds_pools_counts():
    seed0 = metrics.rate_table(_placements([0, 0, 2, 2], [True, True, True, False], [1.0, 0.8, 0.6, 0.2]))
    seed1 = metrics.rate_table(_placements([0, 0, 0, 0, 2], [True, False, False, False, True], [0.5] * 5))
    pooled = metrics.aggregate_seeds([seed0, seed1])
    # Row 0: 2 of 2 and 1 of 4 -> pooled 3 of 6; row 2: 1 of 2 and 1 of 1 -> 2 of 3.
    assert list(pooled["n"]) == [6, 3]
    assert list(pooled["detected"]) == [3, 2]
    np.testing.assert_allclose(pooled["rate"], [0.5, 2 / 3])
    # Mean of the seed rates: (1 + 0.25) / 2 and (0.5 + 1) / 2.
    np.testing.assert_allclose(pooled["mean_rate"], [0.625, 0.75])
    np.testing.assert_allclose(pooled["std_rate"], [0.375, 0.25])
    # Scores weighted by n: row 0 (2 * 0.9 + 4 * 0.5) / 6, row 2 (2 * 0.4 + 0.5) / 3.
    np.testing.assert_allclose(pooled["mean_score"], [3.8 / 6, 1.3 / 3])
    lower, upper = metrics.wilson_interval(3, 6)
    assert pooled["lower"][0] == pytest.approx(lower)
    assert pooled["upper"][0] == pytest.approx(upper)
    assert list(pooled["seeds"]) == [2, 2]


def test_aggregate_seeds_feeds_blind_spot_metrics():
    seed0 = metrics.rate_table(_placements([0, 2, 4], [True, False, True], [0.9, 0.1, 0.9]))
    summary = metrics.blind_spot_metrics(metrics.aggregate_seeds([seed0, seed0]), 0.5)
    assert summary["blind_rows"] == [2]
