"""The analyze stage: input checks, headline metrics, and a full run on the tiny preset."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blindspots.analysis import run as analysis_run
from blindspots.config import ConfigError, load_params
from blindspots.stages import analyze as analyze_stage

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = "preset: tiny\nvariants:\n  even:\n    seeds: [0]\n"
# Pixel colours of the three prepared test frames, 64 x 96 px each.
FRAME_COLOURS = (40, 60, 80)


def _args(variant: str = "even") -> argparse.Namespace:
    return argparse.Namespace(variant=variant)


def _load(tmp_path: Path, params: str, overrides: tuple[str, ...] = ()):
    (tmp_path / "params.yaml").write_text(params, encoding="utf-8")
    return load_params(tmp_path / "params.yaml", overrides, preset_dir=REPO_ROOT / "conf" / "presets")


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return _load(tmp_path, "variants:\n  even:\n    seeds: [3, 4]\n")


def test_stage_arguments_parse() -> None:
    parser = argparse.ArgumentParser()
    analyze_stage.add_arguments(parser)
    assert parser.parse_args(["--variant", "even"]).variant == "even"


def test_stage_output_dir() -> None:
    assert analyze_stage.output_dir("even").as_posix() == "runs/even/analysis"


def test_stage_rejects_unknown_variant(config) -> None:
    with pytest.raises(ConfigError, match="unknown variant 'odd'"):
        analyze_stage._check_inputs(config, _args("odd"))


def test_stage_rejects_zero_batches(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = _load(tmp_path, "variants:\n  even: {}\n", ("analyze.data_batches=0",))
    with pytest.raises(ConfigError, match="'analyze.data_batches'. Allowed: an integer >= 1"):
        analyze_stage._check_inputs(config, _args())


def test_stage_requires_first_seed_model(config) -> None:
    with pytest.raises(FileNotFoundError, match="blindspots train --variant even --seed 3"):
        analyze_stage._check_inputs(config, _args())


def test_stage_requires_test_shards(config, tmp_path) -> None:
    (tmp_path / "models" / "even" / "seed_3").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="blindspots prepare"):
        analyze_stage._check_inputs(config, _args())


def test_stage_accepts_ready_inputs(config, tmp_path) -> None:
    (tmp_path / "models" / "even" / "seed_3").mkdir(parents=True)
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "test-00000-of-00001.tfrecord").write_bytes(b"")
    seed, model_dir = analyze_stage._check_inputs(config, _args())
    assert seed == 3
    assert model_dir.as_posix() == "models/even/seed_3"


def test_stage_import_skips_tensorflow() -> None:
    code = "import sys, blindspots.stages.analyze; sys.exit(int('tensorflow' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_foveation_modes_appends_own() -> None:
    assert analysis_run.foveation_modes(["symmetric", "circular", "symmetric"], "tf_same") == ["symmetric", "circular", "tf_same"]


def test_foveation_modes_keeps_order() -> None:
    assert analysis_run.foveation_modes(["circular", "tf_same"], "tf_same") == ["circular", "tf_same"]


def _tables(zero_top_bottom: list[float]) -> tuple[pd.DataFrame, ...]:
    audit = pd.DataFrame({"layer": ["a", "b", "c"], "uneven_h": [True, False, True], "uneven_w": [False, False, True]})
    borders = pd.DataFrame(
        {
            "input": ["zero", "zero", "zero", "test_data"],
            "layer": ["a", "b", "c", "b"],
            "top_bottom": zero_top_bottom + [-0.05],
            "left_right": [0.1, 0.3, float("nan"), 0.01],
        }
    )
    kernel_table = pd.DataFrame(
        {
            "layer": ["a", "b", "c"],
            "downsampling": [True, False, True],
            "top_bottom": [-0.2, 0.9, 0.4],
            "left_right": [0.1, 0.5, 0.3],
        }
    )
    foveation = pd.DataFrame({"mode": ["circular", "tf_same"], "centre_border_ratio": [0.8, 20.0]})
    return audit, borders, kernel_table, foveation


def test_headline_metrics_exact() -> None:
    # Zero input: rows a and b are measured (c is NaN), |0.2| and |-0.4|
    # average to 0.3, |0.1| and |0.3| to 0.2. Stride-2 kernels a and c:
    # top_bottom (-0.2 + 0.4) / 2 = 0.1, |.| mean 0.3, left_right 0.2.
    metrics = analysis_run.headline_metrics(*_tables([0.2, -0.4, float("nan")]), "tf_same")
    assert metrics["uneven_layers_height"] == 2
    assert metrics["uneven_layers_width"] == 1
    assert metrics["zero_input_layers_measured"] == 2
    assert metrics["zero_input_abs_top_bottom"] == pytest.approx(0.3)
    assert metrics["zero_input_abs_left_right"] == pytest.approx(0.2)
    assert metrics["data_top_bottom"] == pytest.approx(-0.05)
    assert metrics["kernel_stride2_layers"] == 2
    assert metrics["kernel_top_bottom_stride2"] == pytest.approx(0.1)
    assert metrics["kernel_top_bottom_stride2_magnitude"] == pytest.approx(0.3)
    assert metrics["kernel_left_right_stride2"] == pytest.approx(0.2)
    assert metrics["foveation_centre_border_ratio"] == pytest.approx(20.0)


def test_headline_metrics_skip_mean_colour() -> None:
    metrics = analysis_run.headline_metrics(*_tables([0.2, -0.4, float("nan")]), "tf_same")
    assert not any(key.startswith("mean_colour") for key in metrics)


def test_headline_metrics_nan_is_none() -> None:
    # No zero-input map has border statistics, and the own mode has no foveation row.
    metrics = analysis_run.headline_metrics(*_tables([float("nan")] * 3), "partial")
    assert metrics["zero_input_layers_measured"] == 0
    assert metrics["zero_input_abs_top_bottom"] is None
    assert metrics["foveation_centre_border_ratio"] is None


def test_constant_maps_zero_only(tmp_path) -> None:
    # analyze.mean_colour_input false: only the zero input runs, so only its figure and rows are written.
    import tf_keras

    from blindspots.modeling.padding import PaddedConv2D

    inputs = tf_keras.Input((8, 8, 3))
    conv = PaddedConv2D(1, 3, strides=2, padding_mode="tf_same", kernel_initializer="ones", name="conv")
    model = tf_keras.Model(inputs, {"conv": conv(inputs)})
    borders, captions = analysis_run.write_constant_input_maps(tmp_path, model, (8, 8), {"zero": [0.0, 0.0, 0.0]}, "tiny")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["zero_input_maps.png"]
    assert list(captions) == ["zero_input_maps.png"]
    assert list(borders["input"]) == ["zero"]


def test_write_foveation_skips_unfit_mode(tmp_path) -> None:
    # At 64 x 96 px extra_2 gets a 1 x 2 map, and reflect cannot pad 1 px
    # from a 1-px axis, so reflect is skipped. The model's own mode is added.
    summary, caption = analysis_run.write_foveation(tmp_path, (64, 96), ["reflect", "circular"], "tf_same", "tf")
    assert list(summary["mode"]) == ["circular", "tf_same"]
    assert (tmp_path / "foveation.png").is_file()
    assert "own mode is tf_same" in caption


# ---------------------------------------------------------------------------
# Real model and records, built once for the tests below


def _write_prepared(root: Path) -> None:
    """Write a 3-frame test split of flat grey 64 x 96 frames, one light each."""
    from PIL import Image

    from blindspots.data import records
    from blindspots.data.bstld import Box, Frame

    frames = []
    for index, value in enumerate(FRAME_COLOURS):
        path = root / "rgb" / "test" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((64, 96, 3), value, np.uint8)).save(path)
        frames.append(Frame(f"rgb/test/{index}.png", path, None, (Box("Green", 1, False, 10.0, 20.0, 22.0, 25.0),), 64, 96))
    prepared = root / "data" / "prepared"
    prepared.mkdir(parents=True)
    records.write_split(frames, prepared, "test", 1, (64, 96))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A folder with params.yaml (tiny preset) and a prepared 3-frame test split."""
    root = tmp_path_factory.mktemp("analyze")
    (root / "params.yaml").write_text(TINY_PARAMS, encoding="utf-8")
    _write_prepared(root)
    return root


