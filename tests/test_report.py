"""The report stage on a small hand-built set of pipeline outputs.

`write_study` writes every input of the report with the project's own
writers (dataset statistics, AP evaluation, accuracy table, sweep rate
tables) but without TensorFlow, so the whole study builds in about a
second. tests/test_notebook.py reuses it.

The sweep numbers are chosen so the expected metrics are exact: every
variant has 8 row bins (y = 0, 8, ..., 56 px) of 10 placements each,
detected at 9 of 10, except that variant `even` detects row 56 at 1 of 10.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from blindspots import runinfo
from blindspots.config import load_params
from blindspots.data import stats
from blindspots.data.bstld import Box, Frame, RepairReport
from blindspots.evaluation.ap import Detections, GroundTruth, curve_rows, evaluate_detections
from blindspots.evaluation.table import accuracy_table, write_accuracy_table
from blindspots.report import figures as report_figures
from blindspots.report.build import build_report, write_report
from blindspots.report.collect import MissingInputError, collect_study
from blindspots.report.results_sections import heatmap_section
from blindspots.stages import report as report_stage
from blindspots.sweep import metrics as sweep_metrics
from blindspots.sweep.figures import variant_colours

CLASS_NAMES = ["Off", "Green", "Yellow", "Red"]
ROWS = tuple(range(0, 64, 8))
PLACEMENTS_PER_ROW = 10
BLIND_ROW = 56
PARAMS = """\
model:
  input_size: [64, 96]
  width_multiplier: 0.125
prepare:
  image_size: [64, 96]
variants:
  even:
    padding: tf_same
    input_size: [64, 96]
    seeds: [0, 1]
  odd:
    padding: tf_same
    input_size: [65, 97]
sweep:
  modes: [vertical, grid]
  step: 8
  grid_step: 16
