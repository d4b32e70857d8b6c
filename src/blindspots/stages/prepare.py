"""Stage `prepare`: parse, repair, label-map and split the dataset into TFRecord shards.

Reads train.yaml, test.yaml and additional_train.yaml from `data.root` and
writes into the output folder (data/prepared by default), replaced as a
whole only on success: `<split>-NNNNN-of-NNNNN.tfrecord` for train, val
and test, `classes.json`, `stats.json`, `box_sizes.png`,
`anchor_coverage.json` and `run.json`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from omegaconf import DictConfig

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_DIR = "data/prepared"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        default=DEFAULT_OUTPUT_DIR,
        help=f"folder for the TFRecord shards, statistics and figures (default: {DEFAULT_OUTPUT_DIR})",
    )


def run(config: DictConfig, args: argparse.Namespace) -> None:
    """Write the prepared splits, statistics and anchor coverage of `data.root`."""
    from blindspots.config.loader import to_dict
    from blindspots.data import bstld, records, stats
    from blindspots.runinfo import atomic_path, stage_timer, write_json, write_run_record

    prepare = config.prepare
    root = Path(config.data.root)
    out_dir = Path(getattr(args, "output_dir", DEFAULT_OUTPUT_DIR))
    with stage_timer("prepare"):
        logger.info("inputs: %s (label map %s), output: %s", root, prepare.label_map, out_dir)
        splits = bstld.load_splits(
            root,
            label_map=prepare.label_map,
            min_box_side=float(prepare.min_box_side),
            val_sequences=int(prepare.val_sequences),
            use_additional=bool(prepare.use_additional),
        )
        summary = stats.dataset_stats(splits.frames, splits.class_names, splits.reports)
        coverage = stats.anchor_coverage_by_split(splits.frames, config.model)

        with atomic_path(out_dir) as staging:
            staging.mkdir()
            shards = {}
            for split, frames in splits.frames.items():
                paths = records.write_split(frames, staging, split, int(prepare.shards), list(prepare.image_size))
                shards[split] = [path.name for path in paths]
            write_json(staging / "classes.json", list(splits.class_names))
            write_json(staging / "stats.json", summary)
            write_json(staging / "anchor_coverage.json", coverage)
            stats.plot_box_sizes(summary, staging / "box_sizes.png")
            record_config = {
                "data": {"root": str(root), "source": config.data.source},
                "prepare": to_dict(prepare),
                "model": to_dict(config.model),  # the anchor coverage depends on it
            }
            write_run_record(staging, "prepare", record_config, {"shards": shards})
        logger.info("outputs: %s (%s)", out_dir, ", ".join(f"{split}: {len(names)} shard(s)" for split, names in shards.items()))
