"""The `blindspots` command: one subcommand per pipeline stage.

Every stage subcommand reads `params.yaml` (or `--params`), validates it,
and accepts Hydra-style `key=value` overrides after its options, e.g.

    blindspots train --variant tf_same_even --seed 0 train.steps=50
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

import blindspots  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads
from blindspots.config import ConfigError, load_params

logger = logging.getLogger("blindspots")

# Subcommand -> (module under blindspots.stages, one-line help). Modules are
# imported only when their subcommand runs, so `--help` stays fast.
STAGES: dict[str, tuple[str, str]] = {
    "download": ("download", "Fetch and extract BSTLD archives, or generate the synthetic scenes."),
    "prepare": ("prepare", "Parse, repair, label-map and split the scenes into TFRecord shards."),
    "train": ("train", "Train one (variant, seed) SSD MobileNet v1 detector."),
    "evaluate": ("evaluate", "Compute AP, mAP, weighted mAP and COCO metrics for one trained run."),
    "sweep": ("sweep", "Measure detection rate by position as a light shifts across the frame."),
    "analyze": ("analyze", "Padding audit, zero-input activation maps, mean kernels and foveation maps."),
    "report": ("report", "Write the HTML and Markdown study report."),
    "pipeline": ("pipeline", "Write conf/runs.yaml, the (variant, seed) list that dvc.yaml expands."),
}
# Subcommands that take no params file.
TOOLS: dict[str, tuple[str, str]] = {
    "padding-check": ("padding_check", "Audit where a network pads unevenly for a given input size."),
}


def _build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Build the parser, importing only the selected subcommand's module."""
    parser = argparse.ArgumentParser(
        prog="blindspots",
        description="Replicate 'Mind the Pad - CNNs Can Develop Blind Spots' (Alsallakh et al., ICLR 2021).",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in {**STAGES, **TOOLS}.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name in STAGES:
            sub.add_argument("--params", default="params.yaml", help="path to the params file (default: params.yaml)")
            sub.add_argument(
                "overrides",
                nargs="*",
                metavar="KEY=VALUE",
                help="Hydra-style overrides applied after params.yaml, e.g. train.steps=50",
            )
        if name == selected:
            add_arguments = getattr(_stage_module(module_name), "add_arguments", None)
            if add_arguments is not None:
                add_arguments(sub)
        sub.set_defaults(module_name=module_name)
    return parser


def _stage_module(module_name: str):
    return importlib.import_module(f"blindspots.stages.{module_name}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in argv if arg in STAGES or arg in TOOLS), None)
    parser = _build_parser(selected)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    module = _stage_module(args.module_name)
    try:
        if args.command in STAGES:
            config = load_params(args.params, args.overrides)
            module.run(config, args)
        else:
            module.run(args)
    except (ConfigError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    except ValueError as error:
        # The project's input errors (DatasetError, GeometryError, AuditError)
        # derive from ValueError and carry a message that names the fix.
        logger.error("%s: %s", type(error).__name__, error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