"""


def _write_prepared(root: Path) -> None:
    """Write stats.json, box_sizes.png, anchor_coverage.json, classes.json and run.json of a 3-frame dataset."""
    prepared = root / "data" / "prepared"
    frames = {
        "train": [
            Frame("rgb/train/a/1.png", root / "1.png", "a", (Box("Green", 1, False, 10, 20, 30, 28), Box("Red", 3, True, 5, 5, 20, 11)), 64, 96),
            Frame("rgb/train/a/2.png", root / "2.png", "a", (), 64, 96),
        ],
        "test": [Frame("rgb/test/3.png", root / "3.png", None, (Box("off", 0, False, 40, 60, 52, 64),), 64, 96)],
    }
    repairs = RepairReport()
    repairs.add("reversed", "rgb/train/a/1.png")
    summary = stats.dataset_stats(frames, CLASS_NAMES, {"train.yaml": repairs})
    runinfo.write_json(prepared / "stats.json", summary)
    stats.plot_box_sizes(summary, prepared / "box_sizes.png")
    split_coverage = {"anchors": 149, "boxes": 2, "covered_share": 0.5, "iou_threshold": 0.5, "min_scale": 0.1, "max_scale": 0.6}
    split_coverage.update({"best_iou_median": 0.45, "best_iou_p10": 0.3, "best_iou_p90": 0.6})
    coverage = {"input_size": [64, 96], "splits": {"train": split_coverage, "test": {"boxes": 0}}}
    runinfo.write_json(prepared / "anchor_coverage.json", coverage)
    runinfo.write_json(prepared / "classes.json", CLASS_NAMES)
    runinfo.write_run_record(prepared, "prepare", {"data": {"source": "synthetic"}})


def _write_evaluation(root: Path, variant: str, seed: int, red_found: bool) -> dict:
    """Evaluate two frames (a Green and a Red light) and write metrics.json and pr_curves.csv.

    The Green light is always detected, so AP Green = 1. The Red one is
    detected only when `red_found`, so AP Red is 1 or 0 and mAP 1 or 0.5.
    """
    ground_truth = [
        GroundTruth("f1", [[10, 10, 30, 20]], [1]),
        GroundTruth("f2", [[40, 50, 60, 58]], [3]),
    ]
    red_box = [40, 50, 60, 58] if red_found else [0, 0, 5, 5]
    detections = [
        Detections("f1", [[10, 10, 30, 20]], [1], [0.9]),
        Detections("f2", [red_box], [3], [0.8]),
    ]
    result = evaluate_detections(ground_truth, detections, CLASS_NAMES)
    metrics = result.to_dict()
    metrics["coco"] = {"ap": 0.5, "ap50": 0.75, "ap75": 0.5, "ar100": 0.75}
    metrics = json.loads(json.dumps(metrics).replace("NaN", "null"))
    out = root / "metrics" / "runs" / variant / f"seed_{seed}"
    runinfo.write_json(out / "metrics.json", metrics)
    runinfo.write_text(out / "pr_curves.csv", pd.DataFrame(curve_rows(result.curves)).to_csv(index=False))
    return metrics


def sweep_placements(blind: bool) -> pd.DataFrame:
    """Build vertical and grid placements: 9 of 10 detected per row, 1 of 10 at BLIND_ROW when `blind`."""
    records = []
    for row in ROWS:
        hits = 1 if blind and row == BLIND_ROW else 9
        for index in range(PLACEMENTS_PER_ROW):
            detected = index < hits
            records.append({"mode": "vertical", "row": row, "column": 40, "detected": detected, "score": 0.8 if detected else 0.1, "class_correct": detected})
    for row in range(0, 64, 16):
        for column in range(0, 96, 16):
            detected = not (blind and row == 48)
            records.append({"mode": "grid", "row": row, "column": column, "detected": detected, "score": 0.7, "class_correct": True})
    return pd.DataFrame(records)


def _write_sweep(root: Path, variant: str, seed: int, blind: bool, modes: tuple[str, ...]) -> None:
    """Write sweep/metrics.json and the rate CSVs as `sweep.runner.write_sweep_outputs` does, without the parquet file."""
    placements = sweep_placements(blind)
    placements = placements[placements["mode"].isin(modes)]
    summary = sweep_metrics.summarise_sweep(placements, blind_fraction=0.5)
    out = root / "runs" / variant / f"seed_{seed}" / "sweep"
    runinfo.write_json(out / "metrics.json", {"variant": variant, "seed": seed, **summary.metrics})
    tables = {"rate_by_row.csv": summary.rate_by_row, "rate_by_column.csv": summary.rate_by_column, "rate_by_cell.csv": summary.rate_by_cell}
    for name, table in tables.items():
        if table is not None:
            runinfo.write_text(out / name, table.to_csv(index=False))


def _write_training(root: Path, variant: str, seed: int) -> None:
    folder = root / "runs" / variant / f"seed_{seed}" / "train" / "dvclive" / "plots" / "metrics" / "train"
    folder.mkdir(parents=True)
    for name, start in (("loss", 3.0), ("class_loss", 1.0), ("box_loss", 2.0)):
        steps = np.arange(1, 5)
        values = start / steps
        lines = [f"step\t{name}"] + [f"{step}\t{value}" for step, value in zip(steps, values)]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_analysis(root: Path, variant: str) -> None:
    folder = root / "runs" / variant / "analysis"
    figure = Figure(figsize=(2, 2))
    ax = figure.add_subplot()
    ax.imshow(np.arange(16.0).reshape(4, 4))
    ax.set_title("mean activation")
    folder.mkdir(parents=True)
    figure.savefig(folder / "zero_input_maps.png", dpi=50)
    runinfo.write_json(folder / "captions.json", {"zero_input_maps.png": "Channel-mean activation for an all-zero input."})
    runinfo.write_json(folder / "metrics.json", {"uneven_layers": {"height": 6, "width": 6}, "foveation_ratio": 1.5})


def write_study(root: Path, modes: tuple[str, ...] = ("vertical", "grid")) -> None:
    """Write params.yaml and every report input for variants `even` (seeds 0, 1) and `odd` (seed 0).

    `even` has a blind row at y = 56 px, training curves and an analysis
    folder. `odd` has neither training curves nor analysis, so the report
    shows a note for each.
    """
    params = PARAMS.replace("modes: [vertical, grid]", f"modes: [{', '.join(modes)}]")
    (root / "params.yaml").write_text(params, encoding="utf-8")
    _write_prepared(root)
    runs = {("even", 0): True, ("even", 1): False, ("odd", 0): False}
    evaluated = {}
    for (variant, seed), red_found in runs.items():
        evaluated[(variant, seed)] = _write_evaluation(root, variant, seed, red_found)
        _write_sweep(root, variant, seed, blind=variant == "even", modes=modes)
    write_accuracy_table(accuracy_table(evaluated), root / "metrics" / "accuracy.csv", root / "metrics" / "accuracy.md")
    _write_training(root, "even", 0)
    _write_training(root, "even", 1)
    _write_analysis(root, "even")


def _run_stage(root: Path) -> Path:
    config = load_params(root / "params.yaml")
    report_stage.run(config, argparse.Namespace(output_dir=str(root / "reports")))
    return root / "reports"


@pytest.fixture(scope="module")
def built_root(tmp_path_factory):
    """A study with its report written once for the whole module: the stage takes seconds, most of it drawing figures."""
    root = tmp_path_factory.mktemp("study")
    write_study(root)
    previous = Path.cwd()
    os.chdir(root)
    try:
        _run_stage(root)
    finally:
        os.chdir(previous)
    return root


@pytest.fixture
def study_root(built_root, tmp_path, monkeypatch):
    """A private copy of the built study, without its report, as the working directory."""
    root = tmp_path / "study"
    shutil.copytree(built_root, root, ignore=shutil.ignore_patterns("reports"))
    monkeypatch.chdir(root)
    return root


def test_report_writes_every_output(built_root):
    reports = built_root / "reports"
    expected = {
        "index.html",
        "report.md",
        "summary.json",
        "run.json",
        "figures/accuracy.png",
        "figures/box_sizes.png",
        "figures/pr_curves.png",
        "figures/rate_by_row.png",
        "figures/rate_and_score_by_row.png",
        "figures/heatmaps.png",
        "figures/training_curves.png",
        "figures/analysis_even_zero_input_maps.png",
        "tables/accuracy.csv",
        "tables/accuracy.md",
        "tables/blind_spots.csv",
        "tables/blind_spots_by_seed.csv",
        "tables/variants.csv",
        "tables/data_splits.csv",
        "tables/anchor_coverage.csv",
        "tables/packages.csv",
        "tables/analysis_metrics.csv",
    }
    written = {path.relative_to(reports).as_posix() for path in reports.rglob("*") if path.is_file()}
    assert expected <= written


def test_anchor_table_reads_single_threshold(built_root):
    """A coverage file with only `iou_threshold` still gives a column per threshold."""
    table = pd.read_csv(built_root / "reports" / "tables" / "anchor_coverage.csv")
    assert table.loc[table["split"] == "train", "covered_iou_0.5"].item() == 0.5


def test_report_html_embeds_every_image(built_root):
    html = (built_root / "reports" / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]*)"', html)
    # One image per figure: 6 report figures, box_sizes.png and the analysis figure of `even`.
    assert len(sources) == 8
    assert all(source.startswith("data:image/png;base64,") for source in sources)


def test_report_html_has_no_external_reference(built_root):
    html = (built_root / "reports" / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', html) == []


def test_report_markdown_links_resolve(built_root):
    reports = built_root / "reports"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (reports / "report.md").read_text(encoding="utf-8"))
    assert len(links) == 8
    assert all(link.startswith("figures/") for link in links)
    assert [link for link in links if not (reports / link).is_file()] == []


def test_report_summary_json_numbers(built_root):
    summary = json.loads((built_root / "reports" / "summary.json").read_text(encoding="utf-8"))
    even, odd = summary["even"], summary["odd"]
    # even: seeds 0 and 1 have mAP 1.0 and 0.5, so the mean is 0.75; odd (seed 0, Red missed) has 0.5.
    assert even["mean_ap"] == pytest.approx(0.75)
    assert odd["mean_ap"] == pytest.approx(0.5)
    assert odd["mean_ap_ci95"] is None
    assert even["blind_rows"] == 1
    assert odd["blind_rows"] == 0
    # Pooled over 2 seeds, row 56 is detected at 2 of 20 placements.
    assert even["worst_row_rate"] == pytest.approx(0.1)
    # Row rates 0.9 x 7 and 0.1: top-half mean 0.9, bottom-half mean (3 x 0.9 + 0.1) / 4 = 0.7.
    assert even["top_bottom_asymmetry"] == pytest.approx(0.2)
    # Mean 0.8, so the variance is (7 x 0.1^2 + 0.7^2) / 8 = 0.07.
    assert even["row_rate_spread"] == pytest.approx(math.sqrt(0.07))


def test_report_summary_names_blind_variant(built_root):
    markdown = (built_root / "reports" / "report.md").read_text(encoding="utf-8")
    assert "1 of 2 variants show blind spots by the blind-row metric" in markdown
    assert "`even` has 1 blind row out of 8 (y = 56 px)" in markdown


def test_report_notes_missing_optional_inputs(built_root):
    markdown = (built_root / "reports" / "report.md").read_text(encoding="utf-8")
    assert "Run `blindspots analyze --variant odd` to add it." in markdown
    assert "No training curve for `odd` seed 0" in markdown


def test_report_tables_match_pooled_rates(built_root):
    table = pd.read_csv(built_root / "reports" / "tables" / "blind_spots.csv", index_col="variant", dtype={"blind_rows": str})
    assert table.loc["even", "blind_rows"] == str(BLIND_ROW)
    assert table.loc["odd", "worst_row_rate"] == pytest.approx(0.9)


def test_report_skips_heatmaps_without_grid(study_root):
    params = (study_root / "params.yaml").read_text(encoding="utf-8")
    (study_root / "params.yaml").write_text(params.replace("modes: [vertical, grid]", "modes: [vertical]"), encoding="utf-8")
    study = collect_study(load_params(study_root / "params.yaml"), study_root)
    figures: dict = {}
    section = heatmap_section(study, variant_colours(study.variant_names), figures)
    assert figures == {}
    assert section.blocks[0].text.startswith("Skipped: the grid sweep did not run")


def test_report_missing_accuracy_names_command(study_root):
    (study_root / "metrics" / "accuracy.csv").unlink()
    with pytest.raises(MissingInputError, match=r"metrics/accuracy.csv  \(written by `blindspots evaluate --table`\)"):
        collect_study(load_params(study_root / "params.yaml"), study_root)


def test_report_missing_sweep_names_command(study_root):
    (study_root / "runs" / "odd" / "seed_0" / "sweep" / "rate_by_row.csv").unlink()
    with pytest.raises(MissingInputError, match="blindspots sweep --variant odd --seed 0"):
        collect_study(load_params(study_root / "params.yaml"), study_root)


def test_report_rejects_stale_accuracy_table(study_root):
    params = (study_root / "params.yaml").read_text(encoding="utf-8")
    (study_root / "params.yaml").write_text(params.replace("  odd:\n", "  wide:\n    seeds: [0]\n  odd:\n"), encoding="utf-8")
    _write_evaluation(study_root, "wide", 0, red_found=True)
    _write_sweep(study_root, "wide", 0, blind=False, modes=("vertical", "grid"))
    with pytest.raises(MissingInputError, match=r"no row for variant\(s\) wide.*blindspots evaluate --table"):
        collect_study(load_params(study_root / "params.yaml"), study_root)


def test_report_failure_keeps_previous_folder(study_root):
    reports = study_root / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("previous report", encoding="utf-8")
    content = build_report(collect_study(load_params(study_root / "params.yaml"), study_root))
    # The missing PNG comes first, so the write fails before drawing any figure.
    content.figures = {"missing.png": study_root / "missing.png", **content.figures}
    with pytest.raises(FileNotFoundError):
        write_report(content, reports, {})
    assert (reports / "index.html").read_text(encoding="utf-8") == "previous report"
    assert [path.name for path in study_root.iterdir() if path.name.startswith(".reports")] == []


# Appended to a copy of the page: writes how many images loaded with a non-zero natural width.
IMAGE_CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((image) => !image.complete || image.naturalWidth === 0).length;
  const result = document.createElement("pre");
  result.id = "image-check";
  result.textContent = `images=${images.length} broken=${broken}`;
  document.body.appendChild(result);
});
</script>
"""


