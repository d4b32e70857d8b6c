"""Stage `sweep`: measure detection rate by light position for one trained run.

Loads the detector from `models/<variant>/seed_<seed>/` and pastes light
crops from the prepared test split into light-free frames, at every
position of each mode in `sweep.modes`. It writes placements.parquet,
metrics.json, rate_by_row.csv and run.json to
`runs/<variant>/seed_<seed>/sweep/`, plus rate_by_column.csv and
rate_by_cell.csv when horizontal or grid ran. The folder is replaced as a
whole, so a failed run leaves the previous one.
"""

from __future__ import annotations

import argparse
import glob
import logging
from pathlib import Path
from typing import Any, Iterator

from blindspots import paths
from blindspots.config import ConfigError, resolve_variant

logger = logging.getLogger(__name__)

# Splits searched for light-free background frames, in this order.
BACKGROUND_SPLITS = ("test", "val", "train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="variant to sweep, a name under `variants` in params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="training seed of the run to sweep, one of the variant's seeds")


def output_dir(variant: str, seed: int) -> Path:
    return paths.run_dir(variant, seed) / "sweep"


def _stream(pattern: str) -> Iterator[Any]:
    """Yield the examples of `pattern`, opening the files only on the first read."""
    from blindspots.data.records import read_dataset

    yield from read_dataset(pattern)


def _check_inputs(config: Any, args: argparse.Namespace) -> Path:
    """Check the variant, seed, model folder and test shards, and return the model folder.

    Runs before TensorFlow is imported, so a wrong argument fails in a second.
    """
    variant = resolve_variant(config, args.variant)
    if args.seed not in variant.seeds:
        raise ConfigError(
            f"seed {args.seed} is not a seed of variant '{args.variant}'. "
            f"Its seeds are {list(variant.seeds)}. Pass one of them, or add it to variants.{args.variant}.seeds in params.yaml."
        )
    model_dir = paths.model_dir(args.variant, args.seed)
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"model folder {model_dir} not found. Train it first: blindspots train --variant {args.variant} --seed {args.seed}"
        )
    if not glob.glob(paths.split_pattern("test")):
        raise FileNotFoundError(f"no prepared test shards match {paths.split_pattern('test')}. Run `blindspots prepare` first.")
    return model_dir


def run(config: Any, args: argparse.Namespace) -> None:
    from blindspots import runinfo
    from blindspots.config.loader import to_dict
    from blindspots.modeling.export import load_detector
    from blindspots.sweep import compose, runner

    model_dir = _check_inputs(config, args)
    settings = config.sweep
    with runinfo.stage_timer("sweep"):
        detector, input_size, class_names = load_detector(model_dir)
        input_size = (int(input_size[0]), int(input_size[1]))
        expected = tuple(int(v) for v in resolve_variant(config, args.variant).model.input_size)
        if input_size != expected:
            logger.warning(
                "model in %s takes input size %s, but params give variant %s input size %s. Sweeping at the model's size.",
                model_dir,
                input_size,
                args.variant,
                expected,
            )

        crops = compose.select_light_crops(
            _stream(paths.split_pattern("test")), int(settings.crops_per_class), int(settings.seed), len(class_names), input_size
        )
        bank = compose.build_crop_bank(crops)
        streams = [_stream(paths.split_pattern(split)) for split in BACKGROUND_SPLITS if glob.glob(paths.split_pattern(split))]
        backgrounds = compose.select_backgrounds(streams, int(settings.backgrounds), int(settings.seed), input_size)
        logger.info("sweep %s seed %d: %d crops, %d backgrounds", args.variant, args.seed, len(bank), len(backgrounds))

        table = runner.run_sweep_modes(detector, bank, backgrounds, input_size, settings, args.variant, args.seed, progress=True)

        crops_per_class = {name: int((bank.classes == index).sum()) for index, name in enumerate(class_names)}
        summary = {
            "variant": args.variant,
            "seed": args.seed,
            "sweep_seed": int(settings.seed),
            "input_size": list(input_size),
            "crops_per_class": crops_per_class,
            "backgrounds": len(backgrounds),
        }
        out_dir = output_dir(args.variant, args.seed)
        with runinfo.atomic_path(out_dir) as temp:
            temp.mkdir()
            runner.write_sweep_outputs(temp, table, float(settings.blind_fraction), summary)
            runinfo.write_run_record(temp, "sweep", to_dict(config), extra={**summary, "model_dir": str(model_dir)})
        logger.info("sweep outputs written to %s", out_dir)
