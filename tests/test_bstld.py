"""BSTLD annotation parsing, quirk repair, label maps and the validation split."""

from __future__ import annotations

from pathlib import Path

import pytest

from blindspots.data import bstld
from blindspots.data.bstld import DatasetError, parse_annotations, repair_box
from data_fixtures import NETWORK_SHARE, box, default_annotations, entry, write_dataset, write_png


def parse_one(tmp_path: Path, *entries, file_name: str = "train.yaml", folder: str = "train", **kwargs):
    write_dataset(tmp_path, {file_name: list(entries)})
    return parse_annotations(tmp_path / file_name, folder, **kwargs)


def test_parse_real_layout(tmp_path):
    frames, report = parse_one(
        tmp_path,
        entry("./rgb/train/2015-10-05-10-55-33_bag/24594.png", box("Green", 10.0, 5.0, 14.0, 15.0), box("Red", 30, 4, 33, 12, True)),
        entry("./rgb/train/2015-10-05-11-26-32_bag/24600.png"),
    )
    first, second = frames
    assert [frame.key for frame in frames] == [
        "rgb/train/2015-10-05-10-55-33_bag/24594.png",
        "rgb/train/2015-10-05-11-26-32_bag/24600.png",
    ]
    assert first.sequence == "2015-10-05-10-55-33_bag"
    assert first.path == tmp_path / "rgb/train/2015-10-05-10-55-33_bag/24594.png"
    assert (first.height, first.width) == (36, 64)
    # Stored as [ymin, xmin, ymax, xmax]: y 5..15, x 10..14.
    assert (first.boxes[0].ymin, first.boxes[0].xmin, first.boxes[0].ymax, first.boxes[0].xmax) == (5.0, 10.0, 15.0, 14.0)
    assert first.boxes[0].class_id == 1
    assert first.boxes[1].class_id == 3
    assert first.boxes[1].occluded is True
    assert second.boxes == ()
    assert report.total() == 0


def test_parse_test_layout_has_no_sequence(tmp_path):
    frames, _ = parse_one(tmp_path, entry("./rgb/test/24068.png"), file_name="test.yaml", folder="test")
    assert frames[0].sequence is None


def test_image_size_from_header(tmp_path):
    write_dataset(tmp_path, {"train.yaml": [entry("./rgb/train/s/1.png", box("Green", 70.0, 40.0, 74.0, 48.0))]}, height=50, width=80)
    frames, report = parse_annotations(tmp_path / "train.yaml", "train")
    assert (frames[0].height, frames[0].width) == (50, 80)
    # x 70..74 and y 40..48 fit inside 80 x 50, so nothing is clipped.
    assert report.counts["out_of_bounds"] == 0


@pytest.mark.parametrize(
    ("label", "class_id"),
    [
        ("off", 0),
        ("Off", 0),
        ("Green", 1),
        ("GreenLeft", 1),
        ("GreenRight", 1),
        ("GreenStraight", 1),
        ("GreenStraightLeft", 1),
        ("GreenStraightRight", 1),
        ("Yellow", 2),
        ("Red", 3),
        ("RedLeft", 3),
        ("RedRight", 3),
        ("RedStraight", 3),
        ("RedStraightLeft", 3),
    ],
)
def test_map_label_4class(label, class_id):
    assert bstld.map_label(label, "4class") == class_id


def test_map_label_1class():
    assert {bstld.map_label(label, "1class") for label in ("off", "Green", "Yellow", "RedLeft")} == {0}


def test_map_label_unknown():
    assert bstld.map_label("Blue", "4class") is None


def test_class_names_order():
    assert bstld.class_names("4class") == ("Off", "Green", "Yellow", "Red")


def test_unknown_label_error(tmp_path):
    with pytest.raises(DatasetError) as error:
        parse_one(tmp_path, entry("./rgb/train/s/1.png", box("Purple", 1.0, 1.0, 5.0, 9.0)))
    message = str(error.value)
    assert str(tmp_path / "train.yaml") in message
    assert "./rgb/train/s/1.png" in message
    assert "'Purple'" in message


