"""Stage `analyze`: spatial-bias analysis of one variant's trained detector.

Loads the model of the variant's first seed from
`models/<variant>/seed_<seed>/`, reads test images from the prepared
split, and writes the padding audit, constant-input activation maps,
feature means, mean kernels and foveation maps to
`runs/<variant>/analysis/` (file list: `blindspots.analysis.run.OUTPUT_FILES`,
plus mean_colour_maps.png and run.json). The folder is replaced as a
whole, so a failed run leaves the previous one.
"""

from __future__ import annotations

import argparse
import glob
import logging
from pathlib import Path
from typing import Any

from blindspots import paths
from blindspots.config import ConfigError, resolve_variant

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant", required=True, help="variant to analyse, a name under `variants` in params.yaml; uses its first seed's model"
    )


def output_dir(variant: str) -> Path:
    return paths.RUNS_DIR / variant / "analysis"


def _check_inputs(config: Any, args: argparse.Namespace) -> tuple[int, Path]:
    """Check the variant, the analyze params, the model folder and the test shards, and return (seed, model folder).

    Runs before TensorFlow is imported, so a wrong argument fails in a second.
    """
    variant = resolve_variant(config, args.variant)
    if int(config.analyze.data_batches) < 1:
        raise ConfigError(
            f"invalid value {config.analyze.data_batches} for 'analyze.data_batches'. "
            "Allowed: an integer >= 1, the number of test batches averaged for feature_means.png."
        )
    seed = variant.seeds[0]
    model_dir = paths.model_dir(args.variant, seed)
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"model folder {model_dir} not found. Train it first: blindspots train --variant {args.variant} --seed {seed}"
        )
    if not glob.glob(paths.split_pattern("test")):
        raise FileNotFoundError(f"no prepared test shards match {paths.split_pattern('test')}. Run `blindspots prepare` first.")
    return seed, model_dir


def run(config: Any, args: argparse.Namespace) -> None:
    from blindspots import runinfo
    from blindspots.analysis.run import analyze_model
    from blindspots.config.loader import to_dict
    from blindspots.modeling.export import load_model

    seed, model_dir = _check_inputs(config, args)
    with runinfo.stage_timer(f"analyze {args.variant}"):
        logger.info("inputs: model %s, test shards %s", model_dir, paths.split_pattern("test"))
        model, model_cfg, _ = load_model(model_dir)
        _warn_on_config_mismatch(model_cfg, resolve_variant(config, args.variant).model, args.variant, model_dir)

        out_dir = output_dir(args.variant)
        with runinfo.atomic_path(out_dir) as temp:
            temp.mkdir()
            metrics = analyze_model(model, model_cfg, config.analyze, paths.split_pattern("test"), temp, f"{args.variant} seed {seed}")
            runinfo.write_run_record(temp, "analyze", to_dict(config), extra={"variant": args.variant, "seed": seed, "model_dir": str(model_dir)})
            written = sorted(path.name for path in temp.iterdir())
        logger.info("wrote %d files to %s: %s", len(written), out_dir, ", ".join(written))
        logger.info(
            "%s: %d/%d layers uneven in height/width, zero-input |top-bottom| %s, foveation centre/border %s",
            args.variant,
            metrics["uneven_layers_height"],
            metrics["uneven_layers_width"],
            _format(metrics.get("zero_input_abs_top_bottom")),
            _format(metrics.get("foveation_centre_border_ratio")),
        )


def _warn_on_config_mismatch(model_cfg: Any, expected: Any, variant: str, model_dir: Path) -> None:
    """Log a warning for each geometry key where the saved model differs from the params.

    The analysis follows the saved model, because that is the network whose weights it reads.
    """
    for key in ("padding", "alignment", "input_size", "width_multiplier"):
        saved, requested = _plain(model_cfg[key]), _plain(expected[key])
        if saved != requested:
            logger.warning(
                "model in %s has %s %s, but params give variant %s %s. Analysing the model as saved.",
                model_dir,
                key,
                saved,
                variant,
                requested,
            )


def _plain(value: Any) -> Any:
    """Turn an OmegaConf list into a list of ints, so it compares equal to a plain list."""
    if isinstance(value, (str, int, float)):
        return value
    return [int(item) for item in value]


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
