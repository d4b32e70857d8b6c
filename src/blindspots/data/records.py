"""Write the prepared TFRecord shards and read them back as a `tf.data.Dataset`.

Each record is one image, resized once to `prepare.image_size` and stored
as PNG, with its boxes normalised to [0, 1] as `[ymin, xmin, ymax, xmax]`
relative to the original image. Resizing does not keep the aspect ratio,
and normalised boxes stay correct because both axes scale independently.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Iterable, Sequence

import tensorflow as tf
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from blindspots.data.bstld import DatasetError, Frame

logger = logging.getLogger(__name__)

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/key": tf.io.FixedLenFeature([], tf.string),
    "image/original_height": tf.io.FixedLenFeature([], tf.int64),
    "image/original_width": tf.io.FixedLenFeature([], tf.int64),
    "boxes/ymin": tf.io.VarLenFeature(tf.float32),
    "boxes/xmin": tf.io.VarLenFeature(tf.float32),
    "boxes/ymax": tf.io.VarLenFeature(tf.float32),
    "boxes/xmax": tf.io.VarLenFeature(tf.float32),
    "boxes/class": tf.io.VarLenFeature(tf.int64),
    "boxes/occluded": tf.io.VarLenFeature(tf.int64),
}
# Modes that convert to 8-bit RGB without losing meaning. BSTLD's rgb/
# images are 8-bit RGB, and 16-bit or float images would need rescaling.
CONVERTIBLE_MODES = ("RGB", "RGBA", "L", "LA", "P")
# zlib level 1 encoded a 192 x 320 synthetic frame in 27 ms against 73 ms at
# Pillow's default level 6, for files 12% larger (mean of 30 frames,
# Pillow 11.3, one core of a 2-core x86 VM).
PNG_COMPRESS_LEVEL = 1


def shard_paths(out_dir: Path | str, split: str, num_shards: int) -> list[Path]:
    """Return `<split>-00000-of-0000N.tfrecord` paths for `num_shards` shards."""
    return [Path(out_dir) / f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord" for index in range(num_shards)]


def encode_image(path: Path, image_size: Sequence[int]) -> bytes:
    """Decode an image, resize it to `image_size` (H, W) and return it as PNG bytes.

    When downscaling, Pillow's bilinear filter widens by the scale factor
    (checked with Pillow 11.3), so every source pixel contributes and a
    light a few pixels wide fades instead of falling between samples.
    Raises DatasetError naming a corrupt file.
    """
    height, width = int(image_size[0]), int(image_size[1])
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            rgb = image.convert("RGB") if mode in CONVERTIBLE_MODES else None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"image {path} is corrupt or truncated: {error}. Extract the BSTLD archives again.") from error
    if rgb is None:
        raise DatasetError(
            f"image {path} has mode {mode}, but 8-bit RGB is expected (modes {', '.join(CONVERTIBLE_MODES)}). "
            "Convert the image or extract the BSTLD archives again."
        )

    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _float_feature(values: Iterable[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _int_feature(values: Iterable[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def frame_example(frame: Frame, encoded_png: bytes) -> tf.train.Example:
    """Build the `tf.train.Example` of one frame, with boxes normalised by the original image size."""
    boxes = frame.boxes
    feature = {
        "image/encoded": _bytes_feature(encoded_png),
        "image/key": _bytes_feature(frame.key.encode("utf-8")),
        "image/original_height": _int_feature([frame.height]),
        "image/original_width": _int_feature([frame.width]),
        "boxes/ymin": _float_feature(box.ymin / frame.height for box in boxes),
        "boxes/xmin": _float_feature(box.xmin / frame.width for box in boxes),
        "boxes/ymax": _float_feature(box.ymax / frame.height for box in boxes),
        "boxes/xmax": _float_feature(box.xmax / frame.width for box in boxes),
        "boxes/class": _int_feature(box.class_id for box in boxes),
        "boxes/occluded": _int_feature(int(box.occluded) for box in boxes),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_split(frames: Sequence[Frame], out_dir: Path | str, split: str, num_shards: int, image_size: Sequence[int]) -> list[Path]:
    """Write a split's frames round-robin into TFRecord shards and return their paths.

    The shard count is `num_shards`, lowered to the number of frames so no
    shard is empty. An empty split still gets one empty shard, so every
    split has a file for readers to find. Reading the shards with
    `read_dataset` returns the frames in their original order.
    """
    count = max(1, min(int(num_shards), len(frames)))
    paths = shard_paths(out_dir, split, count)
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(tf.io.TFRecordWriter(str(path))) for path in paths]
        progress = stack.enter_context(tqdm(frames, desc=f"write {split}", unit="image", disable=None))
        for index, frame in enumerate(progress):
            encoded = encode_image(frame.path, image_size)
            writers[index % count].write(frame_example(frame, encoded).SerializeToString())
    logger.info("wrote %d images of split %s into %d shard(s)", len(frames), split, count)
    return paths


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one serialized record into image, boxes, classes, occluded, original_size and key.

    Shapes and types:
      image          uint8 [H, W, 3]
      boxes          float32 [N, 4], normalised `[ymin, xmin, ymax, xmax]`
      classes        int32 [N], 0-based class ids
      occluded       bool [N]
      original_size  int32 [2], (H, W) of the source image
      key            string [], the image path relative to the dataset root
    """
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    dense = {name: tf.sparse.to_dense(parsed[name]) for name in FEATURES if name.startswith("boxes/")}
    boxes = tf.stack([dense["boxes/ymin"], dense["boxes/xmin"], dense["boxes/ymax"], dense["boxes/xmax"]], axis=-1)
    return {
        "image": tf.io.decode_png(parsed["image/encoded"], channels=3, dtype=tf.uint8),
        "boxes": tf.reshape(boxes, [-1, 4]),
        "classes": tf.cast(dense["boxes/class"], tf.int32),
        "occluded": tf.cast(dense["boxes/occluded"], tf.bool),
        "original_size": tf.cast(
            tf.stack([parsed["image/original_height"], parsed["image/original_width"]]), tf.int32
        ),
        "key": parsed["image/key"],
    }


def read_dataset(
    pattern: Path | str, shuffle_files: bool = False, seed: int | None = None, image_size: Sequence[int] | None = None
) -> tf.data.Dataset:
    """Read prepared shards matching a glob `pattern`, e.g. "data/prepared/train-*.tfrecord".

    Without `shuffle_files` the records come back in the order they were
    written, because the shards are read round-robin, one record each,
    just as `write_split` wrote them. With it, the shard order changes
    on every pass. `image_size` (H, W), if given, sets
    the static image shape. Raises FileNotFoundError when nothing matches.
    """
    files = sorted(tf.io.gfile.glob(str(pattern)))
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {pattern}. Run `blindspots prepare` first.")
    filenames = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        filenames = filenames.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = tf.data.TFRecordDataset(filenames, num_parallel_reads=len(files) if len(files) > 1 else None)
    dataset = dataset.map(parse_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if image_size is not None:
        shape = [int(image_size[0]), int(image_size[1]), 3]
        dataset = dataset.map(lambda example: {**example, "image": tf.ensure_shape(example["image"], shape)})
    return dataset
