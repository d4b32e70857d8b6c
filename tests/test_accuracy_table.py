"""Per-variant accuracy table: means, Student-t confidence intervals and the written files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from blindspots.evaluation.table import accuracy_table, confidence_half_width, format_markdown, write_accuracy_table

# t quantile 0.975 with 2 degrees of freedom (standard tables: 4.303).
T_975_DF2 = 4.302652729749462


def run_metrics(mean_ap: float, red: float | None, coco_ap50: float) -> dict:
    return {
        "mean_ap": mean_ap,
        "weighted_mean_ap": mean_ap + 0.1,
        "ap": {"Green": 0.8, "Red": red},
        "coco": {"ap": 0.3, "ap50": coco_ap50, "ar100": 0.5},
        "num_frames": 10,
    }


def three_seed_runs() -> dict:
    return {
        ("tf_same_even", 0): run_metrics(0.5, 0.2, 0.4),
        ("tf_same_even", 1): run_metrics(0.6, 0.4, 0.4),
        ("tf_same_even", 2): run_metrics(0.7, 0.9, 0.4),
        ("tf_same_odd", 0): run_metrics(0.65, None, 0.5),
    }


def test_table_mean_and_ci() -> None:
    # mAP over seeds 0.5, 0.6, 0.7: mean 0.6, sample std 0.1,
    # half-width = 4.3027 * 0.1 / sqrt(3) = 0.24841.
    # AP Red 0.2, 0.4, 0.9: mean 0.5, sample std sqrt(0.13) = 0.36056,
    # half-width = 4.3027 * 0.36056 / sqrt(3) = 0.89567.
    table = accuracy_table(three_seed_runs())
    even = table.loc["tf_same_even"]

    assert even["num_seeds"] == 3
    assert even["seeds"] == "0,1,2"
    assert even["mean_ap"] == pytest.approx(0.6)
    assert even["mean_ap_ci95"] == pytest.approx(0.24841377, abs=1e-8)
    assert even["ap.Red"] == pytest.approx(0.5)
    assert even["ap.Red_ci95"] == pytest.approx(T_975_DF2 * math.sqrt(0.13) / math.sqrt(3))
    # Equal values across seeds: zero spread.
    assert even["coco.ap50_ci95"] == pytest.approx(0.0)


def test_table_single_seed() -> None:
    odd = accuracy_table(three_seed_runs()).loc["tf_same_odd"]

    assert odd["num_seeds"] == 1
    assert odd["mean_ap"] == pytest.approx(0.65)
    assert math.isnan(odd["mean_ap_ci95"])
    # An undefined AP (None in the metrics JSON) stays undefined.
    assert math.isnan(odd["ap.Red"])


def test_table_default_columns() -> None:
    table = accuracy_table(three_seed_runs())

    expected = ["num_seeds", "seeds"]
    for key in ["mean_ap", "weighted_mean_ap", "ap.Green", "ap.Red", "coco.ap", "coco.ap50"]:
        expected += [key, f"{key}_ci95"]
    assert list(table.columns) == expected
    assert list(table.index) == ["tf_same_even", "tf_same_odd"]


def test_table_adds_class_accuracy_when_present() -> None:
    runs = {("tf_same_even", seed): run_metrics(0.5, 0.2, 0.4) for seed in (0, 1)}
    for seed, accuracy in ((0, 0.6), (1, 0.8)):
        runs[("tf_same_even", seed)]["confusion"] = {"accuracy": accuracy, "counts": {"Green": {"Green": 3}}}
    table = accuracy_table(runs)

    assert list(table.columns)[-2:] == ["confusion.accuracy", "confusion.accuracy_ci95"]
    assert table.loc["tf_same_even", "confusion.accuracy"] == pytest.approx(0.7)
    assert format_markdown(table).splitlines()[0].endswith("| COCO AP50 | class accuracy |")


def test_table_missing_metric() -> None:
    runs = three_seed_runs()
    del runs[("tf_same_even", 1)]["coco"]

    with pytest.raises(ValueError, match=r"seed 1\) has no metric 'coco.ap'"):
        accuracy_table(runs)


def test_confidence_half_width_cases() -> None:
    assert confidence_half_width([0.5, 0.6, 0.7]) == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3))
    assert math.isnan(confidence_half_width([0.5]))
    assert math.isnan(confidence_half_width([0.5, math.nan]))


def test_markdown_cells() -> None:
    text = format_markdown(accuracy_table(three_seed_runs()))
    lines = text.splitlines()

    assert lines[0] == "| variant | seeds | mAP | weighted mAP | AP Green | AP Red | COCO AP | COCO AP50 |"
    assert lines[2].startswith("| tf_same_even | 3 | 0.600 ± 0.248 | 0.700 ± 0.248 |")
    assert lines[3] == "| tf_same_odd | 1 | 0.650 | 0.750 | 0.800 | n/a | 0.300 | 0.500 |"


def test_write_table_files(tmp_path: Path) -> None:
    table = accuracy_table(three_seed_runs())
    csv_path, markdown_path = tmp_path / "out" / "accuracy.csv", tmp_path / "out" / "accuracy.md"

    write_accuracy_table(table, csv_path, markdown_path)
    reread = pd.read_csv(csv_path, index_col="variant")

    assert reread.loc["tf_same_even", "mean_ap_ci95"] == pytest.approx(0.24841377, abs=1e-8)
    assert math.isnan(reread.loc["tf_same_odd", "mean_ap_ci95"])
    assert markdown_path.read_text(encoding="utf-8") == format_markdown(table)
