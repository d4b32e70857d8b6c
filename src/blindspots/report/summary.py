"""Sentences of the report's summary, generated from the numbers.

Pure Python: every function takes the numbers as dataclasses and returns
sentences, so the wording can be tested on hand-made values. Two means are
"within the confidence intervals" when their 95% intervals overlap. mAP
intervals are mean ± the Student-t half-width across seeds
(`blindspots.evaluation.table.confidence_half_width`). Rate intervals are
Wilson 95% intervals over the pooled placements
(`blindspots.sweep.metrics.wilson_interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class AccuracyEntry:
    """mAP of one variant: mean over seeds and the 95% CI half-width (NaN with one seed)."""

    variant: str
    seeds: int
    mean_ap: float
    mean_ap_ci95: float


@dataclass(frozen=True)
class RateInterval:
    """A detection rate in [0, 1] with its Wilson 95% interval."""

    rate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class BlindSpotEntry:
    """Blind-spot metrics of one variant's row rates, pooled over seeds.

    Rows are light-centre row bins in model-input pixels. A blind row has a
    rate below `blind_fraction` times `median_row_rate`. `asymmetry` is the
    mean rate of the top half of the rows minus that of the bottom half.
    `uneven_layers` is the number of the network's `stride2_layers` stride-2
    layers that pad unevenly along the height, or None when not audited.
    """

    variant: str
    seeds: int
    row_count: int
    blind_rows: tuple[int, ...]
    blind_fraction: float
    median_row_rate: float
    worst_row: int
    worst_row_rate: RateInterval
    overall_rate: RateInterval
    spread: float
    asymmetry: float
    uneven_layers: int | None = None
    stride2_layers: int | None = None


def intervals_overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Return whether the closed intervals (low, high) share a point."""
    return first[0] <= second[1] and second[0] <= first[1]


def _rate(value: float) -> str:
    return f"{value:.2f}"


def _interval(rate: RateInterval) -> str:
    return f"{_rate(rate.rate)} (Wilson 95% interval {_rate(rate.lower)} to {_rate(rate.upper)})"


def _difference(value: float, digits: int) -> str:
    """Format a positive difference, saying "less than" when it rounds to zero."""
    if round(value, digits) == 0:
        return f"less than {10.0 ** -digits:.{digits}f}"
    return f"{value:.{digits}f}"


