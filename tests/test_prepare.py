"""The download and prepare stages end to end on tiny BSTLD-format fixtures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from blindspots.config.loader import load_params
from blindspots.data.archives import ArchiveError
from blindspots.data import stats
from blindspots.data.bstld import DatasetError, parse_annotations
from blindspots.stages import download, prepare
from data_fixtures import leftovers, write_bstld_archives, write_default_dataset

PREPARED_SIZE = (18, 32)  # (H, W): half of the 36 x 64 fixture images


def make_config(tmp_path: Path, *overrides: str):
    params = {
        "data": {"source": "bstld", "root": str(tmp_path / "raw"), "archives_dir": str(tmp_path / "archives")},
        "prepare": {"image_size": list(PREPARED_SIZE), "val_sequences": 1, "shards": 2},
        "model": {"input_size": [64, 96], "width_multiplier": 0.125},
        "variants": {"baseline": {}},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return load_params(path, list(overrides))


def output_args(tmp_path: Path) -> argparse.Namespace:
    return argparse.Namespace(output_dir=str(tmp_path / "out" / "prepared"))


def read_split(prepared: Path, split: str) -> list[dict]:
    from blindspots.data.records import read_dataset

    return [
        {name: value.numpy() for name, value in example.items()}
        for example in read_dataset(prepared / f"{split}-*.tfrecord", image_size=PREPARED_SIZE)
    ]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("prepare")
    write_default_dataset(tmp_path / "raw")
    prepare.run(make_config(tmp_path), output_args(tmp_path))
    return tmp_path / "out" / "prepared"


def test_prepare_outputs(prepared):
    # val has one frame, so one shard; train (5 frames) and test (2) get the 2 requested.
    assert sorted(path.name for path in prepared.iterdir()) == [
        "anchor_coverage.json",
        "box_sizes.png",
        "classes.json",
        "run.json",
        "stats.json",
        "test-00000-of-00002.tfrecord",
        "test-00001-of-00002.tfrecord",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "val-00000-of-00001.tfrecord",
    ]


def test_prepare_no_leftovers(prepared):
    assert leftovers(prepared.parent) == []


def test_prepare_classes(prepared):
    assert json.loads((prepared / "classes.json").read_text()) == ["Off", "Green", "Yellow", "Red"]


def test_records_keep_order(prepared):
    keys = [example["key"].decode() for example in read_split(prepared, "train")]
    assert keys == [
        "rgb/train/seq_b/10.png",
        "rgb/train/seq_b/11.png",
        "rgb/train/seq_c/12.png",
        "rgb/train/seq_c/13.png",
        "rgb/additional/seq_d/500.png",
    ]


def test_records_boxes(prepared):
    (val,) = read_split(prepared, "val")
    # off: x 20..23, y 2..10; RedLeft: x 30..34, y 4..12; image 64 x 36 px.
    expected = np.array([[2 / 36, 20 / 64, 10 / 36, 23 / 64], [4 / 36, 30 / 64, 12 / 36, 34 / 64]], dtype=np.float32)
    assert val["boxes"].dtype == np.float32
    np.testing.assert_array_equal(val["boxes"], expected)
    np.testing.assert_array_equal(val["classes"], np.array([0, 3], dtype=np.int32))
    np.testing.assert_array_equal(val["occluded"], np.array([True, False]))
    np.testing.assert_array_equal(val["original_size"], np.array([36, 64], dtype=np.int32))


def test_records_clipped_box(prepared):
    green = read_split(prepared, "train")[0]
    # x -2.45..4 was clipped to 0..4; y 5..15.
    np.testing.assert_array_equal(green["boxes"], np.array([[5 / 36, 0.0, 15 / 36, 4 / 64]], dtype=np.float32))


def test_records_empty_frame(prepared):
    empty = read_split(prepared, "train")[1]
    assert empty["boxes"].shape == (0, 4)
    assert empty["classes"].shape == (0,)


def test_records_image(prepared):
    first = read_split(prepared, "test")[0]
    source = Image.open(prepared.parent.parent / "raw" / "rgb/test/24068.png").convert("RGB")
    resized = np.asarray(source.resize((PREPARED_SIZE[1], PREPARED_SIZE[0]), Image.Resampling.BILINEAR))
    assert first["image"].shape == (18, 32, 3)
    assert first["image"].dtype == np.uint8
    np.testing.assert_array_equal(first["image"], resized)


def test_stats_train(prepared):
    train = json.loads((prepared / "stats.json").read_text())["splits"]["train"]
    assert train["images"] == 5
    assert train["boxes"] == 4
    assert train["labels_original"] == {"Green": 2, "Red": 1, "Yellow": 1}
    assert train["labels_mapped"] == {"Off": 0, "Green": 2, "Yellow": 1, "Red": 1}
    # seq_b/11 is the one empty frame of five.
    assert train["empty_frame_share"] == 0.2
    # Widths are all 4 px; heights 10 (Green), 8 (Yellow), 10 (Red), 10 (Green).
    assert train["median_width_px"] == 4.0
    assert train["median_height_px"] == 10.0
    assert train["width_histogram"]["counts"][2] == 4
    assert train["width_histogram"]["edges_px"][2:4] == [4.0, 6.0]


def test_stats_test_split(prepared):
    test = json.loads((prepared / "stats.json").read_text())["splits"]["test"]
    assert test["images"] == 2
    assert test["empty_frame_share"] == 0.5


def test_stats_repairs(prepared):
    repairs = json.loads((prepared / "stats.json").read_text())["repairs"]
    assert repairs["train.yaml"]["out_of_bounds"]["count"] == 2
    assert repairs["test.yaml"]["network_share"]["count"] == 1
    assert repairs["additional_train.yaml"]["cross_split"]["count"] == 2


def test_anchor_coverage_written(prepared):
    coverage = json.loads((prepared / "anchor_coverage.json").read_text())
    assert coverage["input_size"] == [64, 96]
    assert coverage["splits"]["train"]["boxes"] == 4
    assert coverage["splits"]["val"]["boxes"] == 2
    # These params leave model.match_iou at its default of 0.5, so one share is listed.
    assert list(coverage["splits"]["train"]["covered_share_by_iou"]) == ["0.5"]


def test_anchor_coverage_at_reference_iou(tmp_path):
    """With a looser training matcher, coverage is reported at both thresholds."""
    write_default_dataset(tmp_path / "raw")
    prepare.run(make_config(tmp_path, "model.match_iou=0.35"), output_args(tmp_path))
    coverage = json.loads((tmp_path / "out" / "prepared" / "anchor_coverage.json").read_text())
    train = coverage["splits"]["train"]
    assert list(train["covered_share_by_iou"]) == ["0.35", "0.5"]
    assert train["covered_share"] == train["covered_share_by_iou"]["0.35"]
    assert train["covered_share_by_iou"]["0.35"] >= train["covered_share_by_iou"]["0.5"]


def test_run_record(prepared):
    record = json.loads((prepared / "run.json").read_text())
    assert record["stage"] == "prepare"
    assert record["shards"]["val"] == ["val-00000-of-00001.tfrecord"]


def test_size_histogram_last_bin():
    # Edges 0, 2, 4, 6, ...: 1 -> [0, 2); 4 and 5.5 -> [4, 6); 300 is past 256 and lands in the last bin.
    histogram = stats.size_histogram(np.array([1.0, 4.0, 5.5, 300.0]))
    assert histogram["counts"][0] == 1
    assert histogram["counts"][2] == 2
    assert histogram["counts"][-1] == 1
    assert sum(histogram["counts"]) == 4


def test_bin_labels():
    assert stats.bin_labels([0, 2, 4, 8]) == ["0-2", "2-4", ">=4"]


def test_boxes_in_model_pixels(prepared):
    frames, _ = parse_annotations(prepared.parent.parent / "raw" / "train.yaml", "train")
    boxes = stats.boxes_in_model_pixels(frames[:1], (64, 96))
    # off: y 2..10 of 36 rows and x 20..23 of 64 columns, scaled to 64 x 96.
    np.testing.assert_allclose(boxes[0], [2 * 64 / 36, 20 * 96 / 64, 10 * 64 / 36, 23 * 96 / 64])
    assert boxes.shape == (2, 4)


def test_read_dataset_no_match(tmp_path):
    from blindspots.data.records import read_dataset

    with pytest.raises(FileNotFoundError) as error:
        read_dataset(tmp_path / "train-*.tfrecord")
    assert "Run `blindspots prepare` first" in str(error.value)


def test_prepare_1class(tmp_path):
    write_default_dataset(tmp_path / "raw")
    prepare.run(make_config(tmp_path, "prepare.label_map=1class", "prepare.shards=1"), output_args(tmp_path))
    prepared = tmp_path / "out" / "prepared"
    assert json.loads((prepared / "classes.json").read_text()) == ["TrafficLight"]
    (val,) = read_split(prepared, "val")
    np.testing.assert_array_equal(val["classes"], np.array([0, 0], dtype=np.int32))


def test_prepare_corrupt_png(tmp_path):
    write_default_dataset(tmp_path / "raw")
    png = tmp_path / "raw" / "rgb/test/24070.png"
    png.write_bytes(png.read_bytes()[:200])  # the header still reads, the pixels do not
    existing = tmp_path / "out" / "prepared"
    existing.mkdir(parents=True)
    (existing / "old.txt").write_text("from an earlier run")
    with pytest.raises(DatasetError) as error:
        prepare.run(make_config(tmp_path), output_args(tmp_path))
    assert f"image {png} is corrupt or truncated" in str(error.value)
    assert sorted(path.name for path in existing.iterdir()) == ["old.txt"]
    assert leftovers(tmp_path / "out") == []


def test_prepare_missing_root(tmp_path):
    with pytest.raises(DatasetError) as error:
        prepare.run(make_config(tmp_path), output_args(tmp_path))
    assert f"annotation file not found: {tmp_path / 'raw' / 'train.yaml'}" in str(error.value)
    assert not (tmp_path / "out" / "prepared").exists()


def test_download_bstld(tmp_path):
    source = write_default_dataset(tmp_path / "source")
    write_bstld_archives(source, tmp_path / "archives")
    download.run(make_config(tmp_path), argparse.Namespace())
    root = tmp_path / "raw"
    extracted = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
    expected = sorted(path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file())
    assert extracted == sorted(expected + ["run.json"])
    assert json.loads((root / "run.json").read_text())["stage"] == "download"
    assert leftovers(tmp_path) == []


def test_download_no_archives(tmp_path):
    (tmp_path / "archives").mkdir()
    with pytest.raises(ArchiveError) as error:
        download.run(make_config(tmp_path), argparse.Namespace())
    assert f"no zip archives found in {tmp_path / 'archives'}" in str(error.value)
    assert not (tmp_path / "raw").exists()


def test_download_checksum_mismatch(tmp_path):
    source = write_default_dataset(tmp_path / "source")
    write_bstld_archives(source, tmp_path / "archives")
    config = make_config(tmp_path, f"data.sha256={{dataset_test_rgb.zip.002: {'ab' * 32}}}")
    with pytest.raises(ArchiveError) as error:
        download.run(config, argparse.Namespace())
    assert "SHA-256 mismatch" in str(error.value)
    assert "dataset_test_rgb.zip.002" in str(error.value)
    assert not (tmp_path / "raw").exists()


def test_download_synthetic_then_prepare(tmp_path):
    config = make_config(
        tmp_path,
        "data.source=synthetic",
        "data.synthetic.image_size=[64, 96]",
        "data.synthetic.train_sequences=3",
        "data.synthetic.frames_per_sequence=6",
        "data.synthetic.test_images=8",
        "data.synthetic.additional_images=2",
        "data.synthetic.quirks=[out_of_bounds, reversed, duplicate, cross_split, network_share, unquoted_off]",
        "prepare.image_size=[64, 96]",
        "prepare.shards=1",
    )
    download.run(config, argparse.Namespace())
    written = json.loads((tmp_path / "raw" / "run.json").read_text())["synthetic"]["quirks"]
    prepare.run(config, output_args(tmp_path))
    repairs = json.loads((tmp_path / "out" / "prepared" / "stats.json").read_text())["repairs"]
    found = {kind: sum(report[kind]["count"] for report in repairs.values()) for kind in written}
    # Each quirk the generator wrote is found once by the parser.
    for kind in ("reversed", "duplicate", "cross_split", "network_share", "unquoted_off", "out_of_bounds"):
        assert found[kind] == written[kind], kind