def _chromium_image_check(page: Path, profile: Path) -> str:
    """Load `page` in headless Chromium and return the image-check line the injected script wrote."""
    checked = page.with_name("checked.html")
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", IMAGE_CHECK_SCRIPT + "</body>"), encoding="utf-8")
    command = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        checked.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    match = re.search(r'<pre id="image-check">([^<]*)</pre>', result.stdout)
    return match.group(1) if match else f"no image-check element in the DOM. Chromium stderr: {result.stderr[-500:]}"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_report_renders_in_chromium(built_root, tmp_path):
    page = tmp_path / "index.html"
    shutil.copyfile(built_root / "reports" / "index.html", page)
    assert _chromium_image_check(page, tmp_path / "profile") == "images=8 broken=0"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_chromium_check_detects_broken_image(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('<html><body><img src="data:image/png;base64,AAAA"></body></html>', encoding="utf-8")
    assert _chromium_image_check(page, tmp_path / "profile") == "images=1 broken=1"


def test_report_stage_import_skips_tensorflow():
    code = "import sys, blindspots.stages.report; sys.exit(int('tensorflow' in sys.modules or 'pandas' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def accuracy_frame(ci95: float) -> pd.DataFrame:
    """Return an accuracy table whose `even` row has half-width `ci95` and whose `odd` row has one seed."""
    return pd.DataFrame(
        {
            "mean_ap": [0.4, 0.3],
            "mean_ap_ci95": [ci95, float("nan")],
            "weighted_mean_ap": [0.5, 0.6],
            "weighted_mean_ap_ci95": [ci95, float("nan")],
        },
        index=["even", "odd"],
    )


def error_bar_heights(figure: Figure) -> list[float]:
    """Return the length of every drawn error bar of the figure's only axes."""
    from matplotlib.container import ErrorbarContainer

    heights = []
    for container in figure.axes[0].containers:
        if isinstance(container, ErrorbarContainer):
            for segment in container.lines[2][0].get_segments():
                heights.append(float(segment[1][1] - segment[0][1]))
    return heights


def test_accuracy_figure_one_seed_no_bars():
    colours = {"even": "C0", "odd": "C1"}
    figure, _ = report_figures.plot_accuracy(accuracy_frame(float("nan")), colours, 0.5, "voc")
    assert error_bar_heights(figure) == []


def test_accuracy_figure_draws_ci_bars():
    colours = {"even": "C0", "odd": "C1"}
    figure, _ = report_figures.plot_accuracy(accuracy_frame(0.05), colours, 0.5, "voc")
    assert error_bar_heights(figure) == pytest.approx([0.1, 0.1])
