"""Parse BSTLD annotation files, repair their known quirks and map labels to classes.

A BSTLD annotation file is a YAML list of `{path, boxes}` entries. Each box
has `label`, `occluded` and `x_min`, `x_max`, `y_min`, `y_max` in pixels
with the origin at the top left. Paths are relative to the YAML file.
Every repair or drop is counted by kind in a `RepairReport`, and unknown
labels or malformed entries raise `DatasetError`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import yaml
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

# Annotation file and image folder (under rgb/) of each BSTLD part.
ANNOTATION_FILES = {"train": "train.yaml", "test": "test.yaml", "additional": "additional_train.yaml"}
IMAGE_FOLDERS = {"train": "train", "test": "test", "additional": "additional"}
BOX_KEYS = ("label", "occluded", "x_min", "x_max", "y_min", "y_max")
ENTRY_KEYS = ("path", "boxes")

# Class names in id order. Ids are 0-based and used by every later stage.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "4class": ("Off", "Green", "Yellow", "Red"),
    "1class": ("TrafficLight",),
}
# BSTLD's arrow labels (GreenLeft, RedStraightLeft, ...) keep their colour.
ARROW_LABEL = re.compile(r"^(?P<colour>Green|Red)(Left|Right|Straight|StraightLeft|StraightRight)?$")
PLAIN_LABELS = {"Yellow": "Yellow", "off": "Off", "Off": "Off"}
# Up to this many image keys are kept per quirk kind, to name in the log.
EXAMPLES_PER_KIND = 3

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DatasetError(ValueError):
    """A dataset file is missing or malformed. The message names the file and the fix."""


@dataclass(frozen=True)
class QuirkKind:
    """One kind of defect in the released annotation files and what is done about it."""

    action: str  # "repaired", "dropped" or "counted"
    unit: str  # what one count is: "box" or "frame"
    description: str


QUIRK_KINDS: dict[str, QuirkKind] = {
    "duplicate": QuirkKind("dropped", "box", "exact copy of an earlier box in the same image"),
    "reversed": QuirkKind("repaired", "box", "min greater than max on an axis, so the pair is swapped"),
    "out_of_bounds": QuirkKind("repaired", "box", "box partly outside the image, clipped to the image"),
    "degenerate": QuirkKind("dropped", "box", "width or height below prepare.min_box_side after clipping"),
    "unquoted_off": QuirkKind("repaired", "box", "label `off` that YAML 1.1 reads as boolean false, read back as 'off'"),
    "network_share": QuirkKind(
        "repaired", "frame", "absolute path to the authors' network share, remapped to rgb/<folder>/<file name>"
    ),
    "duplicate_frame": QuirkKind("dropped", "frame", "image listed twice in one annotation file, of which the first entry is kept"),
    "cross_split": QuirkKind(
        "dropped", "frame", "image listed in both train.yaml and additional_train.yaml, kept in train only"
    ),
    "repeated_basename": QuirkKind(
        "counted", "frame", "file name shared with an image in another folder, distinguished by its relative path"
    ),
}
PLURAL_UNITS = {"box": "boxes", "frame": "frames"}


@dataclass(frozen=True)
class Box:
    """One traffic light in original image pixels, `[ymin, xmin, ymax, xmax]`.

    `label` is the label as written in the YAML (e.g. "RedLeft", "off") and
    `class_id` its 0-based class under the chosen label map.
    """

    label: str
    class_id: int
    occluded: bool
    ymin: float
    xmin: float
    ymax: float
    xmax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass(frozen=True)
class Frame:
    """One annotated image.

    `key` is the image path relative to the dataset root in POSIX form,
    e.g. "rgb/train/<sequence>/<id>.png". Basenames repeat across
    sequences, so the key is always the full relative path. `sequence` is
    the folder between rgb/<folder>/ and the file, or None when the image
    sits directly in rgb/<folder>/ (the test split). `height` and `width`
    are the image's size in pixels, read from its header.
    """

    key: str
    path: Path
    sequence: str | None
    boxes: tuple[Box, ...]
    height: int
    width: int


@dataclass
class RepairReport:
    """Counts of each quirk kind found in one or more annotation files."""

    counts: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind in QUIRK_KINDS})
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, key: str) -> None:
        """Count one occurrence of `kind` in the image `key`."""
        if kind not in QUIRK_KINDS:
            raise ValueError(f"unknown quirk kind '{kind}'. Known kinds: {', '.join(QUIRK_KINDS)}.")
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES_PER_KIND and key not in self.examples[kind]:
            self.examples[kind].append(key)

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """Return counts, actions and example keys per kind, ready for JSON."""
        return {
            kind: {
                "count": self.counts[kind],
                "action": quirk.action,
                "unit": quirk.unit,
                "description": quirk.description,
                "examples": list(self.examples.get(kind, [])),
            }
            for kind, quirk in QUIRK_KINDS.items()
        }

    def log(self, source: str) -> None:
        """Log one line per kind found, with its count and example images."""
        for kind, count in self.counts.items():
            if count:
                quirk = QUIRK_KINDS[kind]
                unit = quirk.unit if count == 1 else PLURAL_UNITS[quirk.unit]
                logger.info("%s: %s %d %s (%s), e.g. %s", source, quirk.action, count, unit, kind, ", ".join(self.examples[kind]))


@dataclass
class BstldSplits:
    """Frames per output split (train, val, test) and a repair report per annotation file."""

    frames: dict[str, list[Frame]]
    reports: dict[str, RepairReport]
    class_names: tuple[str, ...]


def class_names(label_map: str) -> tuple[str, ...]:
    """Return the class names of a label map in id order."""
    if label_map not in CLASS_NAMES:
        raise DatasetError(f"invalid prepare.label_map '{label_map}'. Allowed: {', '.join(CLASS_NAMES)}.")
    return CLASS_NAMES[label_map]


def map_label(label: str, label_map: str) -> int | None:
    """Return the 0-based class id of a BSTLD label, or None for an unknown label."""
    match = ARROW_LABEL.match(label)
    colour = match["colour"] if match else PLAIN_LABELS.get(label)
    if colour is None:
        return None
    return class_names(label_map).index(colour) if label_map == "4class" else 0


def repair_box(
    x_min: float, y_min: float, x_max: float, y_max: float, height: int, width: int, min_box_side: float
) -> tuple[tuple[float, float, float, float] | None, list[str]]:
    """Swap reversed pairs, clip to the image and drop a degenerate box.

    Coordinates are pixels with the origin at the top left. Returns the
    repaired `(ymin, xmin, ymax, xmax)`, or None when a side is below
    `min_box_side` after clipping, and the quirk kinds that applied.
    """
    kinds = []
    if x_min > x_max or y_min > y_max:
        kinds.append("reversed")
        x_min, x_max = min(x_min, x_max), max(x_min, x_max)
        y_min, y_max = min(y_min, y_max), max(y_min, y_max)

    if x_min < 0 or y_min < 0 or x_max > width or y_max > height:
        kinds.append("out_of_bounds")
        x_min, x_max = max(x_min, 0.0), min(x_max, float(width))
        y_min, y_max = max(y_min, 0.0), min(y_max, float(height))

    if x_max - x_min < min_box_side or y_max - y_min < min_box_side:
        kinds.append("degenerate")
        return None, kinds
    return (float(y_min), float(x_min), float(y_max), float(x_max)), kinds


def read_image_size(path: Path) -> tuple[int, int]:
    """Return an image's (height, width) in pixels from its header, without decoding it."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError as error:
        raise DatasetError(f"image not found: {path}. Extract the BSTLD archives again (blindspots download).") from error
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"image {path} is not a readable PNG: {error}. Extract the BSTLD archives again.") from error
    return height, width


