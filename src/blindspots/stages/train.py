"""`blindspots train`: train one (variant, seed) detector."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from blindspots import paths, runinfo
from blindspots.config.loader import ConfigError, resolve_variant, to_dict

logger = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# The source that defines the network and its training, as listed in the
# train stage's dependencies in dvc.yaml. Checkpoints written by other code
# or from other training shards are not resumed, because DVC reruns this
# stage after such a change and resuming would return the old weights.
TRAINING_CODE = ("modeling", "training", "stages/train.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", required=True, help="variant name, a key of `variants` in params.yaml")
    parser.add_argument("--seed", type=int, required=True, help="seed, one of the variant's `seeds`")


def _class_names(prepared_dir) -> list[str]:
    path = prepared_dir / "classes.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run the prepare stage first (dvc repro prepare)")
    return list(json.loads(path.read_text(encoding="utf-8")))


def training_fingerprint(run_config: dict[str, Any], shards: list[Path], code_root: Path = PACKAGE_ROOT) -> str:
    """Return the checkpoint fingerprint of a run: its config, training code and training shards."""
    from blindspots.training.trainer import config_fingerprint

    code_files: list[Path] = []
    for name in TRAINING_CODE:
        path = code_root / name
        code_files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    shard_root = shards[0].parent if shards else Path(".")
    return config_fingerprint(
        {
            **run_config,
            "code_sha256": runinfo.files_digest(code_files, code_root),
            "train_shards_sha256": runinfo.files_digest(shards, shard_root),
        }
    )


def run(config: Any, args: argparse.Namespace) -> None:
    resolved = resolve_variant(config, args.variant)
    if args.seed not in resolved.seeds:
        raise ConfigError(
            f"seed {args.seed} is not listed for variant '{args.variant}' (variants.{args.variant}.seeds: {list(resolved.seeds)})"
        )
    import tensorflow as tf
    from dvclive import Live

    from blindspots.data.records import read_dataset
    from blindspots.modeling.export import save_detector
    from blindspots.training.trainer import Trainer, seed_everything

    stage = f"train {paths.run_key(args.variant, args.seed)}"
    with runinfo.stage_timer(stage):
        run_config = {"model": to_dict(resolved.model), "train": to_dict(config.train), "variant": args.variant, "seed": args.seed}
        class_names = _class_names(paths.PREPARED_DIR)
        pattern = paths.split_pattern("train")
        shards = [Path(name) for name in tf.io.gfile.glob(pattern)]
        if not shards:
            raise ConfigError(f"no training shards match {pattern}: run the prepare stage first")
        logger.info("variant %s seed %d: padding %s, input %s, %d classes, shards %s",
                    args.variant, args.seed, resolved.model.padding, list(resolved.model.input_size), len(class_names), pattern)

        seed_everything(args.seed)
        work = paths.run_dir(args.variant, args.seed) / "train"
        trainer = Trainer(
            resolved.model,
            config.train,
            len(class_names),
            args.seed,
            work / "checkpoints",
            training_fingerprint(run_config, shards),
            class_names=class_names,
        )
        records = read_dataset(pattern)
        start_step = trainer.restore(records)
        live_dir = work / "dvclive"
        if start_step == 0:
            shutil.rmtree(live_dir, ignore_errors=True)
            shutil.rmtree(work / "tensorboard", ignore_errors=True)
        with Live(str(live_dir), resume=start_step > 0, save_dvc_exp=False, dvcyaml=None, report=None) as live:
            result = trainer.fit(records, live=live, summary_dir=work / "tensorboard")

        out = paths.model_dir(args.variant, args.seed)
        with runinfo.atomic_path(out) as temp:
            save_detector(temp, result.model, resolved.model, class_names)
            summary = {
                "steps": result.steps,
                "resumed_from_step": result.resumed_from,
                "final_loss": result.final_loss,
                "train_seconds": result.seconds,
                "images_per_second": result.images_per_second,
                "parameters": int(result.model.count_params()),
                "pretrain": result.pretrain,
            }
            runinfo.write_json(temp / "train_summary.json", summary)
            runinfo.write_run_record(temp, "train", run_config)
        logger.info("wrote %s: %s", out, summary)
