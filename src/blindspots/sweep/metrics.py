"""Detection rate by position and the blind-spot metrics derived from it.

Pure numpy and pandas. The input is the per-placement table of
`blindspots.sweep.runner.run_sweep`: one row per pasted light with its
`row` and `column` bins (the light's centre in model-input pixels, rounded
down to a multiple of the sweep step), `detected` (bool), `score` and
`class_correct` (bool).

A "row rate" is the detection rate of all placements whose light centre
falls in that row bin, pooled over columns, crops and backgrounds. Every
row counts once in the blind-spot metrics, whatever its number of
placements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

# Two-sided 95% normal quantile, the z of the Wilson score interval.
WILSON_Z = 1.959964
AXES = ("row", "column")
ASYMMETRY_KEYS = {"row": "top_bottom_asymmetry", "column": "left_right_asymmetry"}
# Columns of `rate_table` after the grouping columns.
RATE_COLUMNS = ("n", "detected", "rate", "lower", "upper", "mean_score", "correct", "correct_rate")


def wilson_interval(successes: Any, trials: Any, z: float = WILSON_Z) -> tuple[np.ndarray, np.ndarray]:
    """Return the Wilson score interval (lower, upper) of successes / trials.

    centre = (p + z^2 / 2n) / (1 + z^2 / n) and
    half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2), p = k / n.
    Unlike p +- z * se, the interval stays inside [0, 1] and is not empty at
    p = 0 or 1. Trials of 0 give NaN.
    """
    k = np.asarray(successes, np.float64)
    n = np.asarray(trials, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1.0 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def rate_table(placements: pd.DataFrame, by: str | Sequence[str] = "row") -> pd.DataFrame:
    """Group placements by `by` and return counts, rates and Wilson intervals.

    Columns: the `by` columns, n (placements), detected (count), rate,
    lower, upper (Wilson 95%), mean_score (mean score of the matched
    detection, see `runner.match_detections`), correct (detected with the
    right class, count) and correct_rate. Sorted by `by`.
    """
    keys = [by] if isinstance(by, str) else list(by)
    if placements.empty:
        raise ValueError("no placements to aggregate: the sweep table is empty")
    frame = placements.assign(
        detected=placements["detected"].astype(bool),
        correct=placements["detected"].astype(bool) & placements["class_correct"].astype(bool),
    )
    grouped = frame.groupby(keys, sort=True)
    table = grouped.agg(
        n=("detected", "size"),
        detected=("detected", "sum"),
        mean_score=("score", "mean"),
        correct=("correct", "sum"),
    ).reset_index()
    table["detected"] = table["detected"].astype(np.int64)
    table["correct"] = table["correct"].astype(np.int64)
    table["rate"] = table["detected"] / table["n"]
    table["lower"], table["upper"] = wilson_interval(table["detected"], table["n"])
    table["correct_rate"] = table["correct"] / table["n"]
    return table[keys + list(RATE_COLUMNS)]


def half_asymmetry(values: Sequence[float]) -> float:
    """Return mean(first half) - mean(second half) of values in position order.

    With an odd count the middle value belongs to neither half. Fewer than
    two values give NaN.
    """
    values = np.asarray(values, np.float64)
    half = len(values) // 2
    if half == 0:
        return float("nan")
    return float(values[:half].mean() - values[-half:].mean())


def blind_spot_metrics(rates: pd.DataFrame, blind_fraction: float, axis: str = "row") -> dict[str, Any]:
    """Summarise a rate-by-position table into blind-spot metrics.

    `rates` has columns `axis` (pixel position) and rate, as `rate_table`
    or `aggregate_seeds` returns. For axis "row" the keys are:

    - median_row_rate: median of the row rates.
    - blind_row_threshold: blind_fraction * median_row_rate.
    - blind_rows: rows whose rate < blind_row_threshold, ascending, and
      blind_row_count. A median of 0 gives no blind rows.
    - worst_row, worst_row_rate: the row of minimum rate (the top-most on ties).
    - row_rate_spread: population standard deviation (ddof=0) of the row rates.
    - top_bottom_asymmetry: `half_asymmetry` of the row rates, top minus
      bottom, so a positive value means the bottom half is detected less.

    For axis "column" the keys name the column, and the asymmetry is
    left_right_asymmetry (left minus right).
    """
    if axis not in AXES:
        raise ValueError(f"unknown axis '{axis}'. Allowed: {', '.join(AXES)}")
    if rates.empty:
        raise ValueError(f"no {axis} rates to summarise: the table is empty")
    ordered = rates.sort_values(axis)
    positions = ordered[axis].to_numpy()
    values = ordered["rate"].to_numpy(np.float64)

    median = float(np.median(values))
    threshold = blind_fraction * median
    blind = positions[values < threshold]
    worst = int(np.argmin(values))
    return {
        f"median_{axis}_rate": median,
        f"blind_{axis}_threshold": threshold,
        f"blind_{axis}s": [int(p) for p in blind],
        f"blind_{axis}_count": int(len(blind)),
        f"worst_{axis}": int(positions[worst]),
        f"worst_{axis}_rate": float(values[worst]),
        f"{axis}_rate_spread": float(np.std(values, ddof=0)),
        ASYMMETRY_KEYS[axis]: half_asymmetry(values),
    }


def overall_metrics(placements: pd.DataFrame) -> dict[str, Any]:
    """Return the placement count, detection rate and mean score of a table."""
    detected = placements["detected"].astype(bool)
    return {
        "placements": int(len(placements)),
        "detection_rate": float(detected.mean()),
        "mean_score": float(placements["score"].mean()),
        "correct_rate": float((detected & placements["class_correct"].astype(bool)).mean()),
    }


@dataclass(frozen=True)
class SweepSummary:
    """Metrics of every mode and the plot tables of one run.

    `rate_by_row` comes from the vertical mode (grid when vertical did not
    run), `rate_by_column` from horizontal (else grid), `rate_by_cell` from
    grid. A table is None when no mode produced it.
    """

    metrics: dict[str, Any]
    rate_by_row: pd.DataFrame | None
    rate_by_column: pd.DataFrame | None
    rate_by_cell: pd.DataFrame | None


def summarise_sweep(placements: pd.DataFrame, blind_fraction: float) -> SweepSummary:
    """Compute per-mode metrics and the row, column and cell rate tables."""
    metrics: dict[str, Any] = {}
    by_mode = {mode: table for mode, table in placements.groupby("mode", sort=False)}
    for mode, table in by_mode.items():
        mode_metrics = overall_metrics(table)
        if mode in ("vertical", "grid"):
            mode_metrics.update(blind_spot_metrics(rate_table(table, "row"), blind_fraction, "row"))
        if mode in ("horizontal", "grid"):
            mode_metrics.update(blind_spot_metrics(rate_table(table, "column"), blind_fraction, "column"))
        metrics[str(mode)] = mode_metrics

    row_source = by_mode.get("vertical", by_mode.get("grid"))
    column_source = by_mode.get("horizontal", by_mode.get("grid"))
    grid = by_mode.get("grid")
    return SweepSummary(
        metrics=metrics,
        rate_by_row=rate_table(row_source, "row") if row_source is not None else None,
        rate_by_column=rate_table(column_source, "column") if column_source is not None else None,
        rate_by_cell=rate_table(grid, ["row", "column"]) if grid is not None else None,
    )


def aggregate_seeds(tables: Sequence[pd.DataFrame], axis: str | Sequence[str] = "row") -> pd.DataFrame:
    """Pool the rate tables of several seeds of one variant.

    Each table has columns `axis`, n, detected, mean_score and correct, as
    `rate_table` writes them. Returns per position: seeds (tables that have
    it), pooled n, detected, correct, rate = sum(detected) / sum(n) with its
    Wilson interval (lower, upper), mean_score weighted by n, correct_rate,
    and across seeds mean_rate, std_rate (ddof=0), min_rate and max_rate.
    The pooled columns keep `rate_table`'s names, so the figures take either.
    """
    keys = [axis] if isinstance(axis, str) else list(axis)
    if not tables:
        raise ValueError("no seed tables to aggregate")
    stacked = pd.concat([table.assign(seed_rate=table["detected"] / table["n"]) for table in tables], ignore_index=True)
    stacked["score_sum"] = stacked["mean_score"] * stacked["n"]
    grouped = stacked.groupby(keys, sort=True)
    pooled = grouped.agg(
        seeds=("n", "size"),
        n=("n", "sum"),
        detected=("detected", "sum"),
        correct=("correct", "sum"),
        score_sum=("score_sum", "sum"),
        mean_rate=("seed_rate", "mean"),
        std_rate=("seed_rate", lambda rates: float(np.std(rates, ddof=0))),
        min_rate=("seed_rate", "min"),
        max_rate=("seed_rate", "max"),
    ).reset_index()
    pooled["rate"] = pooled["detected"] / pooled["n"]
    pooled["lower"], pooled["upper"] = wilson_interval(pooled["detected"], pooled["n"])
    pooled["mean_score"] = pooled["score_sum"] / pooled["n"]
    pooled["correct_rate"] = pooled["correct"] / pooled["n"]
    return pooled[keys + ["seeds", *RATE_COLUMNS, "mean_rate", "std_rate", "min_rate", "max_rate"]]