def image_key(raw_path: str, image_folder: str) -> tuple[str, bool]:
    """Return the image's key relative to the dataset root, and whether an absolute path was remapped.

    Absolute paths point to the authors' network share, so they are
    remapped to rgb/<image_folder>/<file name>. A relative path that
    leaves the dataset root raises DatasetError.
    """
    if raw_path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", raw_path):
        basename = re.split(r"[\\/]", raw_path)[-1]
        return f"rgb/{image_folder}/{basename}", True
    parts = PurePosixPath(raw_path).parts
    if ".." in parts or not parts:
        raise DatasetError(f"image path '{raw_path}' is empty or leaves the dataset root.")
    return "/".join(parts), False


def sequence_of(key: str) -> str | None:
    """Return the sequence folder of an image key rgb/<folder>/<sequence>/<file>, else None."""
    parts = key.split("/")
    return parts[-2] if len(parts) >= 4 else None


def _load_yaml(yaml_path: Path) -> list[Any]:
    try:
        text = yaml_path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise DatasetError(
            f"annotation file not found: {yaml_path}. Run `blindspots download` or check data.root."
        ) from error
    try:
        entries = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise DatasetError(f"{yaml_path}: invalid YAML: {error}") from error
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DatasetError(f"{yaml_path}: the top level must be a list of {{path, boxes}} entries, got {type(entries).__name__}.")
    return entries


