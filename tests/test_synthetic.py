"""Tests for the synthetic BSTLD-format road scenes."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from blindspots.config.schema import QUIRKS, SyntheticConfig
from blindspots.data import synthetic

SMALL_SIZE = (96, 160)
BOX_KEYS = {"label", "occluded", "x_min", "x_max", "y_min", "y_max"}


def small_config(**overrides) -> SyntheticConfig:
    values = dict(
        seed=0,
        image_size=list(SMALL_SIZE),
        train_sequences=3,
        frames_per_sequence=20,
        test_images=60,
        additional_images=5,
        quirks=list(QUIRKS),
    )
    values.update(overrides)
    return SyntheticConfig(**values)


def tiny_config(**overrides) -> SyntheticConfig:
    values = dict(image_size=[64, 96], train_sequences=2, frames_per_sequence=4, test_images=4, additional_images=1)
    values.update(overrides)
    return SyntheticConfig(**values)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synthetic")
    summary = synthetic.generate_dataset(root, small_config())
    return root, summary


@pytest.fixture(scope="module")
def small_yaml(small_dataset) -> dict[str, list[dict]]:
    """The three YAML files of `small_dataset`, loaded once with yaml.safe_load."""
    root, _ = small_dataset
    return {split: yaml.safe_load((root / name).read_text()) for split, name in synthetic.YAML_FILES.items()}


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def png_path(root: Path, yaml_path: str) -> Path:
    """Map a YAML path, relative or on the network share, to the PNG under `root`."""
    if yaml_path.startswith(synthetic.NETWORK_SHARE_PREFIX):
        return root / "rgb" / "test" / os.path.basename(yaml_path)
    return root / yaml_path.removeprefix("./")


def is_outside(box: dict, height: float, width: float) -> bool:
    """Return whether a YAML box in pixels reaches past the frame, whatever order its pairs are in."""
    low_y, high_y = sorted((box["y_min"], box["y_max"]))
    low_x, high_x = sorted((box["x_min"], box["x_max"]))
    return low_y < 0 or low_x < 0 or high_y > height or high_x > width


# --------------------------------------------------------------- file layout


def test_layout_yaml_files_exist(small_dataset):
    root, _ = small_dataset
    for name in ("train.yaml", "test.yaml", "additional_train.yaml"):
        assert (root / name).is_file(), name


def test_layout_png_count_matches_summary(small_dataset):
    root, summary = small_dataset
    pngs = list((root / "rgb").rglob("*.png"))
    # 3 x 20 train + 60 test + 5 additional frames.
    assert len(pngs) == 125
    assert summary["png_files"] == 125


def test_layout_png_size_and_mode(small_dataset):
    root, _ = small_dataset
    for path in (root / "rgb").rglob("*.png"):
        with Image.open(path) as image:
            assert image.size == (SMALL_SIZE[1], SMALL_SIZE[0]), path
            assert image.mode == "RGB", path


def test_layout_every_yaml_path_has_png(small_dataset, small_yaml):
    root, _ = small_dataset
    for split in synthetic.SPLITS:
        for entry in small_yaml[split]:
            assert png_path(root, entry["path"]).is_file(), entry["path"]


def test_layout_split_folders(small_dataset, small_yaml):
    _, summary = small_dataset
    cross = set(summary["quirk_paths"]["cross_split"])
    network = set(summary["quirk_paths"]["network_share"])
    prefixes = {"train": "./rgb/train/", "test": "./rgb/test/", "additional": "./rgb/additional/"}
    for split, prefix in prefixes.items():
        for entry in small_yaml[split]:
            if entry["path"] in cross | network:
                continue
            assert entry["path"].startswith(prefix), entry["path"]


def test_layout_sequences_in_train(small_yaml):
    sequences = {Path(entry["path"]).parent.name for entry in small_yaml["train"]}
    assert len(sequences) == 3


# --------------------------------------------------------------- YAML format


def test_yaml_entry_keys_and_types(small_yaml):
    for split in synthetic.SPLITS:
        for entry in small_yaml[split]:
            assert set(entry) == {"boxes", "path"}, entry
            assert isinstance(entry["path"], str)
            for box in entry["boxes"]:
                assert set(box) == BOX_KEYS, box
                # The unquoted `off` label loads as False.
                assert isinstance(box["label"], str) or box["label"] is False, box
                assert isinstance(box["occluded"], bool), box
                for key in ("x_min", "x_max", "y_min", "y_max"):
                    assert isinstance(box[key], float), (key, box)


def test_yaml_text_exact():
    entries = [
        {
            "path": "./rgb/test/10.png",
            "boxes": [{"label": "off", "occluded": True, "x_max": 3.5, "x_min": -2.45, "y_max": 10.0, "y_min": 1.25}],
        },
        {"path": "./rgb/test/11.png", "boxes": []},
    ]
    expected = (
        "- boxes:\n"
        "  - {label: 'off', occluded: true, x_max: 3.5, x_min: -2.45, y_max: 10.0, y_min: 1.25}\n"
        "  path: ./rgb/test/10.png\n"
        "- boxes: []\n"
        "  path: ./rgb/test/11.png\n"
    )
    assert synthetic.format_bstld_yaml(entries, unquoted_off=False) == expected


def test_yaml_text_unquoted_off():
    box = {"label": "off", "occluded": False, "x_max": 2.0, "x_min": 1.0, "y_max": 4.0, "y_min": 0.0}
    entries = [{"path": "./a.png", "boxes": [box]}]
    text = synthetic.format_bstld_yaml(entries, unquoted_off=True)
    assert "{label: off, occluded: false," in text
    assert yaml.safe_load(text)[0]["boxes"][0]["label"] is False


def test_yaml_empty_list():
    assert yaml.safe_load(synthetic.format_bstld_yaml([], unquoted_off=False)) == []


def test_yaml_round_trips_entries():
    plan = synthetic.plan_dataset(tiny_config(quirks=[]))
    entries = synthetic.yaml_entries(plan, "train")
    assert yaml.safe_load(synthetic.format_bstld_yaml(entries, unquoted_off=False)) == entries


def test_summary_matches_yaml(small_dataset, small_yaml):
    _, summary = small_dataset
    for split in synthetic.SPLITS:
        entries = small_yaml[split]
        labels = Counter("off" if box["label"] is False else box["label"] for e in entries for box in e["boxes"])
        counts = summary["splits"][split]
        assert counts["images"] == len(entries), split
        assert counts["empty_images"] == sum(not e["boxes"] for e in entries), split
        assert counts["boxes"] == sum(labels.values()), split
        assert counts["labels"] == dict(labels), split


# --------------------------------------------------------------- determinism


def test_determinism_same_seed(tmp_path):
    first = synthetic.generate_dataset(tmp_path / "a", tiny_config(seed=5))
    second = synthetic.generate_dataset(tmp_path / "b", tiny_config(seed=5))
    assert first == second
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")


def test_determinism_different_seed(tmp_path):
    synthetic.generate_dataset(tmp_path / "a", tiny_config(seed=5))
    synthetic.generate_dataset(tmp_path / "b", tiny_config(seed=6))
    first, second = file_digests(tmp_path / "a"), file_digests(tmp_path / "b")
    assert first["train.yaml"] != second["train.yaml"]
    pngs = [name for name in first if name.endswith(".png") and name in second]
    assert any(first[name] != second[name] for name in pngs)


def test_determinism_quirk_order():
    forward = synthetic.plan_dataset(tiny_config(quirks=list(QUIRKS)))
    backward = synthetic.plan_dataset(tiny_config(quirks=list(reversed(QUIRKS))))
    for split in synthetic.SPLITS:
        assert synthetic.yaml_entries(forward, split) == synthetic.yaml_entries(backward, split), split


# ---------------------------------------------------------------- statistics


@pytest.fixture(scope="module")
def large_plan() -> synthetic.DatasetPlan:
    """1500 train and 1500 test frame layouts at the default 192 x 320 size, not rendered."""
    config = SyntheticConfig(
        train_sequences=15, frames_per_sequence=100, test_images=1500, additional_images=0, quirks=[]
    )
    return synthetic.plan_dataset(config)


def split_boxes(plan: synthetic.DatasetPlan, split: str) -> tuple[list[str], np.ndarray]:
    lights = [light for frame in plan.frames[split] for light in frame.lights]
    return [light.label for light in lights], np.array([light.box for light in lights])


def label_share(labels: list[str], accept) -> float:
    return sum(accept(label) for label in labels) / len(labels)


def test_stats_train_label_shares(large_plan):
    labels, _ = split_boxes(large_plan, "train")
    # BSTLD train shares: Green 5207 / 10756 = 48.4%, all Red* labels 4164 / 10756 = 38.7%,
    # Yellow 444 / 10756 = 4.1%, off 726 / 10756 = 6.7% and RedLeft 1092 / 10756 = 10.2%.
    assert abs(label_share(labels, lambda x: x == "Green") - 0.484) < 0.05
    assert abs(label_share(labels, lambda x: x.startswith("Red")) - 0.387) < 0.05
    assert abs(label_share(labels, lambda x: x == "Yellow") - 0.041) < 0.02
    assert abs(label_share(labels, lambda x: x == "off") - 0.067) < 0.02
    assert abs(label_share(labels, lambda x: x == "RedLeft") - 0.102) < 0.03


def test_stats_test_labels(large_plan):
    labels, _ = split_boxes(large_plan, "test")
    assert set(labels) <= {"Green", "Red", "Yellow", "off"}
    # BSTLD test shares: Green 7569 / 13486 = 56.1% and Red 5321 / 13486 = 39.5%.
    assert abs(label_share(labels, lambda x: x == "Green") - 0.561) < 0.05
    assert abs(label_share(labels, lambda x: x == "Red") - 0.395) < 0.05


@pytest.mark.parametrize("split", ["train", "test"])
def test_stats_box_sizes(large_plan, split):
    _, boxes = split_boxes(large_plan, split)
    widths = boxes[:, 3] - boxes[:, 1]
    heights = boxes[:, 2] - boxes[:, 0]
    assert abs(np.median(widths) - 8.5) < 1.5
    assert abs(np.mean(widths < 8.0) - 0.45) < 0.08
    assert 16.0 <= np.median(heights) <= 28.0
    assert 2.0 <= np.median(heights / widths) <= 3.0
    # The floor is 3 px, and rounding the corners to 0.01 px can take 0.01 px off.
    assert widths.min() >= 2.99


@pytest.mark.parametrize(("split", "target"), [("train", 0.38), ("test", 0.14)])
def test_stats_empty_share(large_plan, split, target):
    frames = large_plan.frames[split]
    assert abs(sum(not frame.lights for frame in frames) / len(frames) - target) < 0.04


@pytest.mark.parametrize(("split", "target"), [("train", 3.4), ("test", 1.9)])
def test_stats_lights_per_frame(large_plan, split, target):
    counts = np.array([len(frame.lights) for frame in large_plan.frames[split] if frame.lights])
    assert counts.min() >= 1
    assert counts.max() <= synthetic.MAX_LIGHTS
    assert abs(counts.mean() - target) < 0.3


def test_stats_vertical_and_horizontal_spread(large_plan):
    _, boxes = split_boxes(large_plan, "train")
    height, width = large_plan.image_size
    centre_y = (boxes[:, 0] + boxes[:, 2]) / 2
    centre_x = (boxes[:, 1] + boxes[:, 3]) / 2
    assert np.mean(centre_y < height / 2) > 0.8
    # Some far lights sit near the horizon, which is 42-58% down the frame.
    assert np.mean(centre_y > 0.3 * height) > 0.1
    for third in range(3):
        share = np.mean((centre_x >= third * width / 3) & (centre_x < (third + 1) * width / 3))
        assert share > 0.25, third


def test_stats_occluded_share(large_plan):
    occluded = [light.occluded for frame in large_plan.frames["train"] for light in frame.lights]
    # BSTLD marks about 10-15% of lights as occluded.
    assert 0.08 <= np.mean(occluded) <= 0.16


def test_stats_boxes_inside_small_frame():
    config = SyntheticConfig(image_size=[64, 96], train_sequences=5, frames_per_sequence=100, quirks=[])
    plan = synthetic.plan_dataset(config)
    _, boxes = split_boxes(plan, "train")
    assert boxes[:, 0].min() >= 0.0
    assert boxes[:, 1].min() >= 0.0
    assert boxes[:, 2].max() <= 64.0
    assert boxes[:, 3].max() <= 96.0


# -------------------------------------------------------------------- quirks


def test_quirk_out_of_bounds(small_dataset, small_yaml):
    _, summary = small_dataset
    height, width = SMALL_SIZE
    outside = [
        box
        for entry in small_yaml["train"]
        for box in entry["boxes"]
        if is_outside(box, height, width)
    ]
    assert summary["quirks"]["out_of_bounds"] == 3
    assert len(outside) == 3


def test_quirk_reversed(small_dataset, small_yaml):
    _, summary = small_dataset
    swapped = [
        box
        for entry in small_yaml["train"]
        for box in entry["boxes"]
        if box["x_min"] > box["x_max"] and box["y_min"] > box["y_max"]
    ]
    assert summary["quirks"]["reversed"] == 3
    assert len(swapped) == 3


def test_quirk_duplicate(small_dataset, small_yaml):
    _, summary = small_dataset
    repeats = 0
    for entry in small_yaml["train"]:
        keys = [tuple(sorted(box.items())) for box in entry["boxes"]]
        repeats += len(keys) - len(set(keys))
    assert summary["quirks"]["duplicate"] == 3
    assert repeats == 3


def test_quirk_cross_split(small_dataset, small_yaml):
    _, summary = small_dataset
    train = {entry["path"] for entry in small_yaml["train"]}
    additional = {entry["path"] for entry in small_yaml["additional"]}
    assert summary["quirks"]["cross_split"] == 3
    assert train & additional == set(summary["quirk_paths"]["cross_split"])
    assert len(train & additional) == 3


def test_quirk_repeated_basename(small_dataset, small_yaml):
    _, summary = small_dataset
    paths = [entry["path"] for entry in small_yaml["train"]]
    basenames = Counter(os.path.basename(path) for path in paths)
    assert summary["quirks"]["repeated_basename"] == 3
    assert sum(count > 1 for count in basenames.values()) == 3
    assert len(set(paths)) == len(paths)


def test_quirk_network_share(small_dataset, small_yaml):
    _, summary = small_dataset
    paths = [entry["path"] for entry in small_yaml["test"]]
    network = [path for path in paths if path.startswith(synthetic.NETWORK_SHARE_PREFIX + "/")]
    assert summary["quirks"]["network_share"] == 3
    assert len(network) == 3
    assert all(path.startswith("./rgb/test/") for path in paths if path not in network)


def test_quirk_unquoted_off_loads_false(small_dataset, small_yaml):
    _, summary = small_dataset
    labels = [box["label"] for split in synthetic.SPLITS for e in small_yaml[split] for box in e["boxes"]]
    assert summary["quirks"]["unquoted_off"] >= 3
    assert labels.count(False) == summary["quirks"]["unquoted_off"]
    assert "off" not in labels


def test_quirk_unquoted_off_adds_lights():
    # Seed 0 of this 8-frame config has fewer than 3 `off` lights before the quirk relabels some.
    before = synthetic.plan_dataset(tiny_config(quirks=[]))
    after = synthetic.summarize(synthetic.plan_dataset(tiny_config(quirks=["unquoted_off"])))
    off_before = sum(light.label == "off" for frames in before.frames.values() for f in frames for light in f.lights)
    assert off_before < 3
    assert after["quirks"]["unquoted_off"] == 3


def test_quirks_absent_when_not_requested():
    plan = synthetic.plan_dataset(small_config(quirks=[]))
    height, width = SMALL_SIZE
    loaded = {
        split: yaml.safe_load(synthetic.format_bstld_yaml(synthetic.yaml_entries(plan, split), plan.unquoted_off))
        for split in synthetic.SPLITS
    }
    boxes = [box for split in synthetic.SPLITS for e in loaded[split] for box in e["boxes"]]
    train_paths = [e["path"] for e in loaded["train"]]
    assert all(box["x_min"] < box["x_max"] for box in boxes)
    assert all(box["y_min"] < box["y_max"] for box in boxes)
    assert not any(is_outside(box, height, width) for box in boxes)
    assert False not in [box["label"] for box in boxes]
    assert not set(train_paths) & {e["path"] for e in loaded["additional"]}
    assert len({os.path.basename(path) for path in train_paths}) == len(train_paths)
    assert all(e["path"].startswith("./rgb/test/") for e in loaded["test"])
    assert set(synthetic.summarize(plan)["quirks"].values()) == {0}


def test_quirks_quoted_off_stays_string():
    plan = synthetic.plan_dataset(tiny_config(quirks=[]))
    plan.frames["train"][0].lights = [synthetic.PlannedLight("off", (1.0, 2.0, 21.0, 10.0), False, "pole")]
    text = synthetic.format_bstld_yaml(synthetic.yaml_entries(plan, "train"), plan.unquoted_off)
    assert "label: 'off'" in text
    assert yaml.safe_load(text)[0]["boxes"][0]["label"] == "off"


# ----------------------------------------------------------------- rendering

LAMP_ROWS = (16.0, 32.0, 48.0)
LAMP_SLOTS = {"Red": 0, "Yellow": 1, "Green": 2}


def lamp_means(label: str, frame: synthetic.PlannedFrame, image_size: tuple[int, int]) -> np.ndarray:
    """Render one 20 x 48 px light and return the mean RGB of its three lamps, top to bottom."""
    # Box [8, 20, 56, 40]: lamp centres at rows 8 + 48 * (1, 3, 5) / 6 = 16, 32, 48 and
    # column 30. The lamp radius is min(0.38 * 20, 0.14 * 48) = 6.7 px, and the means use 5 px.
    frame.lights = [synthetic.PlannedLight(label, (8.0, 20.0, 56.0, 40.0), False, "pole")]
    pixels = synthetic.render_frame(frame, image_size).astype(np.float64)
    rows, cols = np.mgrid[0 : image_size[0], 0 : image_size[1]] + 0.5
    return np.array([pixels[(rows - row) ** 2 + (cols - 30.0) ** 2 <= 25.0].mean(axis=0) for row in LAMP_ROWS])


@pytest.fixture(scope="module")
def styled_frames() -> tuple[list[synthetic.PlannedFrame], tuple[int, int]]:
    """Twenty frames with twenty different scene styles, some of them at dusk."""
    plan = synthetic.plan_dataset(tiny_config(train_sequences=20, frames_per_sequence=1, quirks=[]))
    # Dusk frames have the lowest exposure, which the lamp checks must survive.
    assert any(frame.style.dusk for frame in plan.frames["train"])
    return plan.frames["train"], plan.image_size


@pytest.mark.parametrize("label", ["Red", "Yellow", "Green", "off"])
def test_render_unlit_lamps_dark(styled_frames, label):
    frames, image_size = styled_frames
    for frame in frames:
        means = lamp_means(label, frame, image_size)
        for slot in range(3):
            if slot != LAMP_SLOTS.get(label):
                assert means[slot].max() < 128, (frame.image_path, slot, means[slot])


@pytest.mark.parametrize("label", ["Red", "Yellow", "Green"])
def test_render_lit_lamp_colour(styled_frames, label):
    frames, image_size = styled_frames
    for frame in frames:
        red, green, blue = lamp_means(label, frame, image_size)[LAMP_SLOTS[label]]
        context = (frame.image_path, red, green, blue)
        if label == "Red":
            assert red >= 200, context
            assert red - green >= 100, context
        elif label == "Yellow":
            assert red >= 200, context
            assert green >= 150, context
            assert green - blue >= 100, context
        else:
            assert green >= 200, context
            assert green - red >= 100, context


def test_render_arrow_lamp_lit(styled_frames):
    frames, image_size = styled_frames
    means = lamp_means("GreenLeft", frames[0], image_size)
    # The arrow lamp is dimmer than a full lamp but still clearly green.
    assert means[2][1] - means[2][0] >= 50


def test_render_shape_and_dtype(styled_frames):
    frames, image_size = styled_frames
    pixels = synthetic.render_frame(frames[0], image_size)
    assert pixels.shape == (64, 96, 3)
    assert pixels.dtype == np.uint8


# -------------------------------------------------------------------- errors


def test_error_unknown_quirk():
    with pytest.raises(ValueError, match="no_such_quirk"):
        synthetic.plan_dataset(tiny_config(quirks=["no_such_quirk"]))


def test_error_image_too_small():
    with pytest.raises(ValueError, match="image_size"):
        synthetic.plan_dataset(tiny_config(image_size=[16, 96]))


def test_error_negative_seed():
    with pytest.raises(ValueError, match="seed"):
        synthetic.plan_dataset(tiny_config(seed=-1))


def test_error_empty_share_above_one():
    with pytest.raises(ValueError, match="empty_share_test"):
        synthetic.plan_dataset(tiny_config(empty_share_test=1.5))


def test_quirk_counts_shrink_when_small():
    # One train sequence has no second sequence to repeat a basename in, and
    # two test frames allow only two network-share paths.
    config = tiny_config(train_sequences=1, test_images=2, quirks=["repeated_basename", "network_share"])
    summary = synthetic.summarize(synthetic.plan_dataset(config))
    assert summary["quirks"]["repeated_basename"] == 0
    assert summary["quirks"]["network_share"] == 2