def test_unquoted_off_read_as_off(tmp_path):
    # The fixture writes `label: off` bare, which YAML 1.1 reads as False.
    frames, report = parse_one(tmp_path, entry("./rgb/train/s/1.png", box("off", 1.0, 1.0, 5.0, 9.0), box("Off", 9.0, 1.0, 13.0, 9.0)))
    assert [b.label for b in frames[0].boxes] == ["off", "off"]
    assert [b.class_id for b in frames[0].boxes] == [0, 0]
    assert report.counts["unquoted_off"] == 2


def test_quoted_off_not_counted(tmp_path):
    frames, report = parse_one(tmp_path, entry("./rgb/train/s/1.png", box("'off'", 1.0, 1.0, 5.0, 9.0)))
    assert frames[0].boxes[0].label == "off"
    assert report.counts["unquoted_off"] == 0


def test_out_of_bounds_clipped(tmp_path):
    # Image 64 x 36 px: x -2.45..66.5 clips to 0..64, y -1.5..20 clips to 0..20.
    frames, report = parse_one(tmp_path, entry("./rgb/train/s/1.png", box("Green", -2.45, -1.5, 66.5, 20.0)))
    clipped = frames[0].boxes[0]
    assert (clipped.ymin, clipped.xmin, clipped.ymax, clipped.xmax) == (0.0, 0.0, 20.0, 64.0)
    assert report.counts["out_of_bounds"] == 1


def test_reversed_swapped(tmp_path):
    frames, report = parse_one(tmp_path, entry("./rgb/train/s/1.png", box("Red", 44.0, 14.0, 40.0, 6.0)))
    swapped = frames[0].boxes[0]
    assert (swapped.ymin, swapped.xmin, swapped.ymax, swapped.xmax) == (6.0, 40.0, 14.0, 44.0)
    assert report.counts["reversed"] == 1


def test_duplicate_dropped(tmp_path):
    first = box("Red", 40.0, 6.0, 44.0, 14.0)
    occluded_twin = box("Red", 40.0, 6.0, 44.0, 14.0, occluded=True)
    frames, report = parse_one(tmp_path, entry("./rgb/train/s/1.png", first, dict(first), dict(first), occluded_twin))
    # Two exact copies go; the occluded box differs in one field and stays.
    assert len(frames[0].boxes) == 2
    assert report.counts["duplicate"] == 2


def test_degenerate_after_clip_dropped(tmp_path):
    # y -3..0.5 clips to 0..0.5: 0.5 px high, below min_box_side 1.0.
    frames, report = parse_one(tmp_path, entry("./rgb/train/s/1.png", box("Green", 8.0, -3.0, 12.0, 0.5), box("Red", 1.0, 1.0, 5.0, 9.0)))
    assert [b.label for b in frames[0].boxes] == ["Red"]
    assert report.counts["degenerate"] == 1
    assert report.counts["out_of_bounds"] == 1


def test_min_box_side_applies(tmp_path):
    # 4 px wide and 8 px high: kept at min_box_side 4, dropped at 5.
    kept, _ = parse_one(tmp_path, entry("./rgb/train/s/1.png", box("Red", 1.0, 1.0, 5.0, 9.0)), min_box_side=4.0)
    dropped, _ = parse_annotations(tmp_path / "train.yaml", "train", min_box_side=5.0)
    assert len(kept[0].boxes) == 1
    assert len(dropped[0].boxes) == 0


def test_repair_box_values():
    repaired, kinds = repair_box(70.0, 40.0, -1.0, -2.0, height=36, width=64, min_box_side=1.0)
    # Swap to x -1..70, y -2..40, then clip to x 0..64, y 0..36.
    assert repaired == (0.0, 0.0, 36.0, 64.0)
    assert kinds == ["reversed", "out_of_bounds"]


def test_network_share_remapped(tmp_path):
    frames, report = parse_one(
        tmp_path, entry(f"{NETWORK_SHARE}/24068.png", box("Red", 1.0, 1.0, 5.0, 9.0)), file_name="test.yaml", folder="test"
    )
    assert frames[0].key == "rgb/test/24068.png"
    assert frames[0].path == tmp_path / "rgb/test/24068.png"
    assert report.counts["network_share"] == 1


