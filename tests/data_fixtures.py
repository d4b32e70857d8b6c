"""Build small BSTLD-format datasets, zip archives and split volumes for the data tests.

Images are 36 x 64 px (height x width) noise PNGs. The pixels depend only
on the sequence folder and the file name, so `rgb/additional/seq_c/12.png`
has the same bytes as `rgb/train/seq_c/12.png`, as a copied frame would.
YAML files are written in the layout of the released files, with labels
unquoted, so a YAML 1.1 loader reads `off` as boolean false.
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np
from PIL import Image

IMAGE_HEIGHT = 36
IMAGE_WIDTH = 64
NETWORK_SHARE = "/net/pal-soc1.us.bosch.com/ifs/data/Shared_Exports/deep_learning_data/traffic_lights/university_run1"
# Folder under rgb/ that absolute paths of each annotation file point to.
IMAGE_FOLDERS = {"train.yaml": "train", "test.yaml": "test", "additional_train.yaml": "additional"}


def box(label: Any, x_min: float, y_min: float, x_max: float, y_max: float, occluded: bool = False) -> dict[str, Any]:
    """Return one BSTLD box entry, in pixels with the origin at the top left."""
    return {"label": label, "occluded": occluded, "x_max": x_max, "x_min": x_min, "y_max": y_max, "y_min": y_min}


def entry(path: str, *boxes: dict[str, Any]) -> dict[str, Any]:
    return {"boxes": list(boxes), "path": path}


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_yaml(entries: Iterable[dict[str, Any]]) -> str:
    """Format entries as the released files do: block list, boxes as flow mappings, labels bare."""
    lines = []
    for item in entries:
        if "boxes" in item:
            if item["boxes"]:
                lines.append("- boxes:")
                for raw in item["boxes"]:
                    fields = ", ".join(f"{key}: {_format_value(value)}" for key, value in raw.items())
                    lines.append(f"  - {{{fields}}}")
            else:
                lines.append("- boxes: []")
            if "path" in item:
                lines.append(f"  path: {item['path']}")
        else:
            lines.append(f"- path: {item['path']}")
    return "\n".join(lines) + "\n" if lines else "[]\n"


def image_file(path: str, folder: str) -> str:
    """Return where the fixture writes the PNG that an annotation path names."""
    if path.startswith("/"):
        return f"rgb/{folder}/{PurePosixPath(path).name}"
    return str(PurePosixPath(path))


def write_png(path: Path, name: str, height: int = IMAGE_HEIGHT, width: int = IMAGE_WIDTH) -> Path:
    """Write a noise PNG whose pixels are seeded by `name`."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def write_dataset(
    root: Path,
    annotations: dict[str, list[dict[str, Any]]],
    missing_images: Iterable[str] = (),
    height: int = IMAGE_HEIGHT,
    width: int = IMAGE_WIDTH,
) -> Path:
    """Write annotation files (file name -> entries) and one PNG per listed image under `root`.

    Paths in `missing_images` (as written in the YAML) get no PNG.
    """
    skipped = set(missing_images)
    for file_name, entries in annotations.items():
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        (root / file_name).write_text(format_yaml(entries), encoding="utf-8")
        for item in entries:
            if "path" not in item or item["path"] in skipped:
                continue
            relative = image_file(item["path"], IMAGE_FOLDERS.get(file_name, "train"))
            parts = PurePosixPath(relative).parts
            seed_name = "/".join(parts[2:]) if len(parts) > 2 else relative
            write_png(root / relative, seed_name, height, width)
    return root


