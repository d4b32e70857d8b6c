"""Stage `report`: write the study report from the outputs of every other stage.

Reads data/prepared/, metrics/ and runs/ for the runs of
params.yaml and replaces reports/ as a whole: index.html (self-contained),
report.md, figures/, tables/, summary.json and run.json. A missing
required input raises an error that names the file and the command that
writes it. A missing analysis or training curve leaves a note in the report.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from blindspots import paths

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        default=str(paths.REPORTS_DIR),
        help=f"folder to replace with the report (default: {paths.REPORTS_DIR})",
    )


def run(config: Any, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")

    from blindspots import runinfo
    from blindspots.config.loader import to_dict
    from blindspots.report.build import build_report, write_report
    from blindspots.report.collect import collect_study

    out_dir = Path(getattr(args, "output_dir", paths.REPORTS_DIR))
    with runinfo.stage_timer("report"):
        study = collect_study(config, Path("."))
        logger.info("inputs: %s, %s and %s for %d runs", paths.PREPARED_DIR, paths.METRICS_DIR, paths.RUNS_DIR, len(study.runs))
        content = build_report(study)
        for sentence in content.summary_sentences:
            logger.info("summary: %s", sentence)
        write_report(content, out_dir, to_dict(config))
        logger.info("outputs: %s (index.html, report.md, %d figures, summary.json)", out_dir, len(content.figures))