def _require_keys(item: Any, keys: Iterable[str], where: str) -> None:
    if not isinstance(item, dict):
        raise DatasetError(f"{where} must be a mapping with keys {', '.join(keys)}, got {item!r}.")
    for key in keys:
        if key not in item:
            raise DatasetError(f"{where} is missing the key '{key}'. Fix the file or extract it again.")


def _coordinate(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where}: '{key}' must be a finite number of pixels, got {value!r}.")
    return float(value)


def _read_label(raw: Any, where: str, key: str, report: RepairReport) -> str:
    # YAML 1.1 reads an unquoted `off` (and Off, OFF) as boolean false.
    if raw is False:
        report.add("unquoted_off", key)
        return "off"
    if not isinstance(raw, str):
        raise DatasetError(f"{where}: label must be a string, got {raw!r}.")
    return raw


def _parse_boxes(
    raw_boxes: Any, where: str, key: str, height: int, width: int, label_map: str, min_box_side: float, report: RepairReport
) -> list[Box]:
    if raw_boxes is None:
        return []
    if not isinstance(raw_boxes, list):
        raise DatasetError(f"{where}: 'boxes' must be a list, got {type(raw_boxes).__name__}.")

    boxes: list[Box] = []
    seen: set[tuple[Any, ...]] = set()
    for box_index, raw in enumerate(raw_boxes):
        box_where = f"{where}, box {box_index}"
        _require_keys(raw, BOX_KEYS, box_where)
        label = _read_label(raw["label"], box_where, key, report)
        class_id = map_label(label, label_map)
        if class_id is None:
            raise DatasetError(
                f"{box_where}: unknown label '{label}'. Known labels: Green, Red and their arrow variants "
                "(e.g. GreenLeft, RedStraightLeft), Yellow, off. A different label means a wrong annotation file."
            )
        occluded = raw["occluded"]
        if not isinstance(occluded, bool):
            raise DatasetError(f"{box_where}: 'occluded' must be true or false, got {occluded!r}.")
        x_min, x_max, y_min, y_max = (_coordinate(raw[name], box_where, name) for name in ("x_min", "x_max", "y_min", "y_max"))

        identity = (label, occluded, x_min, x_max, y_min, y_max)
        if identity in seen:
            report.add("duplicate", key)
            continue
        seen.add(identity)

        repaired, kinds = repair_box(x_min, y_min, x_max, y_max, height, width, min_box_side)
        for kind in kinds:
            report.add(kind, key)
        if repaired is not None:
            boxes.append(Box(label, class_id, occluded, *repaired))
    return boxes


def parse_annotations(
    yaml_path: Path | str,
    image_folder: str,
    label_map: str = "4class",
    min_box_side: float = 1.0,
    report: RepairReport | None = None,
) -> tuple[list[Frame], RepairReport]:
    """Parse one BSTLD annotation file into frames with repaired boxes.

    `image_folder` is the folder under rgb/ that absolute paths are
    remapped to ("train", "test" or "additional"). Boxes are returned in
    original pixels as `[ymin, xmin, ymax, xmax]`. Each image must exist,
    and its size is read from its header. Raises DatasetError naming the
    file, the entry and the key for a missing key, an unknown label or a
    missing image.
    """
    yaml_path = Path(yaml_path)
    root = yaml_path.parent
    report = report if report is not None else RepairReport()
    frames: list[Frame] = []
    keys_seen: set[str] = set()

    for index, entry in enumerate(_load_yaml(yaml_path)):
        where = f"{yaml_path}: entry {index}"
        if isinstance(entry, dict) and "path" in entry:
            where += f" ({entry['path']})"
        _require_keys(entry, ENTRY_KEYS, where)
        raw_path = entry["path"]
        if not isinstance(raw_path, str):
            raise DatasetError(f"{where}: 'path' must be a string, got {raw_path!r}.")
        try:
            key, remapped = image_key(raw_path, image_folder)
        except DatasetError as error:
            raise DatasetError(f"{where}: {error}") from error
        if remapped:
            report.add("network_share", key)
        if key in keys_seen:
            report.add("duplicate_frame", key)
            continue
        keys_seen.add(key)

        path = root / key
        if not path.is_file():
            raise DatasetError(f"{where}: image not found: {path}. Extract the BSTLD archives again or fix data.root.")
        height, width = read_image_size(path)
        boxes = _parse_boxes(entry["boxes"], where, key, height, width, label_map, min_box_side, report)
        frames.append(Frame(key, path, sequence_of(key), tuple(boxes), height, width))

    logger.info("%s: %d images, %d boxes", yaml_path, len(frames), sum(len(frame.boxes) for frame in frames))
    return frames, report


