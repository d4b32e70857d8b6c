"""`blindspots evaluate`: accuracy of one trained run, or the table across runs."""

from __future__ import annotations

import argparse
import json
import logging
import math
from typing import Any

from blindspots import paths, runinfo
from blindspots.config.loader import ConfigError, run_ids, to_dict

logger = logging.getLogger(__name__)
# Precision-recall points kept per class for the DVC plot: enough for a
# smooth curve, few enough that BSTLD's 13,000 test boxes stay plottable.
CURVE_POINTS = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", help="variant to evaluate (with --seed)")
    parser.add_argument("--seed", type=int, help="seed of the run to evaluate")
    parser.add_argument(
        "--table", action="store_true", help="instead of one run, write the accuracy table across all runs in params.yaml"
    )


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate_run(config: Any, variant: str, seed: int) -> dict[str, Any]:
    """Evaluate one run on the test split and write its metrics and PR curves."""
    import pandas as pd

    from blindspots.data.records import read_dataset
    from blindspots.evaluation.ap import curve_rows, evaluate_detections
    from blindspots.evaluation.coco import coco_metrics
    from blindspots.evaluation.confusion import class_confusion
    from blindspots.evaluation.inference import collect_detections
    from blindspots.modeling.export import load_detector

    cfg = config.evaluate
    detector, input_size, class_names = load_detector(paths.model_dir(variant, seed))
    ground_truth, detections = collect_detections(
        detector, read_dataset(paths.split_pattern("test")), input_size, int(cfg.batch_size)
    )
    result = evaluate_detections(
        ground_truth,
        detections,
        class_names,
        iou_threshold=float(cfg.iou),
        interpolation=cfg.interpolation,
        count_empty_frames=bool(cfg.count_empty_frames),
        width_edges=[float(edge) for edge in cfg.width_buckets],
    )
    metrics = result.to_dict()
    metrics["coco"] = coco_metrics(ground_truth, detections, class_names, count_empty_frames=bool(cfg.count_empty_frames))
    confusion = class_confusion(ground_truth, detections, class_names, iou_threshold=float(cfg.iou))
    metrics["confusion"] = confusion.to_dict()
    metrics = _finite_or_none(metrics)

    out = paths.evaluate_dir(variant, seed)
    with runinfo.atomic_path(out) as temp:
        temp.mkdir()
        runinfo.write_json(temp / "metrics.json", metrics)
        curves = pd.DataFrame(curve_rows(result.curves, max_points_per_class=CURVE_POINTS))
        runinfo.write_text(temp / "pr_curves.csv", curves.to_csv(index=False))
        runinfo.write_run_record(temp, "evaluate", {"evaluate": to_dict(cfg), "variant": variant, "seed": seed})
    logger.info("%s seed %d: mAP %.3f, weighted mAP %.3f, COCO AP %.3f, class accuracy of found lights %.3f",
                variant, seed, metrics.get("mean_ap") or float("nan"), metrics.get("weighted_mean_ap") or float("nan"),
                metrics["coco"].get("ap") or float("nan"), confusion.accuracy())
    return metrics


def write_table(config: Any) -> None:
    """Aggregate every run's metrics into the accuracy table (CSV and Markdown)."""
    from blindspots.evaluation.table import accuracy_table, write_accuracy_table

    runs = {}
    for variant, seed in run_ids(config):
        path = paths.evaluate_dir(variant, seed) / "metrics.json"
        if not path.is_file():
            raise ConfigError(f"{path} not found: run `dvc repro` so that every run is evaluated first")
        runs[(variant, seed)] = json.loads(path.read_text(encoding="utf-8"))
    table = accuracy_table(runs)
    out = paths.METRICS_DIR
    write_accuracy_table(table, out / "accuracy.csv", out / "accuracy.md")
    logger.info("wrote the accuracy table of %d variants to %s", len(table), out)


def run(config: Any, args: argparse.Namespace) -> None:
    if args.table:
        with runinfo.stage_timer("evaluate --table"):
            write_table(config)
        return
    if args.variant is None or args.seed is None:
        raise ConfigError("blindspots evaluate needs --variant and --seed, or --table")
    if (args.variant, args.seed) not in run_ids(config):
        raise ConfigError(f"run ({args.variant}, seed {args.seed}) is not defined in params.yaml variants")
    with runinfo.stage_timer(f"evaluate {paths.run_key(args.variant, args.seed)}"):
        evaluate_run(config, args.variant, args.seed)