def default_annotations() -> dict[str, list[dict[str, Any]]]:
    """A dataset with every quirk of the released files once or twice.

    train.yaml, 5 frames in sequences seq_a, seq_b, seq_c:
      seq_a/10: `off` unquoted (occluded) and RedLeft.
      seq_b/10: Green from x = -2.45, clipped to 0 (out_of_bounds); the
                basename 10.png repeats seq_a/10 (repeated_basename x 2).
      seq_b/11: no boxes.
      seq_c/12: Yellow with both pairs reversed, then an exact copy of that
                Yellow (reversed x 1, duplicate x 1).
      seq_c/13: GreenStraightLeft with y from -3 to 0.5, clipped to a
                0.5 px high box and dropped (out_of_bounds, degenerate), and Red.
    test.yaml: one network-share path (24068.png) with Red, one empty frame.
    additional_train.yaml: seq_d/500 with Green, the train frame seq_b/10
    under its train path, and a copy of seq_c/12 under rgb/additional/
    (cross_split x 2).
    """
    yellow_reversed = box("Yellow", 44.0, 14.0, 40.0, 6.0)
    return {
        "train.yaml": [
            entry("./rgb/train/seq_a/10.png", box("off", 20.0, 2.0, 23.0, 10.0, occluded=True), box("RedLeft", 30.0, 4.0, 34.0, 12.0)),
            entry("./rgb/train/seq_b/10.png", box("Green", -2.45, 5.0, 4.0, 15.0)),
            entry("./rgb/train/seq_b/11.png"),
            entry("./rgb/train/seq_c/12.png", yellow_reversed, dict(yellow_reversed)),
            entry("./rgb/train/seq_c/13.png", box("GreenStraightLeft", 8.0, -3.0, 12.0, 0.5), box("Red", 50.0, 20.0, 54.0, 30.0)),
        ],
        "test.yaml": [
            entry(f"{NETWORK_SHARE}/24068.png", box("Red", 12.0, 8.0, 16.0, 18.0)),
            entry("./rgb/test/24070.png"),
        ],
        "additional_train.yaml": [
            entry("./rgb/additional/seq_d/500.png", box("Green", 1.0, 1.0, 5.0, 11.0)),
            entry("./rgb/train/seq_b/10.png", box("Green", -2.45, 5.0, 4.0, 15.0)),
            entry("./rgb/additional/seq_c/12.png", box("Yellow", 40.0, 6.0, 44.0, 14.0)),
        ],
    }


def write_default_dataset(root: Path) -> Path:
    return write_dataset(root, default_annotations())


def zip_paths(zip_path: Path, root: Path, relative_paths: Iterable[str]) -> Path:
    """Zip files and folders under `root` into `zip_path`, keeping their relative paths."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in relative_paths:
            source = root / relative
            files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
            for path in files:
                archive.write(path, path.relative_to(root).as_posix())
    return zip_path


def split_volumes(path: Path, count: int) -> list[Path]:
    """Cut a file into `count` byte volumes `<name>.001` ... and delete the original."""
    data = path.read_bytes()
    step = -(-len(data) // count)
    volumes = []
    for index in range(count):
        volume = path.with_name(f"{path.name}.{index + 1:03d}")
        volume.write_bytes(data[index * step : (index + 1) * step])
        volumes.append(volume)
    path.unlink()
    return volumes


def write_bstld_archives(source_root: Path, archives_dir: Path) -> dict[str, list[Path]]:
    """Pack a dataset root as BSTLD ships it: train in 3 volumes, test in 2, additional whole."""
    train = zip_paths(archives_dir / "dataset_train_rgb.zip", source_root, ["train.yaml", "rgb/train"])
    test = zip_paths(archives_dir / "dataset_test_rgb.zip", source_root, ["test.yaml", "rgb/test"])
    additional = zip_paths(archives_dir / "dataset_additional_rgb.zip", source_root, ["additional_train.yaml", "rgb/additional"])
    return {
        "dataset_train_rgb.zip": split_volumes(train, 3),
        "dataset_test_rgb.zip": split_volumes(test, 2),
        "dataset_additional_rgb.zip": [additional],
    }


def make_zip(zip_path: Path, members: dict[str, bytes]) -> Path:
    """Write a zip whose entries are named exactly as given, unsafe names included."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return zip_path


def leftovers(folder: Path) -> list[str]:
    """Return the names of hidden temporary entries left in `folder` (atomic writes use dot-names)."""
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