def test_duplicate_frame_first_kept(tmp_path):
    frames, report = parse_one(
        tmp_path,
        entry("./rgb/train/s/1.png", box("Red", 1.0, 1.0, 5.0, 9.0)),
        entry("./rgb/train/s/1.png", box("Green", 1.0, 1.0, 5.0, 9.0)),
    )
    assert len(frames) == 1
    assert frames[0].boxes[0].label == "Red"
    assert report.counts["duplicate_frame"] == 1


def test_missing_entry_key(tmp_path):
    with pytest.raises(DatasetError) as error:
        parse_one(tmp_path, entry("./rgb/train/s/1.png"), {"path": "./rgb/train/s/2.png"})
    message = str(error.value)
    assert str(tmp_path / "train.yaml") in message
    assert "entry 1" in message
    assert "./rgb/train/s/2.png" in message
    assert "'boxes'" in message


def test_missing_box_key(tmp_path):
    incomplete = box("Red", 1.0, 1.0, 5.0, 9.0)
    del incomplete["x_max"]
    with pytest.raises(DatasetError) as error:
        parse_one(tmp_path, entry("./rgb/train/s/1.png", incomplete))
    message = str(error.value)
    assert "entry 0 (./rgb/train/s/1.png), box 0" in message
    assert "'x_max'" in message


def test_missing_image(tmp_path):
    write_dataset(tmp_path, {"train.yaml": [entry("./rgb/train/s/1.png")]}, missing_images=["./rgb/train/s/1.png"])
    with pytest.raises(DatasetError) as error:
        parse_annotations(tmp_path / "train.yaml", "train")
    assert str(tmp_path / "rgb/train/s/1.png") in str(error.value)


