"""Assemble the report from a collected `Study` and write the reports/ folder.

The folder contains index.html (self-contained), report.md, figures/*.png,
tables/*.csv and *.md, summary.json (headline numbers per variant, a DVC
metrics file) and run.json. `write_report` replaces the folder as a whole,
so a failure leaves the previous report in place.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from blindspots import runinfo
from blindspots.report import metrics
from blindspots.report.collect import Study
from blindspots.report.document import Bullets, Document, Paragraph, Section
from blindspots.report.html import render_html
from blindspots.report.markdown import render_markdown, table_markdown
from blindspots.report.results_sections import results_sections
from blindspots.report.setup_sections import setup_sections
from blindspots.report.summary import BlindSpotEntry, summary_sentences
from blindspots.sweep.figures import variant_colours

logger = logging.getLogger(__name__)

FIGURE_DPI = 120


@dataclass
class ReportContent:
    """A built report: the document, the figures it shows (file name -> Figure or PNG to copy), and summary.json."""

    document: Document
    figures: dict[str, Figure | Path]
    summary: dict[str, Any]
    summary_sentences: list[str]


def blind_spot_entries(study: Study, verdicts: dict[str, metrics.PaddingVerdict]) -> dict[str, BlindSpotEntry | None]:
    """Compute each variant's pooled blind-spot metrics, or None for a variant without row rates."""
    return {name: metrics.blind_spot_entry(study, name, verdicts[name]) for name in study.variant_names}


def _subtitle(study: Study) -> str:
    provenance = study.provenance
    dirty = ", with uncommitted changes" if provenance.git_dirty else ""
    runs = len(study.runs)
    return (
        f"Generated {provenance.date} from {runs} run(s) of {len(study.variants)} variant(s), "
        f"git commit `{provenance.git_commit[:12]}`{dirty}, params SHA-256 `{provenance.params_sha256[:12]}`."
    )


def build_report(study: Study) -> ReportContent:
    """Compute every number, sentence, table and figure of the report from `study`."""
    colours = variant_colours(study.variant_names)
    verdicts = {setup.name: metrics.padding_verdict(setup) for setup in study.variants}
    entries_by_variant = blind_spot_entries(study, verdicts)
    entries = [entry for entry in entries_by_variant.values() if entry is not None]
    sentences = summary_sentences(metrics.accuracy_entries(study), entries)

    figures: dict[str, Figure | Path] = {}
    summary_section = Section("Summary", 2, [Bullets(tuple(sentences))])
    summary_section.blocks.append(
        Paragraph(
            "Sentences are generated from the tables below. Two numbers are called within the confidence intervals "
            "when their 95% intervals overlap: Student-t intervals across seeds for mAP, Wilson intervals over "
            "placements for detection rates."
        )
    )
    document = Document(
        title=str(study.params["report"]["title"]),
        subtitle=_subtitle(study),
        sections=[
            summary_section,
            *setup_sections(study, verdicts, figures),
            *results_sections(study, entries, colours, figures),
        ],
    )
    summary = metrics.summary_json(study.accuracy, entries_by_variant, study.variant_names)
    return ReportContent(document, figures, summary, sentences)


def _write_figures(figures: dict[str, Figure | Path], folder: Path) -> None:
    folder.mkdir()
    for file_name, source in figures.items():
        target = folder / file_name
        if isinstance(source, Figure):
            source.savefig(target, dpi=FIGURE_DPI, format="png")
        else:
            shutil.copyfile(source, target)


def _write_tables(document: Document, folder: Path) -> None:
    folder.mkdir()
    for table in document.tables():
        (folder / f"{table.name}.csv").write_text(table.data.to_csv(), encoding="utf-8")
        caption = f"{table.caption}\n\n" if table.caption else ""
        (folder / f"{table.name}.md").write_text(caption + table_markdown(table), encoding="utf-8")


def write_report(content: ReportContent, out_dir: Path | str, run_config: dict[str, Any]) -> Path:
    """Write the whole reports folder atomically and return its path.

    `run_config` is the resolved config recorded in run.json.
    """
    out_dir = Path(out_dir)
    with runinfo.atomic_path(out_dir) as temp:
        temp.mkdir()
        _write_figures(content.figures, temp / "figures")
        _write_tables(content.document, temp / "tables")
        (temp / "report.md").write_text(render_markdown(content.document), encoding="utf-8")
        (temp / "index.html").write_text(render_html(content.document, temp / "figures"), encoding="utf-8")
        runinfo.write_json(temp / "summary.json", content.summary)
        runinfo.write_run_record(temp, "report", run_config, {"figures": sorted(content.figures)})
    logger.info("wrote %s: %d figures, %d tables", out_dir, len(content.figures), len(content.document.tables()))
    return out_dir