@pytest.fixture(scope="module")
def workspace(prepared) -> Path:
    """The `prepared` folder plus an untrained tiny model for variant `even`, seed 0."""
    from blindspots.config.loader import resolve_variant
    from blindspots.modeling import export, ssd

    config = _load(prepared, TINY_PARAMS)
    model_cfg = resolve_variant(config, "even").model
    export.save_detector(prepared / "models" / "even" / "seed_0", ssd.build_ssd(model_cfg, 4), model_cfg, ["Off", "Green", "Yellow", "Red"])
    return prepared


def test_read_test_batches_resizes(prepared) -> None:
    # A flat frame stays flat under bilinear resizing, so pixel values survive.
    batches = list(analysis_run.read_test_batches(str(prepared / "data/prepared/test-*.tfrecord"), (65, 97), batches=1, batch_size=2))
    assert len(batches) == 1
    assert batches[0]["image"].shape == (2, 65, 97, 3)
    np.testing.assert_allclose(batches[0]["image"][1], np.full((65, 97, 3), FRAME_COLOURS[1]))
    assert list(batches[0]["key"]) == [b"rgb/test/0.png", b"rgb/test/1.png"]


@pytest.mark.slow
def test_stage_run_writes_outputs(workspace, monkeypatch) -> None:
    # Slow: loads the SSD, runs it on constant images and test frames, and draws five figures.
    monkeypatch.chdir(workspace)
    config = _load(workspace, TINY_PARAMS)
    analyze_stage.run(config, _args())

    out_dir = workspace / "runs" / "even" / "analysis"
    expected = sorted([*analysis_run.OUTPUT_FILES, analysis_run.MEAN_COLOUR_FILE, "run.json"])
    assert sorted(path.name for path in out_dir.iterdir()) == expected
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for key in (
        "uneven_layers_height",
        "uneven_layers_width",
        "zero_input_abs_top_bottom",
        "mean_colour_input_abs_top_bottom",
        "kernel_top_bottom_stride2",
        "foveation_centre_border_ratio",
    ):
        assert key in metrics, key
    # Tiny preset 64 x 96 under tf_same: the 5 backbone stride-2 layers get
    # even inputs in both axes (64, 32, 16, 8, 4 and 96, 48, 24, 12, 6).
    # extra_1 gets 2 x 3 (uneven in height only) and extra_2 gets 1 x 2
    # (uneven in width only). extra_3 and extra_4 get 1 x 1, padded 1 px on
    # every side.
    assert metrics["uneven_layers_height"] == 6
    assert metrics["uneven_layers_width"] == 6
    # All 3 frames fit in one batch of DATA_BATCH_SIZE, and their mean RGB is the mean of 40, 60 and 80.
    assert metrics["images_read"] == 3
    assert metrics["mean_rgb"] == [60.0, 60.0, 60.0]
    captions = json.loads((out_dir / "captions.json").read_text())
    assert sorted(captions) == sorted(name for name in expected if name.endswith(".png"))