def _same_file_contents(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    return first.read_bytes() == second.read_bytes()


def drop_cross_split(train: list[Frame], additional: list[Frame], report: RepairReport) -> list[Frame]:
    """Return the additional frames whose image is not already in train, counting the others.

    An additional frame is the same image as a train frame when its key is
    the same, or when it has the same sequence and file name and identical
    file bytes (a copy under rgb/additional/). Same name with other bytes
    is a different image and is kept.
    """
    train_keys = {frame.key for frame in train}
    train_by_name = {(frame.sequence, PurePosixPath(frame.key).name): frame for frame in train if frame.sequence}
    kept = []
    for frame in additional:
        twin = train_by_name.get((frame.sequence, PurePosixPath(frame.key).name)) if frame.sequence else None
        if frame.key in train_keys or (twin is not None and _same_file_contents(twin.path, frame.path)):
            report.add("cross_split", frame.key)
        else:
            kept.append(frame)
    return kept


def count_repeated_basenames(frames_by_file: dict[str, list[Frame]], reports: dict[str, RepairReport]) -> None:
    """Count, in each file's report, the frames whose file name also names an image in another folder."""
    keys_by_name: dict[str, set[str]] = defaultdict(set)
    for frames in frames_by_file.values():
        for frame in frames:
            keys_by_name[PurePosixPath(frame.key).name].add(frame.key)
    for source, frames in frames_by_file.items():
        for frame in frames:
            if len(keys_by_name[PurePosixPath(frame.key).name]) > 1:
                reports[source].add("repeated_basename", frame.key)


def split_validation(frames: list[Frame], val_sequences: int) -> tuple[list[Frame], list[Frame]]:
    """Hold out the first `val_sequences` sequences, sorted by name, as validation.

    Returns (train, val). Frames without a sequence stay in train.
    """
    if val_sequences <= 0:
        return list(frames), []
    sequences = sorted({frame.sequence for frame in frames if frame.sequence is not None})
    if val_sequences >= len(sequences):
        raise DatasetError(
            f"prepare.val_sequences is {val_sequences} but the training images come from only {len(sequences)} "
            f"sequence(s) ({', '.join(sequences) or 'none'}), which would leave no training data. "
            f"Set prepare.val_sequences below {len(sequences)}, or 0 for no validation split."
        )
    held_out = set(sequences[:val_sequences])
    logger.info("validation sequences: %s", ", ".join(sorted(held_out)))
    train = [frame for frame in frames if frame.sequence not in held_out]
    val = [frame for frame in frames if frame.sequence in held_out]
    return train, val


def load_splits(
    root: Path | str,
    label_map: str = "4class",
    min_box_side: float = 1.0,
    val_sequences: int = 3,
    use_additional: bool = True,
) -> BstldSplits:
    """Parse a BSTLD root into train, val and test frames with repair reports.

    Validation holds out the first `val_sequences` sequences of train.yaml.
    With `use_additional`, the additional images join the training split
    after the images already listed in train.yaml are dropped. Reports
    are keyed by annotation file name.
    """
    root = Path(root)
    names = class_names(label_map)
    parts = ["train", "test"] + (["additional"] if use_additional else [])

    frames_by_file: dict[str, list[Frame]] = {}
    reports: dict[str, RepairReport] = {}
    for part in parts:
        file_name = ANNOTATION_FILES[part]
        frames, report = parse_annotations(root / file_name, IMAGE_FOLDERS[part], label_map, min_box_side)
        frames_by_file[file_name] = frames
        reports[file_name] = report

    additional_name = ANNOTATION_FILES["additional"]
    if use_additional:
        frames_by_file[additional_name] = drop_cross_split(
            frames_by_file[ANNOTATION_FILES["train"]], frames_by_file[additional_name], reports[additional_name]
        )
    count_repeated_basenames(frames_by_file, reports)
    for file_name, report in reports.items():
        report.log(file_name)

    train, val = split_validation(frames_by_file[ANNOTATION_FILES["train"]], val_sequences)
    train += frames_by_file.get(additional_name, [])
    splits = {"train": train, "val": val, "test": frames_by_file[ANNOTATION_FILES["test"]]}
    for split, frames in splits.items():
        logger.info("split %s: %d images, %d boxes", split, len(frames), sum(len(frame.boxes) for frame in frames))
    return BstldSplits(splits, reports, names)
