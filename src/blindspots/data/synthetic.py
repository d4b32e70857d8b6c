"""Synthetic road scenes with traffic lights, written in the BSTLD file format.

This is the default dataset. It needs no download, and it runs the same
parser, repair and training code as the Bosch Small Traffic Lights Dataset
(BSTLD). Generation has three steps:

1. `plan_dataset` samples every frame's layout (labels, boxes, occlusion,
   quirks) with numpy only, so its statistics can be checked on thousands
   of frames without rendering them.
2. `render_frame` draws one planned frame.
3. `generate_dataset` writes the PNGs and the three YAML files.

Boxes are `[ymin, xmin, ymax, xmax]` in pixels of the generated frame, with
the origin at the top-left corner. Pixel `j` covers `[j, j + 1)`, so a box
`[0, 0, 2, 3]` covers exactly two rows and three columns. The YAML files use
BSTLD's own keys (`x_min`, `x_max`, `y_min`, `y_max`) in the same pixels.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from blindspots.config.schema import QUIRKS

logger = logging.getLogger(__name__)

SPLITS = ("train", "test", "additional")
YAML_FILES = {"train": "train.yaml", "test": "test.yaml", "additional": "additional_train.yaml"}

# Box counts per label in the released BSTLD train.yaml (10756 boxes) and
# test.yaml (13486 boxes). Additional frames use the train mix.
TRAIN_LABEL_COUNTS = {
    "Green": 5207,
    "Red": 3057,
    "Yellow": 444,
    "off": 726,
    "RedLeft": 1092,
    "GreenLeft": 178,
    "RedStraight": 9,
    "GreenStraight": 20,
    "GreenRight": 13,
    "RedRight": 5,
    "GreenStraightRight": 3,
    "RedStraightLeft": 1,
    "GreenStraightLeft": 1,
}
TEST_LABEL_COUNTS = {"Green": 7569, "Red": 5321, "Yellow": 154, "off": 442}

# Lights per non-empty frame are 1 + Binomial(MAX_LIGHTS - 1, p), with p set
# from the mean. BSTLD train has 10756 boxes over about 3160 non-empty frames
# (mean 3.4). Test has 13486 boxes over about 7170 non-empty frames (mean
# 1.9), an estimate from its 8334 frames of which 14% are empty.
MAX_LIGHTS = 6
MEAN_LIGHTS = {"train": 3.4, "test": 1.9, "additional": 3.4}
# Lights at one intersection usually show the same state. Each light copies
# the frame's first label with this probability and otherwise draws its own,
# which keeps every light's marginal label distribution unchanged.
SAME_STATE_SHARE = 0.7

# BSTLD light widths at full resolution: median about 8.5 px, about 45% under
# 8 px. A log-normal with median 8.5 px and sigma 0.48 gives P(w < 8) = 0.45.
# The sigma is split between a per-frame scale and a per-light jitter, so
# lights in one frame have similar sizes: 0.35^2 + 0.33^2 = 0.48^2.
WIDTH_MEDIAN_PX = 8.5
WIDTH_FRAME_SIGMA = 0.35
WIDTH_LIGHT_SIGMA = 0.33
WIDTH_FLOOR_PX = 3.0
# Housing height / width. BSTLD boxes are 2-3 times taller than wide, which
# puts the median height near 8.5 * 2.5 = 21 px.
ASPECT_RANGE = (2.0, 3.0)
# A light never takes more than this share of the frame's height or width,
# so that it fits in small frames such as the 64 x 96 test preset.
MAX_HEIGHT_SHARE = 0.45
MAX_WIDTH_SHARE = 0.25
MIN_IMAGE_SIDE = 32

# BSTLD marks about 10-15% of lights as occluded.
OCCLUDED_SHARE = 0.12
POLE_SHARE = 0.4
# Share of lights placed just above the horizon (far lights). The rest hang
# over the road in the upper part of the frame. Narrow lights are more often
# far away, and the two shares average to 0.3.
NEAR_HORIZON_SHARE = {"narrow": 0.45, "wide": 0.15}
PLACEMENT_ATTEMPTS = 20

# Frames, entries or boxes changed per requested quirk. `unquoted_off` leaves
# every `off` label unquoted, and relabels lights so at least this many exist.
QUIRK_COUNT = 3
# The absolute path prefix of the released test.yaml.
NETWORK_SHARE_PREFIX = (
    "/net/pal-soc1.us.bosch.com/ifs/data/Shared_Exports/deep_learning_data/traffic_lights/university_run1"
)

# Frame ids are one counter over train, additional and test, so a basename is
# unique unless the `repeated_basename` quirk repeats it.
FIRST_IMAGE_ID = 10000
# Sequence folders are named like BSTLD's recording bags, one every few minutes.
TRAIN_SEQUENCE_START = datetime(2015, 10, 5, 10, 0, 0)
ADDITIONAL_SEQUENCE_START = datetime(2015, 10, 7, 9, 0, 0)
SEQUENCE_INTERVAL = timedelta(minutes=7, seconds=13)

# Keys of the random streams. Every stream is seeded with the same-length key
# [seed, purpose, split, index], because numpy's SeedSequence pads short keys
# with zeros and [a, b] would collide with [a, b, 0].
_SPLIT_CODES = {"train": 1, "test": 2, "additional": 3}
_STYLE, _LAYOUT, _RENDER, _EMPTY, _QUIRKS = 1, 2, 3, 4, 5

_LABEL_PATTERN = re.compile(r"^(Green|Red|Yellow)((?:Straight|Left|Right)*)$")
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
_PLAIN_LABEL = re.compile(r"^[A-Za-z]+$")
# Strings that YAML 1.1 defines as booleans or null, which need quotes to stay strings.
_YAML11_RESERVED = {
    "y", "n", "yes", "no", "true", "false", "on", "off", "null",
}

# Lamp colours (RGB in [0, 1]) and the lamp each colour lights, top to bottom.
LAMP_COLOURS = {
    "Red": np.array([1.0, 0.12, 0.08], np.float32),
    "Yellow": np.array([1.0, 0.68, 0.05], np.float32),
    "Green": np.array([0.15, 1.0, 0.55], np.float32),
}
LAMP_ORDER = ("Red", "Yellow", "Green")

# zlib level 1: sensor noise leaves little to compress, and level 6 costs
# about 3.5x the time for files about 15% smaller (measured on 192 x 320 frames).
PNG_COMPRESS_LEVEL = 1


# ---------------------------------------------------------------- plan types


@dataclass(frozen=True)
class SceneStyle:
    """Look shared by the frames of one sequence (one frame for test)."""

    sky_top: np.ndarray
    sky_horizon: np.ndarray
    ground: np.ndarray
    road: np.ndarray
    building_colours: np.ndarray
    # Global brightness factor; emissive lamps are drawn so they keep their
    # brightness after it is applied.
    exposure: float
    dusk: bool
    # Horizon row as a share of the frame height.
    horizon_share: float


@dataclass
class PlannedLight:
    """One traffic light: its label, housing box and how it is mounted."""

    label: str
    # [ymin, xmin, ymax, xmax] in pixels, rounded to 0.01 px.
    box: tuple[float, float, float, float]
    occluded: bool
    mount: str  # "pole" or "hanging"
    # YAML-only quirks: the rendered light is unchanged.
    reversed_in_yaml: bool = False
    duplicated_in_yaml: bool = False


@dataclass
class PlannedFrame:
    """One image: where it is written, what it shows and its random streams."""

    split: str
    sequence: str  # "" for test frames
    image_id: int
    # PNG path relative to the dataset root, e.g. rgb/train/<sequence>/<id>.png.
    image_path: str
    # Path as written in the YAML file, e.g. ./rgb/train/<sequence>/<id>.png.
    yaml_path: str
    horizon: float  # horizon row in pixels
    style: SceneStyle
    render_key: tuple[int, int, int, int]
    lights: list[PlannedLight] = field(default_factory=list)


@dataclass
class DatasetPlan:
    """Every frame of the three splits, with the quirks already applied."""

    image_size: tuple[int, int]
    seed: int
    frames: dict[str, list[PlannedFrame]]
    # Train frames that additional_train.yaml lists too (`cross_split`).
    cross_split: list[PlannedFrame]
    unquoted_off: bool
    # Quirk name -> YAML paths of the entries it changed.
    quirk_paths: dict[str, list[str]]


# ------------------------------------------------------------------- planning


def plan_dataset(cfg: Any) -> DatasetPlan:
    """Sample the layout of every frame, then apply the requested quirks.

    `cfg` has the fields of `SyntheticConfig`. Nothing is rendered or written.
    Raises ValueError naming the field when a value cannot be generated.
    """
    image_size = _validated_image_size(cfg)
    seed = int(cfg.seed)
    if seed < 0:
        raise ValueError(f"data.synthetic.seed must be a non-negative integer, got {seed}.")
    quirks = [str(name) for name in cfg.quirks]
    unknown = sorted(set(quirks) - set(QUIRKS))
    if unknown:
        raise ValueError(f"data.synthetic.quirks contains unknown quirks {unknown}; allowed values are {list(QUIRKS)}.")
    for key in ("train_sequences", "frames_per_sequence", "test_images", "additional_images"):
        if int(getattr(cfg, key)) < 0:
            raise ValueError(f"data.synthetic.{key} must be zero or a positive integer, got {getattr(cfg, key)}.")
    for key in ("empty_share_train", "empty_share_test"):
        if not 0.0 <= float(getattr(cfg, key)) <= 1.0:
            raise ValueError(f"data.synthetic.{key} must be a share between 0 and 1, got {getattr(cfg, key)}.")

    train_count = int(cfg.train_sequences) * int(cfg.frames_per_sequence)
    additional_count = int(cfg.additional_images)
    test_count = int(cfg.test_images)
    first_ids = {
        "train": FIRST_IMAGE_ID,
        "additional": FIRST_IMAGE_ID + train_count,
        "test": FIRST_IMAGE_ID + train_count + additional_count,
    }
    sequences = {
        "train": [
            (_sequence_name(TRAIN_SEQUENCE_START, index), int(cfg.frames_per_sequence))
            for index in range(int(cfg.train_sequences))
        ],
        "additional": [(_sequence_name(ADDITIONAL_SEQUENCE_START, 0), additional_count)] if additional_count else [],
        "test": [("", test_count)],
    }
    empty_shares = {
        "train": float(cfg.empty_share_train),
        "additional": float(cfg.empty_share_train),
        "test": float(cfg.empty_share_test),
    }

    frames = {
        split: _plan_split(split, sequences[split], first_ids[split], empty_shares[split], image_size, seed)
        for split in SPLITS
    }
    plan = DatasetPlan(
        image_size=image_size,
        seed=seed,
        frames=frames,
        cross_split=[],
        unquoted_off="unquoted_off" in quirks,
        quirk_paths={},
    )
    _apply_quirks(plan, quirks)
    return plan


def _validated_image_size(cfg: Any) -> tuple[int, int]:
    size = [int(value) for value in cfg.image_size]
    if len(size) != 2 or min(size) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"data.synthetic.image_size must be [height, width] with both sides at least "
            f"{MIN_IMAGE_SIDE} px so that a traffic light fits, got {size}."
        )
    return size[0], size[1]


def _sequence_name(start: datetime, index: int) -> str:
    return (start + index * SEQUENCE_INTERVAL).strftime("%Y-%m-%d-%H-%M-%S") + "_bag"


def _rng(seed: int, purpose: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, _SPLIT_CODES[split], index])


def _plan_split(
    split: str,
    sequences: Sequence[tuple[str, int]],
    first_id: int,
    empty_share: float,
    image_size: tuple[int, int],
    seed: int,
) -> list[PlannedFrame]:
    """Plan the frames of one split, sequence by sequence."""
    height = image_size[0]
    total = sum(count for _, count in sequences)
    empty = _empty_frames(_rng(seed, _EMPTY, split, 0), total, empty_share)
    labels, probabilities = _label_distribution(split)

    frames: list[PlannedFrame] = []
    for sequence_index, (sequence, count) in enumerate(sequences):
        sequence_style = _sample_style(_rng(seed, _STYLE, split, sequence_index)) if sequence else None
        for _ in range(count):
            index = len(frames)
            image_id = first_id + index
            # Test frames come from one drive but differ from frame to frame.
            style = sequence_style or _sample_style(_rng(seed, _STYLE, split, index))
            image_path = _image_path(split, sequence, image_id)
            layout_rng = _rng(seed, _LAYOUT, split, index)
            # Camera pitch moves the horizon by about 1% of the height between frames.
            horizon = height * style.horizon_share + layout_rng.normal(0.0, 0.01 * height)
            horizon = min(max(float(horizon), 0.2 * height), 0.8 * height)
            lights = []
            if index not in empty:
                lights = sample_lights(layout_rng, image_size, horizon, labels, probabilities, MEAN_LIGHTS[split])
            frames.append(
                PlannedFrame(
                    split=split,
                    sequence=sequence,
                    image_id=image_id,
                    image_path=image_path,
                    yaml_path="./" + image_path,
                    horizon=horizon,
                    style=style,
                    render_key=(seed, _RENDER, _SPLIT_CODES[split], index),
                    lights=lights,
                )
            )
    return frames


def _image_path(split: str, sequence: str, image_id: int) -> str:
    if split == "test":
        return f"rgb/test/{image_id}.png"
    return f"rgb/{split}/{sequence}/{image_id}.png"


def _empty_frames(rng: np.random.Generator, total: int, share: float) -> set[int]:
    """Pick exactly round(share * total) frames to carry no light."""
    count = int(round(share * total))
    return set(rng.permutation(total)[:count].tolist())


def _label_distribution(split: str) -> tuple[list[str], np.ndarray]:
    counts = TEST_LABEL_COUNTS if split == "test" else TRAIN_LABEL_COUNTS
    labels = list(counts)
    weights = np.array([counts[label] for label in labels], dtype=np.float64)
    return labels, weights / weights.sum()


def _sample_style(rng: np.random.Generator) -> SceneStyle:
    """Sample a time of day, a palette and a horizon height."""
    kind = rng.choice(["day", "overcast", "dusk"], p=[0.6, 0.25, 0.15])

    def jitter() -> np.ndarray:
        return rng.uniform(-0.06, 0.06, 3).astype(np.float32)

    if kind == "day":
        sky_top, sky_horizon, exposure = [0.32, 0.52, 0.85], [0.74, 0.82, 0.92], 1.0
    elif kind == "overcast":
        sky_top, sky_horizon, exposure = [0.58, 0.6, 0.64], [0.8, 0.8, 0.8], 0.9
    else:
        sky_top, sky_horizon, exposure = [0.12, 0.16, 0.35], [0.85, 0.52, 0.32], 0.55
    building_count = 6
    building_colours = rng.uniform(0.25, 0.75, (building_count, 1)) * rng.uniform(0.8, 1.1, (building_count, 3))
    return SceneStyle(
        sky_top=np.clip(np.asarray(sky_top, np.float32) + jitter(), 0, 1),
        sky_horizon=np.clip(np.asarray(sky_horizon, np.float32) + jitter(), 0, 1),
        ground=np.clip(np.float32(rng.uniform(0.35, 0.55)) + jitter() * 0.5, 0, 1),
        road=np.full(3, rng.uniform(0.22, 0.38), np.float32) + jitter() * 0.2,
        building_colours=building_colours.astype(np.float32),
        exposure=float(exposure * rng.uniform(0.85, 1.15)),
        dusk=kind == "dusk",
        horizon_share=float(rng.uniform(0.42, 0.58)),
    )


def sample_lights(
    rng: np.random.Generator,
    image_size: tuple[int, int],
    horizon: float,
    labels: Sequence[str],
    probabilities: np.ndarray,
    mean_lights: float,
) -> list[PlannedLight]:
    """Sample the lights of one non-empty frame.

    `image_size` is (height, width) and `horizon` a row, both in pixels.
    Returned boxes are `[ymin, xmin, ymax, xmax]` in pixels and lie inside
    the frame. Lights avoid each other unless PLACEMENT_ATTEMPTS tries fail.
    """
    count = 1 + int(rng.binomial(MAX_LIGHTS - 1, (mean_lights - 1.0) / (MAX_LIGHTS - 1)))
    cumulative = np.cumsum(probabilities)
    first_label = _draw_label(rng, labels, cumulative)
    frame_scale = rng.normal(0.0, WIDTH_FRAME_SIGMA)

    lights: list[PlannedLight] = []
    for index in range(count):
        label = first_label
        if index > 0 and rng.random() >= SAME_STATE_SHARE:
            label = _draw_label(rng, labels, cumulative)
        box_height, box_width = _sample_light_size(rng, image_size, frame_scale)
        box = _place_box(rng, image_size, horizon, box_height, box_width, [light.box for light in lights])
        occluded = bool(rng.random() < OCCLUDED_SHARE)
        mount = "pole" if rng.random() < POLE_SHARE else "hanging"
        lights.append(PlannedLight(label=label, box=box, occluded=occluded, mount=mount))
    return lights


def _draw_label(rng: np.random.Generator, labels: Sequence[str], cumulative: np.ndarray) -> str:
    # Inverse-CDF draw. Generator.choice with a list and `p` took about 8 times
    # longer per call (numpy 2.1, timed with timeit on the development machine).
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return labels[min(index, len(labels) - 1)]


def _sample_light_size(
    rng: np.random.Generator, image_size: tuple[int, int], frame_scale: float
) -> tuple[float, float]:
    """Return (height, width) in pixels, rounded to 0.01 px."""
    height, width = image_size
    box_width = WIDTH_MEDIAN_PX * math.exp(frame_scale + rng.normal(0.0, WIDTH_LIGHT_SIGMA))
    box_width = min(max(box_width, WIDTH_FLOOR_PX), MAX_WIDTH_SHARE * width)
    box_height = box_width * rng.uniform(*ASPECT_RANGE)
    # Shrinking keeps the aspect ratio, so tall lights stay tall in small frames.
    shrink = min(1.0, MAX_HEIGHT_SHARE * height / box_height)
    return round(box_height * shrink, 2), round(box_width * shrink, 2)


def _place_box(
    rng: np.random.Generator,
    image_size: tuple[int, int],
    horizon: float,
    box_height: float,
    box_width: float,
    placed: Sequence[tuple[float, float, float, float]],
) -> tuple[float, float, float, float]:
    """Place a box above the road or near the horizon, clear of `placed`."""
    height, width = image_size
    size_class = "narrow" if box_width < WIDTH_MEDIAN_PX else "wide"
    box = (0.0, 0.0, box_height, box_width)
    for _ in range(PLACEMENT_ATTEMPTS):
        if rng.random() < NEAR_HORIZON_SHARE[size_class]:
            # Far lights: the bottom edge sits within a few percent of the horizon.
            top = horizon + rng.normal(-0.03, 0.04) * height - box_height
        else:
            # Overhead lights: between 2% of the height and just above the
            # horizon. In small frames the range keeps at least 10% of the height.
            low = 0.02 * height
            high = max(low + 0.1 * height, horizon - box_height - 0.06 * height)
            top = low + rng.beta(1.6, 2.4) * (high - low)
        top = round(min(max(float(top), 0.0), height - box_height), 2)
        left = round(float(rng.uniform(0.0, width - box_width)), 2)
        box = (top, left, round(top + box_height, 2), round(left + box_width, 2))
        if not any(_boxes_touch(box, other, margin=1.0) for other in placed):
            return box
    return box


def _boxes_touch(first: Sequence[float], second: Sequence[float], margin: float) -> bool:
    """Return whether two [ymin, xmin, ymax, xmax] boxes come within `margin` px."""
    return (
        first[0] < second[2] + margin
        and second[0] < first[2] + margin
        and first[1] < second[3] + margin
        and second[1] < first[3] + margin
    )


# --------------------------------------------------------------------- quirks


def _apply_quirks(plan: DatasetPlan, quirks: Sequence[str]) -> None:
    """Apply each requested quirk to QUIRK_COUNT frames, in schema order.

    Box quirks and `cross_split` go to train frames, each to a different
    frame, so the counts do not overlap. `repeated_basename` renames frames of
    the second train sequence, whatever other quirk they carry, and
    `unquoted_off` changes every `off` label. The order is fixed, so the order of `quirks` in the config
    does not change the output. Fewer frames are changed, with a warning, when
    the dataset is too small.
    """
    rng = _rng(plan.seed, _QUIRKS, "train", 0)
    train = plan.frames["train"]
    order = rng.permutation(len(train)).tolist()
    used: set[int] = set()

    def take_frames(count: int, need_lights: bool) -> list[PlannedFrame]:
        chosen = [i for i in order if i not in used and (train[i].lights or not need_lights)][:count]
        used.update(chosen)
        return [train[i] for i in chosen]

    changed: dict[str, list[PlannedFrame]] = {}
    for quirk in QUIRKS:
        if quirk not in quirks:
            continue
        if quirk == "out_of_bounds":
            frames = take_frames(QUIRK_COUNT, need_lights=True)
            for number, frame in enumerate(frames):
                _push_over_edge(rng, frame.lights[0], ("left", "top", "right")[number % 3], plan.image_size)
        elif quirk == "reversed":
            frames = take_frames(QUIRK_COUNT, need_lights=True)
            for frame in frames:
                frame.lights[-1].reversed_in_yaml = True
        elif quirk == "duplicate":
            frames = take_frames(QUIRK_COUNT, need_lights=True)
            for frame in frames:
                frame.lights[0].duplicated_in_yaml = True
        elif quirk == "cross_split":
            frames = take_frames(QUIRK_COUNT, need_lights=False)
            plan.cross_split.extend(frames)
        elif quirk == "repeated_basename":
            frames = _repeat_basenames(plan, rng)
        elif quirk == "network_share":
            frames = _move_to_network_share(plan, rng)
        else:  # unquoted_off
            frames = _ensure_off_lights(plan, take_frames)
        changed[quirk] = frames
        if len(frames) < QUIRK_COUNT and quirk != "unquoted_off":
            logger.warning(
                "Quirk %s was applied to %d frames instead of %d because the synthetic dataset is too small.",
                quirk,
                len(frames),
                QUIRK_COUNT,
            )

    # Paths are read last, because `repeated_basename` renames frames that
    # an earlier quirk may have changed too.
    plan.quirk_paths = {quirk: [frame.yaml_path for frame in frames] for quirk, frames in changed.items()}


def _push_over_edge(rng: np.random.Generator, light: PlannedLight, edge: str, image_size: tuple[int, int]) -> None:
    """Move a light so that 20-45% of it lies past one image edge."""
    height, width = image_size
    ymin, xmin, ymax, xmax = light.box
    box_height, box_width = ymax - ymin, xmax - xmin
    overhang = rng.uniform(0.2, 0.45)
    if edge == "left":
        xmin = round(-overhang * box_width, 2)
        xmax = round(xmin + box_width, 2)
    elif edge == "right":
        xmax = round(width + overhang * box_width, 2)
        xmin = round(xmax - box_width, 2)
    else:
        ymin = round(-overhang * box_height, 2)
        ymax = round(ymin + box_height, 2)
    light.box = (ymin, xmin, ymax, xmax)


def _repeat_basenames(plan: DatasetPlan, rng: np.random.Generator) -> list[PlannedFrame]:
    """Give frames of the second train sequence the ids of frames of the first."""
    train = plan.frames["train"]
    sequences = sorted({frame.sequence for frame in train})
    if len(sequences) < 2:
        return []
    first = [i for i, frame in enumerate(train) if frame.sequence == sequences[0]]
    second = [i for i, frame in enumerate(train) if frame.sequence == sequences[1]]
    count = min(QUIRK_COUNT, len(first), len(second))
    sources = rng.choice(first, size=count, replace=False).tolist()
    targets = rng.choice(second, size=count, replace=False).tolist()
    changed = []
    for source, target in zip(sources, targets):
        frame = train[target]
        frame.image_id = train[source].image_id
        frame.image_path = _image_path("train", frame.sequence, frame.image_id)
        frame.yaml_path = "./" + frame.image_path
        changed.append(frame)
    return changed


def _move_to_network_share(plan: DatasetPlan, rng: np.random.Generator) -> list[PlannedFrame]:
    """List some test frames under the absolute path of the released test.yaml."""
    test = plan.frames["test"]
    chosen = rng.permutation(len(test))[:QUIRK_COUNT].tolist()
    for index in chosen:
        test[index].yaml_path = f"{NETWORK_SHARE_PREFIX}/{test[index].image_id}.png"
    return [test[index] for index in sorted(chosen)]


def _ensure_off_lights(
    plan: DatasetPlan, take_frames: Callable[[int, bool], list[PlannedFrame]]
) -> list[PlannedFrame]:
    """Relabel train lights as `off` until QUIRK_COUNT exist, and return the frames with one."""
    existing = sum(light.label == "off" for frames in plan.frames.values() for f in frames for light in f.lights)
    for frame in take_frames(max(0, QUIRK_COUNT - existing), True):
        frame.lights[0].label = "off"
    return [f for split in SPLITS for f in plan.frames[split] if any(light.label == "off" for light in f.lights)]


# ---------------------------------------------------------------- YAML output


def yaml_entries(plan: DatasetPlan, split: str) -> list[dict[str, Any]]:
    """Return the entries of one split's YAML file, as BSTLD's loader reads them.

    Each entry is `{"path": str, "boxes": [box, ...]}`, and each box has the
    keys label, occluded, x_min, x_max, y_min and y_max, in pixels. Labels
    stay strings here, and `format_bstld_yaml` decides how `off` is written.
    """
    frames = list(plan.frames[split])
    if split == "additional":
        frames += plan.cross_split
    return [{"path": frame.yaml_path, "boxes": _yaml_boxes(frame.lights)} for frame in frames]


def _yaml_boxes(lights: Sequence[PlannedLight]) -> list[dict[str, Any]]:
    boxes = []
    duplicates = []
    for light in lights:
        ymin, xmin, ymax, xmax = light.box
        if light.reversed_in_yaml:
            ymin, ymax, xmin, xmax = ymax, ymin, xmax, xmin
        box = {
            "label": light.label,
            "occluded": light.occluded,
            "x_max": xmax,
            "x_min": xmin,
            "y_max": ymax,
            "y_min": ymin,
        }
        boxes.append(box)
        if light.duplicated_in_yaml:
            duplicates.append(dict(box))
    # Duplicates go last, as a repeated annotation would, not next to the original.
    return boxes + duplicates


def format_bstld_yaml(entries: Sequence[dict[str, Any]], unquoted_off: bool) -> str:
    """Format entries in the layout of the released BSTLD YAML files.

    Each entry is a block mapping with `boxes` before `path`, and each box is
    a flow mapping with sorted keys. With `unquoted_off`, the label `off` is
    written bare, so a YAML 1.1 loader (PyYAML's safe_load) reads it as the
    boolean False, as it does for the released files. Otherwise it is quoted.
    """
    if not entries:
        return "[]\n"
    lines = []
    for entry in entries:
        if entry["boxes"]:
            lines.append("- boxes:")
            lines.extend("  - " + _format_box(box, unquoted_off) for box in entry["boxes"])
        else:
            lines.append("- boxes: []")
        lines.append("  path: " + _format_path(entry["path"]))
    return "\n".join(lines) + "\n"


def _format_box(box: dict[str, Any], unquoted_off: bool) -> str:
    fields = [
        f"label: {_format_label(box['label'], unquoted_off)}",
        f"occluded: {'true' if box['occluded'] else 'false'}",
    ]
    fields += [f"{key}: {_format_float(box[key])}" for key in ("x_max", "x_min", "y_max", "y_min")]
    return "{" + ", ".join(fields) + "}"


def _format_label(label: str, unquoted_off: bool) -> str:
    if label == "off" and unquoted_off:
        return "off"
    if _PLAIN_LABEL.match(label) and label.lower() not in _YAML11_RESERVED:
        return label
    return "'" + label.replace("'", "''") + "'"


def _format_float(value: float) -> str:
    # Values carry at most two decimals, so repr never switches to exponent
    # form, which YAML 1.1 would read as a string. Adding 0.0 turns -0.0 into 0.0.
    return repr(round(float(value), 2) + 0.0)


def _format_path(path: str) -> str:
    if _PLAIN_PATH.match(path):
        return path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -------------------------------------------------------------------- summary


def summarize(plan: DatasetPlan) -> dict[str, Any]:
    """Count images, boxes and labels per YAML file, and quirks as written.

    Counts are over the entries written to each file: additional counts
    include the `cross_split` entries, and boxes include `duplicate` copies.
    `quirks` has every quirk of the schema, with 0 for those not requested.
    """
    splits = {}
    off_written = 0
    for split in SPLITS:
        entries = yaml_entries(plan, split)
        boxes = [box for entry in entries for box in entry["boxes"]]
        labels: dict[str, int] = {}
        for box in boxes:
            labels[box["label"]] = labels.get(box["label"], 0) + 1
        off_written += labels.get("off", 0)
        splits[split] = {
            "yaml": YAML_FILES[split],
            "images": len(entries),
            "empty_images": sum(not entry["boxes"] for entry in entries),
            "boxes": len(boxes),
            "occluded": sum(bool(box["occluded"]) for box in boxes),
            "labels": dict(sorted(labels.items())),
        }

    counts = {quirk: 0 for quirk in QUIRKS}
    for quirk, paths in plan.quirk_paths.items():
        counts[quirk] = len(paths)
    if plan.unquoted_off:
        counts["unquoted_off"] = off_written
    return {
        "seed": plan.seed,
        "image_size": list(plan.image_size),
        "png_files": sum(len(frames) for frames in plan.frames.values()),
        "splits": splits,
        "quirks": counts,
        "quirk_paths": {quirk: list(paths) for quirk, paths in plan.quirk_paths.items()},
    }


# ------------------------------------------------------------------ rendering


def render_frame(frame: PlannedFrame, image_size: tuple[int, int]) -> np.ndarray:
    """Draw one planned frame and return it as a (height, width, 3) uint8 RGB array."""
    height, width = image_size
    rng = np.random.default_rng(list(frame.render_key))
    style = frame.style
    # Emissive colours (lamps, tail lights, shop signs) are divided by the
    # exposure, so that they keep their brightness once `_finish` applies it.
    glow_gain = 1.0 / style.exposure

    image = np.empty((height, width, 3), np.float32)
    _draw_sky_and_ground(image, style, frame.horizon)
    _draw_buildings(image, rng, style, frame.horizon, glow_gain)
    _draw_trees(image, rng, frame.horizon)
    _draw_road(image, rng, style, frame.horizon)
    _draw_street_furniture(image, rng, frame.horizon, glow_gain)
    _draw_cars(image, rng, frame.horizon, glow_gain)
    _draw_light_blobs(image, rng, frame.horizon, glow_gain)
    for light in frame.lights:
        _draw_traffic_light(image, rng, light, frame.horizon, glow_gain)
    for light in frame.lights:
        if light.occluded:
            _draw_occluder(image, rng, light)
    return _finish(image, rng, style)


def _span_coverage(low: float, high: float, size: int) -> tuple[int, np.ndarray]:
    """Return the first pixel index and the covered share of each pixel in [low, high)."""
    start = max(int(math.floor(low)), 0)
    stop = min(int(math.ceil(high)), size)
    if stop <= start:
        return start, np.zeros(0, np.float32)
    cells = np.arange(start, stop, dtype=np.float32)
    # Cells run from floor(low) to ceil(high), so every share is in [0, 1].
    return start, np.minimum(high, cells + 1.0) - np.maximum(low, cells)


def _blend(image: np.ndarray, top: int, left: int, coverage: np.ndarray, colour: Any, opacity: float = 1.0) -> None:
    """Paint `colour` over the region starting at (top, left), weighted by `coverage`."""
    if coverage.size == 0:
        return
    rows, cols = coverage.shape
    region = image[top : top + rows, left : left + cols]
    weight = (coverage * opacity)[..., None]
    region += (np.asarray(colour, np.float32) - region) * weight


def _fill_rect(image: np.ndarray, box: Sequence[float], colour: Any, opacity: float = 1.0) -> None:
    """Fill a [ymin, xmin, ymax, xmax] pixel box, antialiased at fractional edges."""
    height, width = image.shape[:2]
    top, rows = _span_coverage(box[0], box[2], height)
    left, cols = _span_coverage(box[1], box[3], width)
    _blend(image, top, left, np.outer(rows, cols), colour, opacity)


def _region(
    image: np.ndarray, cy: float, cx: float, radius_y: float, radius_x: float
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Return the top row, left column and pixel-centre grids of an ellipse's clipped bounding region."""
    height, width = image.shape[:2]
    top = max(int(math.floor(cy - radius_y - 1)), 0)
    bottom = min(int(math.ceil(cy + radius_y + 1)), height)
    left = max(int(math.floor(cx - radius_x - 1)), 0)
    right = min(int(math.ceil(cx + radius_x + 1)), width)
    ys = np.arange(top, max(bottom, top), dtype=np.float32)[:, None] + 0.5
    xs = np.arange(left, max(right, left), dtype=np.float32)[None, :] + 0.5
    return top, left, ys, xs


def _fill_ellipse(
    image: np.ndarray, cy: float, cx: float, radius_y: float, radius_x: float, colour: Any, opacity: float = 1.0
) -> None:
    """Fill an ellipse centred at (cy, cx) with radii in pixels, antialiased at its edge."""
    top, left, ys, xs = _region(image, cy, cx, radius_y, radius_x)
    if ys.size == 0 or xs.size == 0:
        return
    distance = np.sqrt(((ys - cy) / radius_y) ** 2 + ((xs - cx) / radius_x) ** 2)
    # About one pixel of soft edge, measured along the shorter radius.
    coverage = np.clip((1.0 - distance) * min(radius_y, radius_x) + 0.5, 0.0, 1.0)
    _blend(image, top, left, coverage, colour, opacity)


def _fill_polygon(
    image: np.ndarray, vertices: Sequence[tuple[float, float]], colour: Any, opacity: float = 1.0
) -> None:
    """Fill a convex polygon given as (y, x) vertices in pixels, in either winding."""
    coverage, top, left = _polygon_coverage(image.shape[:2], vertices)
    _blend(image, top, left, coverage, colour, opacity)


def _polygon_coverage(
    shape: tuple[int, int], vertices: Sequence[tuple[float, float]]
) -> tuple[np.ndarray, int, int]:
    """Return the antialiased coverage of a convex polygon over its clipped bounding box."""
    height, width = shape
    points = np.asarray(vertices, np.float32)
    top = max(int(math.floor(points[:, 0].min())), 0)
    bottom = min(int(math.ceil(points[:, 0].max())), height)
    left = max(int(math.floor(points[:, 1].min())), 0)
    right = min(int(math.ceil(points[:, 1].max())), width)
    if bottom <= top or right <= left:
        return np.zeros((0, 0), np.float32), top, left
    ys = np.arange(top, bottom, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(left, right, dtype=np.float32)[None, :] + 0.5
    # The sign of the shoelace area gives the winding, so every edge's
    # normal can be turned to point inside.
    following = np.roll(points, -1, axis=0)
    area = float(np.sum(points[:, 1] * following[:, 0] - following[:, 1] * points[:, 0]))
    sign = 1.0 if area > 0 else -1.0
    inside = np.full((bottom - top, right - left), np.inf, np.float32)
    for (y0, x0), (y1, x1) in zip(points, following):
        length = math.hypot(float(y1 - y0), float(x1 - x0))
        if length == 0.0:
            continue
        distance = sign * ((ys - y0) * (x1 - x0) - (xs - x0) * (y1 - y0)) / length
        inside = np.minimum(inside, distance)
    return np.clip(inside + 0.5, 0.0, 1.0), top, left


def _add_glow(image: np.ndarray, cy: float, cx: float, radius: float, colour: Any, strength: float) -> None:
    """Add a Gaussian halo of the given radius (sigma, in pixels) around a lamp."""
    reach = 3.0 * radius
    top, left, ys, xs = _region(image, cy, cx, reach, reach)
    if ys.size == 0 or xs.size == 0:
        return
    falloff = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2.0 * radius**2))
    image[top : top + ys.shape[0], left : left + xs.shape[1]] += (
        falloff[..., None] * np.asarray(colour, np.float32) * strength
    )