def test_unreadable_image(tmp_path):
    write_dataset(tmp_path, {"train.yaml": [entry("./rgb/train/s/1.png")]})
    (tmp_path / "rgb/train/s/1.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError) as error:
        parse_annotations(tmp_path / "train.yaml", "train")
    assert str(tmp_path / "rgb/train/s/1.png") in str(error.value)


def test_path_leaving_root(tmp_path):
    with pytest.raises(DatasetError) as error:
        parse_one(tmp_path / "root", entry("../outside.png"))
    assert "leaves the dataset root" in str(error.value)


def test_invalid_yaml(tmp_path):
    (tmp_path / "train.yaml").write_text("- boxes: [\n", encoding="utf-8")
    with pytest.raises(DatasetError) as error:
        parse_annotations(tmp_path / "train.yaml", "train")
    assert f"{tmp_path / 'train.yaml'}: invalid YAML" in str(error.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError) as error:
        parse_annotations(tmp_path / "test.yaml", "test")
    assert f"annotation file not found: {tmp_path / 'test.yaml'}" in str(error.value)


def test_non_numeric_coordinate(tmp_path):
    with pytest.raises(DatasetError) as error:
        parse_one(tmp_path, entry("./rgb/train/s/1.png", box("Red", "left", 1.0, 5.0, 9.0)))
    assert "'x_min' must be a finite number of pixels, got 'left'" in str(error.value)


def test_cross_split_same_name_other_pixels_kept(tmp_path):
    write_dataset(
        tmp_path,
        {
            "train.yaml": [entry("./rgb/train/seq_a/1.png"), entry("./rgb/train/seq_b/2.png")],
            "test.yaml": [],
            "additional_train.yaml": [entry("./rgb/additional/seq_a/1.png")],
        },
    )
    write_png(tmp_path / "rgb/additional/seq_a/1.png", "other pixels")
    splits = bstld.load_splits(tmp_path, val_sequences=0)
    assert splits.reports["additional_train.yaml"].counts["cross_split"] == 0
    assert len(splits.frames["train"]) == 3


@pytest.fixture()
def default_splits(tmp_path):
    write_dataset(tmp_path, default_annotations())
    return bstld.load_splits(tmp_path, label_map="4class", min_box_side=1.0, val_sequences=1, use_additional=True)


def test_load_splits_keys(default_splits):
    keys = {split: [frame.key for frame in frames] for split, frames in default_splits.frames.items()}
    # seq_a, first by name, is validation; seq_d/500 is the only additional frame left.
    assert keys["val"] == ["rgb/train/seq_a/10.png"]
    assert keys["train"] == [
        "rgb/train/seq_b/10.png",
        "rgb/train/seq_b/11.png",
        "rgb/train/seq_c/12.png",
        "rgb/train/seq_c/13.png",
        "rgb/additional/seq_d/500.png",
    ]
    assert keys["test"] == ["rgb/test/24068.png", "rgb/test/24070.png"]


def test_load_splits_box_counts(default_splits):
    counts = {split: sum(len(frame.boxes) for frame in frames) for split, frames in default_splits.frames.items()}
    # train: Green (clipped), Yellow (copy dropped), Red (GreenStraightLeft dropped), Green of seq_d.
    assert counts == {"train": 4, "val": 2, "test": 1}


@pytest.mark.parametrize(
    ("source", "kind", "count"),
    [
        ("train.yaml", "unquoted_off", 1),
        ("train.yaml", "out_of_bounds", 2),
        ("train.yaml", "reversed", 1),
        ("train.yaml", "duplicate", 1),
        ("train.yaml", "degenerate", 1),
        ("train.yaml", "repeated_basename", 2),
        ("test.yaml", "network_share", 1),
        ("additional_train.yaml", "cross_split", 2),
        ("additional_train.yaml", "out_of_bounds", 1),
    ],
)
def test_load_splits_repairs(default_splits, source, kind, count):
    assert default_splits.reports[source].counts[kind] == count


def test_load_splits_report_totals(default_splits):
    # The parametrized counts above are all there is: 8 in train.yaml, 1 in test.yaml, 3 in additional.
    totals = {source: report.total() for source, report in default_splits.reports.items()}
    assert totals == {"train.yaml": 8, "test.yaml": 1, "additional_train.yaml": 3}


def test_repeated_basenames_kept_apart(default_splits):
    frames = default_splits.frames["train"] + default_splits.frames["val"]
    keys = [frame.key for frame in frames if frame.key.endswith("/10.png")]
    assert sorted(keys) == ["rgb/train/seq_a/10.png", "rgb/train/seq_b/10.png"]


def test_clipped_box_values(default_splits):
    green = default_splits.frames["train"][0].boxes[0]
    # x -2.45..4 clips to 0..4; y 5..15 is inside the 36 px high image.
    assert (green.ymin, green.xmin, green.ymax, green.xmax) == (5.0, 0.0, 15.0, 4.0)


def test_without_additional(tmp_path):
    write_dataset(tmp_path, default_annotations())
    splits = bstld.load_splits(tmp_path, val_sequences=1, use_additional=False)
    assert len(splits.frames["train"]) == 4
    assert "additional_train.yaml" not in splits.reports


def test_split_validation_sorted(tmp_path):
    write_dataset(tmp_path, {"train.yaml": [entry(f"./rgb/train/{name}/1.png") for name in ("c", "a", "d", "b")]})
    frames, _ = parse_annotations(tmp_path / "train.yaml", "train")
    train, val = bstld.split_validation(frames, 2)
    assert [frame.sequence for frame in val] == ["a", "b"]
    assert [frame.sequence for frame in train] == ["c", "d"]


def test_split_validation_too_many(tmp_path):
    write_dataset(tmp_path, {"train.yaml": [entry(f"./rgb/train/{name}/1.png") for name in ("a", "b")]})
    frames, _ = parse_annotations(tmp_path / "train.yaml", "train")
    with pytest.raises(DatasetError) as error:
        bstld.split_validation(frames, 2)
    assert "prepare.val_sequences is 2" in str(error.value)


def test_report_as_dict(default_splits):
    cross_split = default_splits.reports["additional_train.yaml"].as_dict()["cross_split"]
    assert cross_split["action"] == "dropped"
    assert cross_split["examples"] == ["rgb/train/seq_b/10.png", "rgb/additional/seq_c/12.png"]