def _row_list(rows: Sequence[int], limit: int = 8) -> str:
    listed = ", ".join(str(row) for row in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"y = {listed}{more} px"


def overview_sentence(entries: Sequence[BlindSpotEntry]) -> str:
    """Say which variants have blind rows, by the blind-row metric."""
    if not entries:
        return "No variant has a vertical sweep, so no blind-spot metric is available."
    fraction = entries[0].blind_fraction
    blind = [entry.variant for entry in entries if entry.blind_rows]
    rule = f"a row detected at less than {fraction:g} times the variant's median row rate"
    if not blind:
        return f"No variant shows a blind spot by the blind-row metric ({rule})."
    names = ", ".join(f"`{name}`" for name in blind)
    return f"{len(blind)} of {len(entries)} variants show blind spots by the blind-row metric ({rule}): {names}."


def blind_spot_sentences(entry: BlindSpotEntry) -> list[str]:
    """Describe one variant's blind rows, worst row, spread and top-bottom asymmetry."""
    sentences = []
    audit = ""
    if entry.uneven_layers is not None and entry.stride2_layers is not None:
        audit = f" Its network pads unevenly along the height in {entry.uneven_layers} of {entry.stride2_layers} stride-2 layers."
    if entry.median_row_rate == 0:
        sentences.append(
            f"`{entry.variant}` detects no pasted light in at least half of its {entry.row_count} rows "
            f"(median row rate 0.00), so the blind-row metric cannot single out a row.{audit}"
        )
    elif entry.blind_rows:
        count = len(entry.blind_rows)
        noun = "row" if count == 1 else "rows"
        sentences.append(
            f"`{entry.variant}` has {count} blind {noun} out of {entry.row_count} ({_row_list(entry.blind_rows)}), "
            f"against a median row rate of {_rate(entry.median_row_rate)}.{audit}"
        )
    else:
        sentences.append(
            f"`{entry.variant}` has no blind row out of {entry.row_count}: "
            f"no row falls below {entry.blind_fraction:g} times its median row rate of {_rate(entry.median_row_rate)}.{audit}"
        )

    worst, overall = entry.worst_row_rate, entry.overall_rate
    worst_text = f"Its worst row, y = {entry.worst_row} px, is detected at {_interval(worst)}"
    overall_text = f"its overall rate of {_interval(overall)}"
    if intervals_overlap((worst.lower, worst.upper), (overall.lower, overall.upper)):
        sentences.append(f"{worst_text}, which is within the confidence intervals of {overall_text}.")
    else:
        sentences.append(f"{worst_text}, and its interval lies below that of {overall_text}.")

    spread_text = f"The row-rate spread (standard deviation over rows) is {entry.spread:.3f}"
    if math.isnan(entry.asymmetry):
        sentences.append(f"{spread_text}, and with fewer than two rows there is no top-bottom asymmetry.")
    elif entry.asymmetry > 0:
        sentences.append(
            f"{spread_text}, and the bottom half of the rows is detected {_difference(entry.asymmetry, 2)} less often "
            f"than the top half (asymmetry {entry.asymmetry:+.2f})."
        )
    elif entry.asymmetry < 0:
        sentences.append(
            f"{spread_text}, and the top half of the rows is detected {_difference(-entry.asymmetry, 2)} less often "
            f"than the bottom half (asymmetry {entry.asymmetry:+.2f})."
        )
    else:
        sentences.append(f"{spread_text}, and the top and bottom halves of the rows are detected equally often.")
    return sentences


def compare_blind_spots(entries: Sequence[BlindSpotEntry]) -> list[str]:
    """Compare each variant's worst-row rate with the variant whose worst row is detected best."""
    if len(entries) < 2:
        return []
    reference = max(entries, key=lambda entry: entry.worst_row_rate.rate)
    ref = reference.worst_row_rate
    sentences = []
    for entry in entries:
        if entry is reference:
            continue
        worst = entry.worst_row_rate
        gap = ref.rate - worst.rate
        head = f"The worst-row rate of `{entry.variant}` ({_rate(worst.rate)})"
        if gap == 0:
            sentences.append(f"{head} equals that of `{reference.variant}`.")
            continue
        head = f"{head} is {_difference(gap, 2)} lower than that of `{reference.variant}` ({_rate(ref.rate)})"
        if intervals_overlap((worst.lower, worst.upper), (ref.lower, ref.upper)):
            sentences.append(f"{head}, but the Wilson intervals overlap, so the difference is within the confidence intervals.")
        else:
            sentences.append(f"{head}, and the Wilson intervals do not overlap.")
    return sentences


def _has_interval(entry: AccuracyEntry) -> bool:
    return entry.seeds >= 2 and not math.isnan(entry.mean_ap_ci95)


def _map_text(entry: AccuracyEntry) -> str:
    if _has_interval(entry):
        return f"{entry.mean_ap:.3f} ± {entry.mean_ap_ci95:.3f} (mean ± 95% CI over {entry.seeds} seeds)"
    seeds = "1 seed" if entry.seeds == 1 else f"{entry.seeds} seeds"
    return f"{entry.mean_ap:.3f} ({seeds})"


def accuracy_sentences(entries: Sequence[AccuracyEntry]) -> list[str]:
    """Compare every variant's mAP with the highest one, saying whether the CIs across seeds overlap."""
    defined = [entry for entry in entries if not math.isnan(entry.mean_ap)]
    undefined = [entry for entry in entries if math.isnan(entry.mean_ap)]
    sentences = []
    if not defined:
        return ["No variant has a defined mAP, because the test split has no ground-truth box of any class."]
    best = max(defined, key=lambda entry: entry.mean_ap)
    sentences.append(f"`{best.variant}` has the highest mAP, {_map_text(best)}.")
    all_single = all(not _has_interval(entry) for entry in defined)

    for entry in defined:
        if entry is best:
            continue
        gap = best.mean_ap - entry.mean_ap
        if gap == 0:
            sentences.append(f"`{entry.variant}` has the same mAP, {_map_text(entry)}.")
            continue
        head = f"`{entry.variant}` has mAP {_map_text(entry)}, {_difference(gap, 3)} lower"
        if all_single:
            sentences.append(f"{head}.")
        elif _has_interval(entry) and _has_interval(best):
            best_range = (best.mean_ap - best.mean_ap_ci95, best.mean_ap + best.mean_ap_ci95)
            entry_range = (entry.mean_ap - entry.mean_ap_ci95, entry.mean_ap + entry.mean_ap_ci95)
            if intervals_overlap(best_range, entry_range):
                sentences.append(f"{head}, which is within the confidence intervals.")
            else:
                sentences.append(f"{head}, and the confidence intervals do not overlap.")
        else:
            single = entry.variant if not _has_interval(entry) else best.variant
            sentences.append(f"{head}. `{single}` has one seed, so no confidence interval across seeds is available to test this difference.")

    if all_single and len(defined) > 1:
        sentences.append(
            "Every variant has one seed, so no confidence interval across seeds is available, "
            "and the mAP differences may be seed-to-seed variation."
        )
    elif all_single:
        sentences.append("With one seed, no confidence interval across seeds is available.")
    for entry in undefined:
        sentences.append(f"`{entry.variant}` has no defined mAP, because its test split has no ground-truth box.")
    return sentences


def summary_sentences(accuracy: Sequence[AccuracyEntry], blind_spots: Sequence[BlindSpotEntry]) -> list[str]:
    """Return the whole summary: blind spots per variant, their comparison, then accuracy."""
    sentences = [overview_sentence(blind_spots)]
    for entry in blind_spots:
        sentences.append(" ".join(blind_spot_sentences(entry)))
    comparison = compare_blind_spots(blind_spots)
    if comparison:
        sentences.append(" ".join(comparison))
    sentences.append(" ".join(accuracy_sentences(accuracy)))
    return sentences
