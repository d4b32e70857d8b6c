"""Summary sentences generated from hand-made numbers."""

from __future__ import annotations

import math

from blindspots.report.summary import (
    AccuracyEntry,
    BlindSpotEntry,
    RateInterval,
    accuracy_sentences,
    blind_spot_sentences,
    compare_blind_spots,
    intervals_overlap,
    overview_sentence,
    summary_sentences,
)


def _spots(variant: str, blind_rows=(), worst=(0.85, 0.8, 0.9), asymmetry=0.0, median=0.9, uneven=None) -> BlindSpotEntry:
    return BlindSpotEntry(
        variant=variant,
        seeds=1,
        row_count=8,
        blind_rows=tuple(blind_rows),
        blind_fraction=0.5,
        median_row_rate=median,
        worst_row=56,
        worst_row_rate=RateInterval(*worst),
        overall_rate=RateInterval(0.88, 0.85, 0.91),
        spread=0.05,
        asymmetry=asymmetry,
        uneven_layers=uneven,
        stride2_layers=None if uneven is None else 9,
    )


def test_overlap_touching_endpoints():
    assert intervals_overlap((0.1, 0.5), (0.5, 0.9))


def test_overlap_disjoint():
    assert not intervals_overlap((0.1, 0.4), (0.5, 0.9))


def test_accuracy_within_intervals():
    # 0.50 ± 0.10 spans 0.40-0.60 and 0.45 ± 0.10 spans 0.35-0.55, so they overlap.
    sentences = accuracy_sentences([AccuracyEntry("even", 3, 0.45, 0.10), AccuracyEntry("odd", 3, 0.50, 0.10)])
    assert sentences[0] == "`odd` has the highest mAP, 0.500 ± 0.100 (mean ± 95% CI over 3 seeds)."
    assert sentences[1] == "`even` has mAP 0.450 ± 0.100 (mean ± 95% CI over 3 seeds), 0.050 lower, which is within the confidence intervals."


def test_accuracy_outside_intervals():
    # 0.50 ± 0.02 spans 0.48-0.52 and 0.30 ± 0.02 spans 0.28-0.32: disjoint.
    sentences = accuracy_sentences([AccuracyEntry("even", 3, 0.30, 0.02), AccuracyEntry("odd", 3, 0.50, 0.02)])
    assert sentences[1].endswith("0.200 lower, and the confidence intervals do not overlap.")


def test_accuracy_one_seed_everywhere():
    sentences = accuracy_sentences([AccuracyEntry("even", 1, 0.30, math.nan), AccuracyEntry("odd", 1, 0.50, math.nan)])
    assert sentences[1] == "`even` has mAP 0.300 (1 seed), 0.200 lower."
    assert sentences[2].startswith("Every variant has one seed, so no confidence interval across seeds is available")


def test_accuracy_one_seed_variant():
    sentences = accuracy_sentences([AccuracyEntry("even", 1, 0.30, math.nan), AccuracyEntry("odd", 3, 0.50, 0.02)])
    assert sentences[1].endswith("`even` has one seed, so no confidence interval across seeds is available to test this difference.")


def test_accuracy_tiny_gap():
    sentences = accuracy_sentences([AccuracyEntry("even", 1, 0.5, math.nan), AccuracyEntry("odd", 1, 0.5002, math.nan)])
    assert "less than 0.001 lower" in sentences[1]


def test_accuracy_undefined_map():
    sentences = accuracy_sentences([AccuracyEntry("even", 1, math.nan, math.nan), AccuracyEntry("odd", 1, 0.5, math.nan)])
    assert sentences[-1] == "`even` has no defined mAP, because its test split has no ground-truth box."


def test_accuracy_follows_numbers():
    first = accuracy_sentences([AccuracyEntry("even", 3, 0.30, 0.02), AccuracyEntry("odd", 3, 0.50, 0.02)])
    swapped = accuracy_sentences([AccuracyEntry("even", 3, 0.50, 0.02), AccuracyEntry("odd", 3, 0.30, 0.02)])
    assert first[0].startswith("`odd` has the highest mAP")
    assert swapped[0].startswith("`even` has the highest mAP")


def test_overview_counts_blind_variants():
    sentence = overview_sentence([_spots("even", blind_rows=(56,)), _spots("odd")])
    assert sentence.startswith("1 of 2 variants show blind spots by the blind-row metric")
    assert sentence.endswith(": `even`.")


def test_overview_without_blind_rows():
    assert overview_sentence([_spots("odd")]).startswith("No variant shows a blind spot")


def test_blind_rows_listed_with_audit():
    sentences = blind_spot_sentences(_spots("even", blind_rows=(48, 56), uneven=6))
    assert sentences[0] == (
        "`even` has 2 blind rows out of 8 (y = 48, 56 px), against a median row rate of 0.90. "
        "Its network pads unevenly along the height in 6 of 9 stride-2 layers."
    )


def test_worst_row_below_overall_interval():
    # Worst row 0.10 (0.02-0.40) against overall 0.88 (0.85-0.91): disjoint.
    sentences = blind_spot_sentences(_spots("even", blind_rows=(56,), worst=(0.1, 0.02, 0.4)))
    assert sentences[1].endswith("and its interval lies below that of its overall rate of 0.88 (Wilson 95% interval 0.85 to 0.91).")


def test_worst_row_within_overall_interval():
    # Worst row 0.85 (0.80-0.90) overlaps overall 0.88 (0.85-0.91).
    sentences = blind_spot_sentences(_spots("odd"))
    assert "which is within the confidence intervals of its overall rate" in sentences[1]


def test_asymmetry_bottom_detected_less():
    sentences = blind_spot_sentences(_spots("even", asymmetry=0.2))
    assert sentences[2].endswith("the bottom half of the rows is detected 0.20 less often than the top half (asymmetry +0.20).")


def test_asymmetry_top_detected_less():
    sentences = blind_spot_sentences(_spots("even", asymmetry=-0.05))
    assert "the top half of the rows is detected 0.05 less often than the bottom half (asymmetry -0.05)" in sentences[2]


def test_zero_median_says_metric_undefined():
    sentences = blind_spot_sentences(_spots("even", median=0.0))
    assert "so the blind-row metric cannot single out a row" in sentences[0]


def test_compare_disjoint_wilson():
    sentences = compare_blind_spots([_spots("even", worst=(0.1, 0.02, 0.4)), _spots("odd", worst=(0.85, 0.8, 0.9))])
    assert sentences == ["The worst-row rate of `even` (0.10) is 0.75 lower than that of `odd` (0.85), and the Wilson intervals do not overlap."]


def test_compare_overlapping_wilson():
    sentences = compare_blind_spots([_spots("even", worst=(0.7, 0.5, 0.85)), _spots("odd", worst=(0.85, 0.8, 0.9))])
    assert sentences[0].endswith("but the Wilson intervals overlap, so the difference is within the confidence intervals.")


def test_compare_single_variant():
    assert compare_blind_spots([_spots("even")]) == []


def test_summary_order():
    sentences = summary_sentences([AccuracyEntry("even", 1, 0.5, math.nan)], [_spots("even")])
    assert sentences[0].startswith("No variant shows a blind spot")
    assert sentences[1].startswith("`even` has no blind row out of 8")
    assert sentences[-1] == "`even` has the highest mAP, 0.500 (1 seed). With one seed, no confidence interval across seeds is available."
