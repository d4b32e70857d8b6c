"""Results sections of the report: accuracy, PR curves, detection rate by position, blind spots, analysis, training.

Each function returns report sections and registers the figures it shows
in `figures` (file name under reports/figures -> matplotlib Figure or a PNG
path to copy). Colours come from `sweep.figures.variant_colours` over the
variants in params order, so a variant has one colour in every figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, MutableMapping

import pandas as pd
from matplotlib.figure import Figure

from blindspots.evaluation.table import CI_SUFFIX, flatten_metrics, metric_label
from blindspots.report import figures as report_figures
from blindspots.report import format as fmt
from blindspots.report import metrics
from blindspots.report.collect import AnalysisFigure, Study
from blindspots.report.document import FigureRef, Note, Paragraph, Section, Table
from blindspots.report.summary import BlindSpotEntry
from blindspots.sweep import figures as sweep_figures

FigureSource = Figure | Path
# Headings of the analyze stage's figures, in report order; other files follow with their name as heading.
ANALYSIS_TITLES = {
    "zero_input_maps.png": "Zero-input activation maps",
    "mean_colour_maps.png": "Mean-colour input activation maps",
    "feature_means.png": "Average feature maps on test images",
    "mean_kernels.png": "Mean kernels",
    "foveation.png": "Foveation maps",
}


def accuracy_section(study: Study, colours: Mapping[str, str], figures: MutableMapping[str, FigureSource]) -> Section:
    """Show the accuracy table (mean ± 95% CI across seeds) and the mAP bar chart."""
    accuracy = study.accuracy.loc[study.variant_names]
    keys = [column for column in accuracy.columns if column not in ("num_seeds", "seeds") and not column.endswith(CI_SUFFIX)]
    rows = []
    for name, row in accuracy.iterrows():
        cells = [fmt.mean_ci(row[key], row.get(f"{key}{CI_SUFFIX}"), 3) for key in keys]
        rows.append((str(name), fmt.number(int(row["num_seeds"])), *cells))
    evaluate = study.params["evaluate"]
    caption = (
        f"Accuracy on the test split at IoU {evaluate['iou']:g} ({evaluate['interpolation']} interpolation), "
        "mean ± Student-t 95% confidence interval across seeds. A cell shows the mean alone for one seed, "
        "and n/a for a class without ground truth. COCO AP averages IoU 0.5 to 0.95."
    )
    table = Table("accuracy", ("variant", "seeds", *(metric_label(key) for key in keys)), tuple(rows), caption, accuracy)
    figure, figure_caption = report_figures.plot_accuracy(accuracy, colours, float(evaluate["iou"]), str(evaluate["interpolation"]))
    figures["accuracy.png"] = figure
    section = Section("Accuracy", 3, [table, FigureRef("accuracy.png", figure_caption, "bar chart of mAP per variant")])
    return section


def pr_section(study: Study, colours: Mapping[str, str], figures: MutableMapping[str, FigureSource]) -> Section:
    curves = {key: run.pr_curves for key, run in study.runs.items()}
    if all(table.empty for table in curves.values()):
        note = Note("No precision-recall curve: in no run does a class have both ground truth and detections.")
        return Section("Precision-recall curves", 3, [note])
    figure, caption = report_figures.plot_pr_curves(curves, colours, study.class_names, float(study.params["evaluate"]["iou"]))
    figures["pr_curves.png"] = figure
    return Section("Precision-recall curves", 3, [FigureRef("pr_curves.png", caption, "precision-recall curves per class")])


def _sweep_paragraph(study: Study) -> Paragraph:
    sweep = study.params["sweep"]
    return Paragraph(
        f"Each run pastes {sweep['crops_per_class']} light crop(s) per class from the test split into "
        f"{sweep['backgrounds']} light-free frame(s), moving them every {sweep['step']} px (`sweep.step`) down the "
        f"frame at {sweep['columns']} column(s). A pasted light counts as detected when a detection overlaps it at "
        f"IoU >= {sweep['iou']:g} with score >= {sweep['score_threshold']:g}. Rates pool the placements of every seed "
        "of a variant. Sweep modes run: " + ", ".join(f"`{mode}`" for mode in sweep["modes"]) + "."
    )


def rate_section(study: Study, colours: Mapping[str, str], figures: MutableMapping[str, FigureSource]) -> Section:
    """Plot detection rate by row (and by column when the horizontal sweep ran), all variants overlaid."""
    section = Section("Detection rate by position", 3, [_sweep_paragraph(study)])
    for axis, table in (("row", "rate_by_row"), ("column", "rate_by_column")):
        if axis == "column" and "horizontal" not in study.params["sweep"]["modes"]:
            continue
        rates = {name: metrics.pooled_rates(study, name, table) for name in study.variant_names}
        rates = {name: frame for name, frame in rates.items() if frame is not None}
        if not rates:
            section.blocks.append(Note(f"No sweep mode produced {axis} rates, so there is no rate-by-{axis} figure."))
            continue
        bands = {
            setup.name: sweep_figures.uneven_padding_bands(setup.input_size, setup.padding, setup.alignment, axis)
            for setup in study.variants
            if setup.name in rates
        }
        figure, caption = sweep_figures.plot_rate_by_position(rates, colours, bands, axis)
        figures[f"rate_by_{axis}.png"] = figure
        section.blocks.append(FigureRef(f"rate_by_{axis}.png", caption, f"detection rate by light {axis} per variant"))
        if axis == "row":
            threshold = float(study.params["sweep"]["score_threshold"])
            figure, caption = sweep_figures.plot_rate_and_score(rates, colours, threshold, axis)
            figures["rate_and_score_by_row.png"] = figure
            section.blocks.append(FigureRef("rate_and_score_by_row.png", caption, "detection rate and mean score by row"))
    return section


def _pooled_table(entries: list[BlindSpotEntry]) -> Table:
    data = metrics.pooled_blind_spot_table(entries)
    rows = []
    for entry in entries:
        rows.append(
            (
                entry.variant,
                str(entry.seeds),
                str(entry.row_count),
                fmt.interval(entry.overall_rate.rate, entry.overall_rate.lower, entry.overall_rate.upper),
                fmt.number(entry.median_row_rate, 2),
                str(len(entry.blind_rows)),
                ", ".join(str(row) for row in entry.blind_rows) or "none",
                str(entry.worst_row),
                fmt.interval(entry.worst_row_rate.rate, entry.worst_row_rate.lower, entry.worst_row_rate.upper),
                fmt.number(entry.spread, 3),
                fmt.number(entry.asymmetry, 3),
            )
        )
    header = (
        "variant",
        "seeds",
        "rows",
        "overall rate [95%]",
        "median row rate",
        "blind rows",
        "blind rows (y, px)",
        "worst row (y, px)",
        "worst-row rate [95%]",
        "row-rate spread",
        "top-bottom asymmetry",
    )
    caption = (
        "Blind-spot metrics of the row rates pooled over seeds. Brackets hold Wilson 95% intervals over the "
        "placements. A blind row is detected at less than `sweep.blind_fraction` times the median row rate. "
        "The spread is the standard deviation of the row rates, and the asymmetry is the mean rate of the top "
        "half of the rows minus that of the bottom half, so a positive value means the bottom is detected less."
    )
    return Table("blind_spots", header, tuple(rows), caption, data)


def _seed_table(study: Study) -> Table | None:
    data = metrics.seed_blind_spot_table(study)
    if data.empty:
        return None
    rows = []
    for name, row in data.iterrows():
        cells = [fmt.mean_ci(row[key], row[f"{key}_ci95"], 3) for key in metrics.SEED_METRIC_KEYS]
        rows.append((str(name), str(int(row["num_seeds"])), *cells))
    header = ("variant", "seeds", "detection rate", "blind rows", "worst-row rate", "row-rate spread", "top-bottom asymmetry")
    caption = (
        "The same metrics computed per run (each run's `sweep/metrics.json`, from the vertical sweep, else the grid) "
        "and averaged over seeds: mean ± Student-t 95% confidence interval, the mean alone for one seed."
    )
    return Table("blind_spots_by_seed", header, tuple(rows), caption, data)


def blind_spot_section(study: Study, entries: list[BlindSpotEntry]) -> Section:
    section = Section("Blind-spot metrics", 3)
    if not entries:
        section.blocks.append(Note("No variant has row rates (neither the vertical nor the grid sweep ran), so there are no blind-spot metrics."))
        return section
    section.blocks.append(_pooled_table(entries))
    seed_table = _seed_table(study)
    if seed_table is not None:
        section.blocks.append(seed_table)
    return section


def heatmap_section(study: Study, colours: Mapping[str, str], figures: MutableMapping[str, FigureSource]) -> Section:
    """Draw the grid-mode heatmaps, or leave a note when the grid sweep did not run."""
    section = Section("Heatmaps", 3)
    modes = list(study.params["sweep"]["modes"])
    if "grid" not in modes:
        section.blocks.append(
            Note(f"Skipped: the grid sweep did not run (`sweep.modes` is {modes}). Add `grid` to `sweep.modes` for heatmaps.")
        )
        return section
    cells = {name: metrics.pooled_rates(study, name, "rate_by_cell") for name in study.variant_names}
    cells = {name: frame for name, frame in cells.items() if frame is not None}
    if not cells:
        section.blocks.append(Note("Skipped: the grid sweep produced no placements."))
        return section
    figure, caption = sweep_figures.plot_heatmaps(cells, colours, int(study.params["sweep"]["grid_step"]))
    figures["heatmaps.png"] = figure
    section.blocks.append(FigureRef("heatmaps.png", caption, "detection-rate heatmaps per variant"))
    return section


def _analysis_metrics_table(study: Study) -> Table | None:
    """Tabulate the numeric headline values of each variant's analysis/metrics.json, one row per key."""
    flat = {
        name: flatten_metrics(analysis.metrics) for name, analysis in study.analysis.items() if analysis is not None and analysis.metrics
    }
    if not flat:
        return None
    keys = list(dict.fromkeys(key for values in flat.values() for key in values))
    keys = [key for key in keys if all(_is_number(values.get(key)) for values in flat.values() if key in values)]
    data = pd.DataFrame({name: [values.get(key) for key in keys] for name, values in flat.items()}, index=pd.Index(keys, name="metric"))
    rows = [(key, *(fmt.number(values.get(key), 3) for values in flat.values())) for key in keys]
    caption = "Headline numbers of the analyze stage (`runs/<variant>/analysis/metrics.json`), per variant."
    return Table("analysis_metrics", ("metric", *flat), tuple(rows), caption, data)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def analysis_sections(study: Study, figures: MutableMapping[str, FigureSource]) -> list[Section]:
    """Show the analyze stage's figures grouped by kind, one per variant, with the stage's captions."""
    section = Section("Spatial-bias analysis", 3)
    section.blocks.append(
        Paragraph("Figures of `blindspots analyze`, made with the model of each variant's first seed. Captions come from the stage.")
    )
    section.blocks += [Note(text) for text in study.analysis_notes]
    table = _analysis_metrics_table(study)
    if table is not None:
        section.blocks.append(table)

    by_kind: dict[str, list[tuple[str, AnalysisFigure]]] = {}
    for name, analysis in study.analysis.items():
        if analysis is None:
            continue
        for figure in analysis.figures:
            by_kind.setdefault(figure.file_name, []).append((name, figure))

    known = [name for name in ANALYSIS_TITLES if name in by_kind]
    subsections = []
    for file_name in known + [name for name in by_kind if name not in ANALYSIS_TITLES]:
        entries = by_kind[file_name]
        title = ANALYSIS_TITLES.get(file_name, Path(file_name).stem.replace("_", " ").capitalize())
        subsection = Section(title, 4)
        for variant, figure in entries:
            target = f"analysis_{variant}_{file_name}"
            figures[target] = figure.path
            subsection.blocks.append(FigureRef(target, f"`{variant}`: {figure.caption}", f"{title} of {variant}"))
        subsections.append(subsection)
    return [section, *subsections]


def training_section(study: Study, colours: Mapping[str, str], figures: MutableMapping[str, FigureSource]) -> Section:
    section = Section("Training curves", 3)
    section.blocks += [Note(text) for text in study.training_notes]
    series = {key: run.training for key, run in study.runs.items() if run.training}
    if not series:
        return section
    figure, caption = report_figures.plot_training_curves(series, colours)
    figures["training_curves.png"] = figure
    section.blocks.append(FigureRef("training_curves.png", caption, "training loss by step per run"))
    return section


def results_sections(
    study: Study, entries: list[BlindSpotEntry], colours: Mapping[str, str], figures: MutableMapping[str, FigureSource]
) -> list[Section]:
    return [
        Section("Results", 2),
        accuracy_section(study, colours, figures),
        pr_section(study, colours, figures),
        rate_section(study, colours, figures),
        blind_spot_section(study, entries),
        heatmap_section(study, colours, figures),
        *analysis_sections(study, figures),
        training_section(study, colours, figures),
    ]