def _draw_sky_and_ground(image: np.ndarray, style: SceneStyle, horizon: float) -> None:
    height = image.shape[0]
    sky_rows = min(int(math.ceil(horizon)), height)
    blend = (np.arange(sky_rows, dtype=np.float32) / max(horizon, 1.0))[:, None, None]
    image[:sky_rows] = style.sky_top * (1.0 - blend) + style.sky_horizon * blend
    image[sky_rows:] = style.ground


def _draw_buildings(
    image: np.ndarray, rng: np.random.Generator, style: SceneStyle, horizon: float, glow_gain: float
) -> None:
    """Draw building blocks along the horizon, with window grids, some windows lit."""
    height, width = image.shape[:2]
    ground_row = min(int(horizon + 0.04 * height), height)
    for _ in range(int(rng.integers(3, 9))):
        building_width = int(rng.uniform(0.08, 0.35) * width)
        left = int(rng.integers(-building_width // 2, width))
        right = min(left + building_width, width)
        left = max(left, 0)
        top = int(horizon * rng.uniform(0.05, 0.85))
        if right - left < 4 or ground_row - top < 4:
            continue
        colour = style.building_colours[int(rng.integers(len(style.building_colours)))]
        image[top:ground_row, left:right] = colour * np.float32(rng.uniform(0.8, 1.1))

        period_y, period_x = int(rng.integers(5, 12)), int(rng.integers(4, 10))
        window_h = max(1, int(period_y * rng.uniform(0.4, 0.7)))
        window_w = max(1, int(period_x * rng.uniform(0.4, 0.7)))
        rows = np.arange(ground_row - top)[:, None] - 2
        cols = np.arange(right - left)[None, :] - 1
        is_window = (rows >= 0) & (cols >= 0) & (rows % period_y < window_h) & (cols % period_x < window_w)
        lit_table = rng.random((8, 8)) < (0.35 if style.dusk else 0.12)
        is_lit = lit_table[(rows // period_y) % 8, (cols // period_x) % 8] & is_window
        facade = image[top:ground_row, left:right]
        glass = np.array([0.12, 0.15, 0.2], np.float32) * np.float32(rng.uniform(0.7, 1.6))
        warm = np.array([1.0, 0.8, 0.4], np.float32) * np.float32(rng.uniform(0.6, 1.0) * glow_gain)
        facade[is_window & ~is_lit] = glass
        facade[is_lit] = warm


def _draw_trees(image: np.ndarray, rng: np.random.Generator, horizon: float) -> None:
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(0, 5))):
        radius = rng.uniform(0.04, 0.12) * height
        colour = np.array([0.12, 0.3, 0.1], np.float32) * np.float32(rng.uniform(0.6, 1.3))
        _fill_ellipse(image, horizon - radius * 0.6, rng.uniform(0, width), radius, radius * 1.3, colour)


def _draw_road(image: np.ndarray, rng: np.random.Generator, style: SceneStyle, horizon: float) -> None:
    """Draw the road as a trapezoid towards a vanishing point, with dashed lane markings."""
    height, width = image.shape[:2]
    vanish_x = width * rng.uniform(0.35, 0.65)
    half_width = width * rng.uniform(0.6, 1.1)
    _fill_polygon(
        image,
        [
            (horizon, vanish_x - 2),
            (horizon, vanish_x + 2),
            (height, vanish_x + half_width),
            (height, vanish_x - half_width),
        ],
        style.road,
    )
    # Dashes repeat every `period` units of 1 / depth, so they shorten towards the horizon.
    rows = np.arange(height, dtype=np.float32)[:, None] + 0.5
    depth = np.maximum(rows - horizon, 0.5)
    period = rng.uniform(150.0, 300.0)
    dashed = ((height * 40.0 / depth) % (period / 10.0) < period / 20.0).astype(np.float32)
    for share in (-0.6, -0.2, 0.2, 0.6):
        bottom_x = vanish_x + share * half_width
        line_half_width = max(1.0, 0.012 * width)
        coverage, top, left = _polygon_coverage(
            (height, width),
            [(horizon, vanish_x), (height, bottom_x - line_half_width), (height, bottom_x + line_half_width)],
        )
        if coverage.size == 0:
            continue
        is_edge = abs(share) > 0.5
        mask = coverage if is_edge else coverage * dashed[top : top + coverage.shape[0]]
        colour = (0.85, 0.85, 0.8) if is_edge or rng.random() < 0.7 else (0.85, 0.7, 0.2)
        _blend(image, top, left, mask, colour)


def _draw_street_furniture(image: np.ndarray, rng: np.random.Generator, horizon: float, glow_gain: float) -> None:
    """Draw poles, street lamps and signs: red, yellow, green and blue shapes that are not traffic lights."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(2, 7))):
        x = rng.uniform(0, width)
        pole_width = rng.uniform(1.0, 3.0)
        top = rng.uniform(0.0, horizon * 0.8)
        bottom = min(horizon + rng.uniform(0.0, 0.4) * (height - horizon), height)
        _fill_rect(image, (top, x, bottom, x + pole_width), np.full(3, rng.uniform(0.2, 0.55), np.float32))
        kind = rng.choice(["lamp", "stop", "diamond", "street_name", "round_blue", "none"])
        size = rng.uniform(3.0, 12.0)
        cy, cx = top + size, x + pole_width / 2
        if kind == "lamp":
            colour = np.array([1.0, 0.85, 0.55], np.float32) * glow_gain
            _fill_ellipse(image, top + 1.0, cx, size / 5, size / 3, colour)
            _add_glow(image, top + 1.0, cx, size / 3, colour, 0.3)
        elif kind == "stop":
            _fill_ellipse(image, cy, cx, size / 2, size / 2, (0.8, 0.08, 0.08))
            _fill_rect(image, (cy - size / 10, cx - size / 3, cy + size / 10, cx + size / 3), (0.95, 0.95, 0.95))
        elif kind == "diamond":
            half = size / 2
            diamond = [(cy - half, cx), (cy, cx + half), (cy + half, cx), (cy, cx - half)]
            _fill_polygon(image, diamond, (0.95, 0.78, 0.1))
        elif kind == "street_name":
            _fill_rect(image, (cy - size / 4, cx - size, cy + size / 4, cx + size), (0.1, 0.5, 0.25))
        elif kind == "round_blue":
            _fill_ellipse(image, cy, cx, size / 2, size / 2, (0.1, 0.3, 0.8))


def _draw_cars(image: np.ndarray, rng: np.random.Generator, horizon: float, glow_gain: float) -> None:
    """Draw cars on the road, far to near, each with two red tail lights."""
    height, width = image.shape[:2]
    # Seen from a camera 1.5 m above the road, a car about 1.8 m wide spans
    # about 1.2 times its bottom row's distance below the horizon.
    depths = (height - horizon) * (0.04 + 1.06 * rng.beta(1.2, 2.5, int(rng.integers(0, 6))))
    for depth in np.sort(depths):
        bottom = horizon + depth
        car_width = depth * rng.uniform(1.0, 1.4)
        car_height = car_width * rng.uniform(0.55, 0.8)
        left = rng.uniform(-0.3 * car_width, width - 0.7 * car_width)
        top = bottom - car_height
        body = rng.uniform(0.05, 0.9, 3).astype(np.float32) * np.float32(rng.uniform(0.5, 1.0))
        _fill_rect(image, (top, left, bottom, left + car_width), body)
        rear_window = (
            top + 0.1 * car_height,
            left + 0.15 * car_width,
            top + 0.4 * car_height,
            left + 0.85 * car_width,
        )
        _fill_rect(image, rear_window, (0.1, 0.12, 0.15))
        braking = rng.random() < 0.4
        red = np.array([1.0, 0.1, 0.08], np.float32) * np.float32((1.0 if braking else 0.6) * glow_gain)
        lamp_h, lamp_w = 0.12 * car_height, 0.14 * car_width
        for lamp_left in (left + 0.04 * car_width, left + 0.82 * car_width):
            lamp_top = top + 0.5 * car_height
            _fill_rect(image, (lamp_top, lamp_left, lamp_top + lamp_h, lamp_left + lamp_w), red)
            if braking:
                _add_glow(image, lamp_top + lamp_h / 2, lamp_left + lamp_w / 2, max(lamp_w, 1.0), red, 0.25)


def _draw_light_blobs(image: np.ndarray, rng: np.random.Generator, horizon: float, glow_gain: float) -> None:
    """Draw lamp-sized red, yellow and green lights that are not traffic lights (shop signs, reflections)."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(1, 7))):
        colour = LAMP_COLOURS[str(rng.choice(LAMP_ORDER))] * np.float32(rng.uniform(0.6, 1.0) * glow_gain)
        cy = rng.uniform(0.05 * height, horizon + 0.1 * height)
        cx = rng.uniform(0, width)
        if rng.random() < 0.5:
            radius = rng.uniform(1.0, 4.0)
            _fill_ellipse(image, cy, cx, radius, radius, colour)
            _add_glow(image, cy, cx, radius * 1.5, colour, 0.3)
        else:
            # A neon strip or a lit shop sign: a bright bar in a lamp colour.
            bar_h, bar_w = rng.uniform(1.5, 20.0), rng.uniform(1.5, 12.0)
            _fill_rect(image, (cy, cx, cy + bar_h, cx + bar_w), colour)


def _light_state(label: str) -> tuple[str | None, tuple[str, ...]]:
    """Return the lit colour and the arrow directions of a BSTLD label (None for `off`)."""
    match = _LABEL_PATTERN.match(label)
    if match is None:
        return None, ()
    return match.group(1), tuple(re.findall("Straight|Left|Right", match.group(2)))


def _draw_traffic_light(
    image: np.ndarray, rng: np.random.Generator, light: PlannedLight, horizon: float, glow_gain: float
) -> None:
    """Draw the mount, the dark housing and the three lamps, with the label's lamp lit."""
    height, width = image.shape[:2]
    ymin, xmin, ymax, xmax = light.box
    box_height, box_width = ymax - ymin, xmax - xmin
    cx = (xmin + xmax) / 2
    metal = np.full(3, rng.uniform(0.25, 0.5), np.float32)
    mount_width = max(1.0, 0.25 * box_width)
    if light.mount == "pole":
        ground = max(ymax, min(horizon + rng.uniform(0.0, 0.3) * (height - horizon), height))
        _fill_rect(image, (ymax, cx - mount_width / 2, ground, cx + mount_width / 2), metal)
    else:
        # A mast arm from one side, with a short hanger down to the housing.
        arm_row = max(ymin - rng.uniform(1.0, 6.0), 0.0)
        arm_end = 0.0 if rng.random() < 0.5 else float(width)
        arm = (arm_row - mount_width / 2, min(cx, arm_end), arm_row + mount_width / 2, max(cx, arm_end))
        _fill_rect(image, arm, metal)
        _fill_rect(image, (arm_row, cx - mount_width / 4, ymin, cx + mount_width / 4), metal)

    housing = np.full(3, rng.uniform(0.03, 0.18), np.float32) + rng.uniform(-0.02, 0.02, 3).astype(np.float32)
    _fill_rect(image, light.box, housing)

    colour_name, directions = _light_state(light.label)
    radius = min(0.38 * box_width, 0.14 * box_height)
    for slot, lamp_name in enumerate(LAMP_ORDER):
        cy = ymin + box_height * (2 * slot + 1) / 6
        lamp_colour = LAMP_COLOURS[lamp_name]
        if lamp_name != colour_name:
            _fill_ellipse(image, cy, cx, radius, radius, housing * 1.4 + lamp_colour * 0.06)
            continue
        lit = lamp_colour * np.float32(rng.uniform(0.85, 1.0) * glow_gain)
        if directions:
            # Arrow lamps: a dim disc with the arrow glyph at full brightness.
            _fill_ellipse(image, cy, cx, radius, radius, lit * 0.3)
            for direction in directions:
                _draw_arrow(image, cy, cx, radius, direction, lit)
        else:
            _fill_ellipse(image, cy, cx, radius, radius, lit)
            _fill_ellipse(image, cy, cx, radius * 0.45, radius * 0.45, np.minimum(lit + 0.5, 1.5))
        _add_glow(image, cy, cx, radius * 1.3, lit, rng.uniform(0.1, 0.35))


def _draw_arrow(image: np.ndarray, cy: float, cx: float, radius: float, direction: str, colour: np.ndarray) -> None:
    """Draw an arrow glyph inside a lamp of the given radius, pointing left, right or up (straight)."""
    shaft = 0.35 * radius
    if direction == "Straight":
        _fill_rect(image, (cy - 0.2 * radius, cx - shaft / 2, cy + 0.8 * radius, cx + shaft / 2), colour)
        head = [(cy - 0.9 * radius, cx), (cy - 0.2 * radius, cx + 0.6 * radius), (cy - 0.2 * radius, cx - 0.6 * radius)]
        _fill_polygon(image, head, colour)
        return
    sign = -1.0 if direction == "Left" else 1.0
    tip, base = cx + sign * 0.9 * radius, cx + sign * 0.2 * radius
    tail = cx - sign * 0.8 * radius
    _fill_rect(image, (cy - shaft / 2, min(base, tail), cy + shaft / 2, max(base, tail)), colour)
    _fill_polygon(image, [(cy, tip), (cy - 0.6 * radius, base), (cy + 0.6 * radius, base)], colour)


def _draw_occluder(image: np.ndarray, rng: np.random.Generator, light: PlannedLight) -> None:
    """Cover 25-60% of a light with a pole, a sign or foliage."""
    ymin, xmin, ymax, xmax = light.box
    box_height, box_width = ymax - ymin, xmax - xmin
    kind = rng.choice(["pole", "sign", "foliage"])
    share = rng.uniform(0.25, 0.6)
    if kind == "pole":
        from_left = rng.random() < 0.5
        left = xmin - box_width if from_left else xmax - share * box_width
        right = xmin + share * box_width if from_left else xmax + box_width
        colour = np.full(3, rng.uniform(0.3, 0.6), np.float32)
        _fill_rect(image, (ymin - 2 * box_height, left, ymax + 2 * box_height, right), colour)
    elif kind == "sign":
        from_top = rng.random() < 0.5
        top = ymin - 0.3 * box_height if from_top else ymax - share * box_height
        bottom = ymin + share * box_height if from_top else ymax + 0.3 * box_height
        colour = [(0.9, 0.9, 0.9), (0.1, 0.3, 0.8), (0.1, 0.5, 0.25)][int(rng.integers(3))]
        _fill_rect(image, (top, xmin - 0.4 * box_width, bottom, xmax + 0.4 * box_width), colour)
    else:
        # A quarter ellipse with radii k * (height, width) covers pi / 4 * k^2
        # of the box, so k = sqrt(4 * share / pi), at most 0.87.
        corner_y = ymin if rng.random() < 0.5 else ymax
        corner_x = xmin if rng.random() < 0.5 else xmax
        scale = math.sqrt(4.0 * share / math.pi)
        colour = np.array([0.12, 0.3, 0.1], np.float32) * np.float32(rng.uniform(0.6, 1.3))
        _fill_ellipse(image, corner_y, corner_x, scale * box_height, scale * box_width, colour)


def _finish(image: np.ndarray, rng: np.random.Generator, style: SceneStyle) -> np.ndarray:
    """Apply exposure, mild blur and sensor noise, then quantise to uint8."""
    image *= np.float32(style.exposure * rng.uniform(0.92, 1.08))
    strength = float(rng.uniform(0.2, 0.9))
    image = _blur_rows(image, strength)
    image = _blur_columns(image, strength)
    # Uniform noise in [-0.5, 0.5) has a standard deviation of 0.29, so the
    # noise is 0.3-1.7% of full scale. It is cheaper to draw than Gaussian noise.
    noise = rng.random(image.shape, dtype=np.float32)
    noise -= 0.5
    noise *= np.float32(rng.uniform(0.01, 0.06))
    image += noise
    np.clip(image, 0.0, 1.0, out=image)
    image *= 255.0
    image += 0.5
    return image.astype(np.uint8)


def _blur_rows(image: np.ndarray, strength: float) -> np.ndarray:
    """Blur a (height, width, 3) image along rows with the kernel [s/4, 1 - s/2, s/4].

    The first and last rows keep their values.
    """
    blurred = image.copy()
    neighbours = image[:-2] + image[2:]
    neighbours *= np.float32(strength / 4)
    blurred[1:-1] *= np.float32(1 - strength / 2)
    blurred[1:-1] += neighbours
    return blurred


def _blur_columns(image: np.ndarray, strength: float) -> np.ndarray:
    """Blur along columns like `_blur_rows`. The first and last columns keep their values."""
    height, width, channels = image.shape
    # In the (height, width * channels) view, the horizontal neighbour of a
    # value is `channels` positions away, and rows stay contiguous.
    flat = image.reshape(height, width * channels)
    blurred = flat.copy()
    neighbours = flat[:, : -2 * channels] + flat[:, 2 * channels :]
    neighbours *= np.float32(strength / 4)
    blurred[:, channels:-channels] *= np.float32(1 - strength / 2)
    blurred[:, channels:-channels] += neighbours
    return blurred.reshape(height, width, channels)


# -------------------------------------------------------------------- writing


def generate_dataset(root: Path, cfg: Any) -> dict[str, Any]:
    """Write the synthetic dataset under `root` and return its summary.

    `cfg` has the fields of `SyntheticConfig`. Writes PNGs under `rgb/` and
    the files train.yaml, test.yaml and additional_train.yaml in the layout
    of the released BSTLD files. Files are written in place, so the caller
    makes the whole folder atomic. The summary is the one `summarize` returns.
    """
    from PIL import Image

    started = time.perf_counter()
    root = Path(root)
    plan = plan_dataset(cfg)
    logger.info(
        "Generating synthetic scenes in %s: %d train, %d test, %d additional frames at %d x %d px.",
        root,
        len(plan.frames["train"]),
        len(plan.frames["test"]),
        len(plan.frames["additional"]),
        *plan.image_size,
    )

    for split in SPLITS:
        for frame in plan.frames[split]:
            pixels = render_frame(frame, plan.image_size)
            path = root / frame.image_path
            path.parent.mkdir(parents=True, exist_ok=True)
            # Fixed settings and no metadata, so the same plan gives the same bytes.
            Image.fromarray(pixels).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)

    for split in SPLITS:
        text = format_bstld_yaml(yaml_entries(plan, split), plan.unquoted_off)
        (root / YAML_FILES[split]).write_text(text, encoding="utf-8")

    summary = summarize(plan)
    logger.info(
        "Wrote %d PNGs and %d boxes in %.1f s. Quirks applied: %s.",
        summary["png_files"],
        sum(split["boxes"] for split in summary["splits"].values()),
        time.perf_counter() - started,
        {name: count for name, count in summary["quirks"].items() if count},
    )
    return summary
