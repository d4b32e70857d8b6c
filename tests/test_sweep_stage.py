"""The sweep stage's arguments and the input checks it runs before loading a model."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blindspots.config import ConfigError, load_params
from blindspots.stages import sweep as sweep_stage

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("variants:\n  even:\n    seeds: [0, 1]\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return load_params(tmp_path / "params.yaml")


def _args(variant: str = "even", seed: int = 0) -> argparse.Namespace:
    return argparse.Namespace(variant=variant, seed=seed)


def test_stage_arguments_parse():
    parser = argparse.ArgumentParser()
    sweep_stage.add_arguments(parser)
    args = parser.parse_args(["--variant", "even", "--seed", "1"])
    assert (args.variant, args.seed) == ("even", 1)


def test_stage_output_dir():
    assert sweep_stage.output_dir("even", 1).as_posix() == "runs/even/seed_1/sweep"


def test_stage_rejects_unknown_seed(config):
    with pytest.raises(ConfigError, match="seed 7 is not a seed of variant 'even'"):
        sweep_stage._check_inputs(config, _args(seed=7))


def test_stage_rejects_unknown_variant(config):
    with pytest.raises(ConfigError, match="unknown variant 'odd'"):
        sweep_stage._check_inputs(config, _args(variant="odd"))


def test_stage_requires_model_dir(config):
    with pytest.raises(FileNotFoundError, match="blindspots train --variant even --seed 0"):
        sweep_stage._check_inputs(config, _args())


def test_stage_requires_test_shards(config, tmp_path):
    (tmp_path / "models" / "even" / "seed_0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="blindspots prepare"):
        sweep_stage._check_inputs(config, _args())


def test_stage_accepts_ready_inputs(config, tmp_path):
    (tmp_path / "models" / "even" / "seed_0").mkdir(parents=True)
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "test-00000-of-00001.tfrecord").write_bytes(b"")
    assert sweep_stage._check_inputs(config, _args()).as_posix() == "models/even/seed_0"


def _write_prepared(tmp_path) -> None:
    """Write a 2-frame test split (one light per class 0 and 1) and a 1-frame val split with no light."""
    from PIL import Image

    from blindspots.data import records
    from blindspots.data.bstld import Box, Frame

    def frame(name: str, split: str, boxes: tuple[Box, ...], value: int) -> Frame:
        path = tmp_path / "rgb" / split / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((64, 96, 3), value, np.uint8)).save(path)
        return Frame(f"rgb/{split}/{name}.png", path, None, boxes, 64, 96)

    test = [
        frame("a", "test", (Box("Green", 1, False, 10.0, 20.0, 22.0, 25.0),), 40),
        frame("b", "test", (Box("Red", 0, False, 30.0, 50.0, 40.0, 54.0),), 60),
    ]
    val = [frame("c", "val", (), 80)]
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    records.write_split(test, prepared, "test", 1, (64, 96))
    records.write_split(val, prepared, "val", 1, (64, 96))


@pytest.mark.slow
def test_stage_run_writes_outputs(tmp_path, monkeypatch):
    # Slow: builds the SSD twice (save, then load) and traces it with NMS.
    from blindspots.config.loader import resolve_variant
    from blindspots.modeling import export, ssd

    params = "preset: tiny\nvariants:\n  even:\n    seeds: [0]\n"
    (tmp_path / "params.yaml").write_text(params, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    overrides = ["sweep.modes=[vertical,grid]", "sweep.step=8", "sweep.grid_step=16", "sweep.columns=1", "sweep.batch_size=8"]
    config = load_params(tmp_path / "params.yaml", overrides, preset_dir=REPO_ROOT / "conf" / "presets")
    _write_prepared(tmp_path)
    model_cfg = resolve_variant(config, "even").model
    export.save_detector(tmp_path / "models" / "even" / "seed_0", ssd.build_ssd(model_cfg, 4), model_cfg, ["Off", "Green", "Yellow", "Red"])

    sweep_stage.run(config, _args())

    out_dir = tmp_path / "runs" / "even" / "seed_0" / "sweep"
    assert sorted(path.name for path in out_dir.iterdir()) == [
        "metrics.json",
        "placements.parquet",
        "rate_by_cell.csv",
        "rate_by_column.csv",
        "rate_by_row.csv",
        "run.json",
    ]
    saved = json.loads((out_dir / "metrics.json").read_text())
    # Two unoccluded lights (classes Off and Green) and the one empty frame from val.
    assert saved["crops_per_class"] == {"Off": 1, "Green": 1, "Yellow": 0, "Red": 0}
    assert saved["backgrounds"] == 1
    table = pd.read_parquet(out_dir / "placements.parquet")
    assert set(table["mode"]) == {"vertical", "grid"}
    assert set(table["background_id"]) == {"rgb/val/c.png"}
    assert saved["vertical"]["placements"] == int((table["mode"] == "vertical").sum())


def test_stage_import_skips_tensorflow():
    code = "import sys, blindspots.stages.sweep; sys.exit(int('tensorflow' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
