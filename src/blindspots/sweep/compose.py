"""Light crops, background frames, and pasting a crop into a frame in TensorFlow.

A sweep pastes small traffic-light crops into frames that contain no light.
Each crop keeps a few pixels of its original surroundings and is blended in
with a feathered alpha mask, so the composite has no hard seam. Compositing
runs on whole batches of placements in one graph (`composite`), so that it
can share a `tf.function` with the detector.

Pixel values are float32 in 0-255. Light boxes inside a crop are
`[ymin, xmin, ymax, xmax]` in crop pixels, with ymax and xmax exclusive
(a box covering rows 3..8 is ymin 3, ymax 9).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

# Width in pixels of the blended band along each crop edge.
FEATHER_WIDTH = 2
# Pixels of original surroundings kept on each side of a light. One more
# than the feathered band, so the light's own pixels are never blended.
CONTEXT_MARGIN = FEATHER_WIDTH + 1
# Box edges within this many pixels of a whole pixel count as on it.
PIXEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LightCrop:
    """One traffic light cut from a prepared frame, with its surroundings.

    `pixels` is [h, w, 3] float32 (0-255). `light_box` is the light's
    `[ymin, xmin, ymax, xmax]` in crop pixels.
    """

    crop_id: str
    class_id: int
    pixels: np.ndarray
    light_box: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


@dataclass(frozen=True)
class CropBank:
    """All crops of a sweep, zero-padded to a common size.

    `pixels` [C, Hmax, Wmax, 3] and `masks` [C, Hmax, Wmax] (alpha, 0 outside
    a crop's own h x w), `sizes` [C, 2] (h, w), `light_boxes` [C, 4] in crop
    pixels, `classes` [C] int32 0-based, `ids` one string per crop.
    """

    pixels: np.ndarray
    masks: np.ndarray
    sizes: np.ndarray
    light_boxes: np.ndarray
    classes: np.ndarray
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class BackgroundBank:
    """Frames without lights at the model input size: `images` [N, H, W, 3] float32 (0-255)."""

    images: np.ndarray
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def feather_profile(length: int, feather: int = FEATHER_WIDTH) -> np.ndarray:
    """Return the 1-D alpha ramp of a crop side of `length` pixels.

    A pixel at distance d from the nearer edge (d = 0 on the edge) gets the
    raised cosine 0.5 - 0.5 * cos(pi * (d + 1) / (feather + 1)) when
    d < feather, and 1 beyond. For feather = 2 the ramp is 0.25, 0.75, 1, ...
    """
    if length < 1:
        raise ValueError(f"crop side must be at least 1 pixel, got {length}")
    distance = np.minimum(np.arange(length), np.arange(length)[::-1])
    ramp = 0.5 - 0.5 * np.cos(np.pi * (distance + 1) / (feather + 1))
    return np.where(distance < feather, ramp, 1.0).astype(np.float32)


def feather_mask(height: int, width: int, feather: int = FEATHER_WIDTH) -> np.ndarray:
    """Return the separable alpha mask [height, width] of a crop (outer product of two ramps)."""
    return np.outer(feather_profile(height, feather), feather_profile(width, feather)).astype(np.float32)


def extract_crop(
    image: np.ndarray,
    box: np.ndarray,
    crop_id: str,
    class_id: int,
    margin: int = CONTEXT_MARGIN,
) -> LightCrop:
    """Cut the light at `box` out of `image` with `margin` pixels of surroundings.

    `image` is [H, W, 3] and `box` is `[ymin, xmin, ymax, xmax]` normalised to
    [0, 1]. The crop spans floor(ymin * H) - margin to ceil(ymax * H) + margin
    (likewise for x), clipped to the image, so a light at the border keeps
    less surroundings on that side.
    """
    height, width = image.shape[:2]
    box_px = np.asarray(box, dtype=np.float64) * np.array([height, width, height, width])
    # Normalised float32 boxes carry about 1e-5 px of rounding noise, which
    # must not widen the crop by a whole pixel (0.3 * 60 = 18.0000007).
    top = max(math.floor(box_px[0] + PIXEL_TOLERANCE) - margin, 0)
    left = max(math.floor(box_px[1] + PIXEL_TOLERANCE) - margin, 0)
    bottom = min(math.ceil(box_px[2] - PIXEL_TOLERANCE) + margin, height)
    right = min(math.ceil(box_px[3] - PIXEL_TOLERANCE) + margin, width)
    if bottom <= top or right <= left:
        raise ValueError(f"crop {crop_id}: box {list(box)} is empty inside a {height}x{width} image")
    pixels = np.asarray(image[top:bottom, left:right], dtype=np.float32)
    light_box = (box_px - np.array([top, left, top, left])).astype(np.float32)
    return LightCrop(crop_id=crop_id, class_id=int(class_id), pixels=pixels, light_box=light_box)


def rescale_crop(crop: LightCrop, scale: tuple[float, float]) -> LightCrop:
    """Resize a crop by (scale_y, scale_x), rounded to whole pixels.

    A crop whose rounded size is unchanged keeps its exact pixels, which is
    the usual case when the model input differs from the prepared frames by
    a pixel (193 x 321 against 192 x 320). Otherwise the pixels are resized
    bilinearly with antialiasing and the light box scales with the size.
    """
    height, width = crop.size
    new_height = max(1, round(height * scale[0]))
    new_width = max(1, round(width * scale[1]))
    if (new_height, new_width) == (height, width):
        return crop
    pixels = tf.image.resize(crop.pixels, (new_height, new_width), method="bilinear", antialias=True).numpy()
    factors = np.array([new_height / height, new_width / width] * 2, dtype=np.float32)
    return LightCrop(crop.crop_id, crop.class_id, pixels.astype(np.float32), crop.light_box * factors)


def build_crop_bank(crops: Sequence[LightCrop], feather: int = FEATHER_WIDTH) -> CropBank:
    """Stack crops of different sizes into one zero-padded bank with their alpha masks."""
    if not crops:
        raise ValueError("no light crops to sweep: the crop list is empty")
    max_height = max(crop.size[0] for crop in crops)
    max_width = max(crop.size[1] for crop in crops)
    pixels = np.zeros((len(crops), max_height, max_width, 3), np.float32)
    masks = np.zeros((len(crops), max_height, max_width), np.float32)
    for index, crop in enumerate(crops):
        height, width = crop.size
        pixels[index, :height, :width] = crop.pixels
        masks[index, :height, :width] = feather_mask(height, width, feather)
    return CropBank(
        pixels=pixels,
        masks=masks,
        sizes=np.array([crop.size for crop in crops], np.int32),
        light_boxes=np.stack([crop.light_box for crop in crops]).astype(np.float32),
        classes=np.array([crop.class_id for crop in crops], np.int32),
        ids=tuple(crop.crop_id for crop in crops),
    )


def crop_rgba(bank: CropBank) -> tf.Tensor:
    """Return the bank as one RGBA tensor [C, Hmax, Wmax, 4] for `composite`, with the feather mask as alpha."""
    rgba = np.concatenate([bank.pixels, bank.masks[..., None]], axis=-1)
    return tf.constant(rgba, tf.float32)


def composite(
    backgrounds: tf.Tensor,
    crops_rgba: tf.Tensor,
    background_index: tf.Tensor,
    crop_index: tf.Tensor,
    y: tf.Tensor,
    x: tf.Tensor,
) -> tf.Tensor:
    """Paste one crop into one background per batch element, alpha-blended.

    backgrounds: [N, H, W, 3] float32. crops_rgba: [C, Hc, Wc, 4] from
    `crop_rgba`. background_index, crop_index, y, x: [B] int32, where (y, x)
    is the crop's top-left pixel in the frame. Returns [B, H, W, 3] float32,
    background + alpha * (crop - background), which is the usual
    background * (1 - alpha) + crop * alpha up to float32 rounding.

    Only the Hc x Wc patch under each crop is read and written: one
    gather_nd reads the patches and one scatter-add writes the blended
    change back, for the whole batch at once. Crop pixels that fall outside
    the frame get alpha 0 and change nothing.
    """
    frames = tf.gather(backgrounds, background_index)
    layers = tf.gather(crops_rgba, crop_index)
    batch = tf.shape(frames)[0]
    height = tf.shape(frames)[1]
    width = tf.shape(frames)[2]
    crop_height = tf.shape(layers)[1]
    crop_width = tf.shape(layers)[2]

    rows = tf.cast(y, tf.int32)[:, tf.newaxis] + tf.range(crop_height)[tf.newaxis, :]
    cols = tf.cast(x, tf.int32)[:, tf.newaxis] + tf.range(crop_width)[tf.newaxis, :]
    inside = (rows < height)[:, :, tf.newaxis] & (cols < width)[:, tf.newaxis, :]
    inside &= (rows >= 0)[:, :, tf.newaxis] & (cols >= 0)[:, tf.newaxis, :]
    shape = [batch, crop_height, crop_width]
    indices = tf.stack(
        [
            tf.broadcast_to(tf.range(batch)[:, tf.newaxis, tf.newaxis], shape),
            tf.broadcast_to(tf.clip_by_value(rows, 0, height - 1)[:, :, tf.newaxis], shape),
            tf.broadcast_to(tf.clip_by_value(cols, 0, width - 1)[:, tf.newaxis, :], shape),
        ],
        axis=-1,
    )

    # Clipped indices of outside pixels may repeat a real pixel's index, so
    # the update is an add of an exact zero there, never an overwrite.
    alpha = tf.where(inside[..., tf.newaxis], layers[..., 3:], 0.0)
    patches = tf.gather_nd(frames, indices)
    change = alpha * (layers[..., :3] - patches)
    return tf.tensor_scatter_nd_add(frames, indices, change)


# ---------------------------------------------------------------------------
# Choosing crops and backgrounds from prepared examples
# ---------------------------------------------------------------------------


class _Reservoir:
    """Uniform sample of `size` items from a stream of unknown length (Algorithm R).

    Deterministic given the generator and the order of the stream. `items`
    returns the kept items in stream order.
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.seen = 0
        self._kept: list[tuple[int, Any]] = []

    def offer(self, item: Any) -> None:
        if len(self._kept) < self.size:
            self._kept.append((self.seen, item))
        else:
            slot = int(self.rng.integers(0, self.seen + 1))
            if slot < self.size:
                self._kept[slot] = (self.seen, item)
        self.seen += 1

    def items(self) -> list[Any]:
        return [item for _, item in sorted(self._kept, key=lambda pair: pair[0])]


def _as_numpy(example: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one example of `read_dataset` (tensors or arrays) to numpy and str."""
    converted = {}
    for name, value in example.items():
        value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        if name == "key":
            value = value.item() if isinstance(value, np.ndarray) else value
            value = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        converted[name] = value
    return converted


def select_light_crops(
    examples: Iterable[Mapping[str, Any]],
    per_class: int,
    seed: int,
    num_classes: int,
    input_size: tuple[int, int] | None = None,
    margin: int = CONTEXT_MARGIN,
) -> list[LightCrop]:
    """Sample up to `per_class` unoccluded light crops of each class.

    `examples` are prepared examples (`image` uint8 [H, W, 3], `boxes`
    [N, 4] normalised `[ymin, xmin, ymax, xmax]`, `classes` [N] 0-based,
    `occluded` [N], `key`). Each class samples uniformly with its own
    generator seeded by (seed, class id), so the choice is fixed by `seed`
    and the order of the examples. Crop ids are `<key>#<box index>`.
    With `input_size` (H, W), each crop is rescaled by input_size / its
    frame's size (`rescale_crop`), so a light keeps its share of the frame.
    Returns crops ordered by class, then by stream order.
    """
    reservoirs = [_Reservoir(per_class, np.random.default_rng([seed, class_id])) for class_id in range(num_classes)]
    for raw in examples:
        example = _as_numpy(raw)
        for index, (box, class_id, occluded) in enumerate(zip(example["boxes"], example["classes"], example["occluded"])):
            if occluded:
                continue
            if not 0 <= int(class_id) < num_classes:
                raise ValueError(
                    f"example {example['key']}: class id {int(class_id)} is outside 0..{num_classes - 1}, so the "
                    "prepared data and the model's class names disagree. Prepare the data and train with the same label map."
                )
            crop = extract_crop(example["image"], box, f"{example['key']}#{index}", int(class_id), margin)
            if input_size is not None:
                frame_height, frame_width = example["image"].shape[:2]
                crop = rescale_crop(crop, (input_size[0] / frame_height, input_size[1] / frame_width))
            reservoirs[int(class_id)].offer(crop)

    crops: list[LightCrop] = []
    for class_id, reservoir in enumerate(reservoirs):
        chosen = reservoir.items()
        if len(chosen) < per_class:
            logger.warning(
                "class %d: %d unoccluded lights found, fewer than sweep.crops_per_class = %d", class_id, len(chosen), per_class
            )
        crops.extend(chosen)
    return crops


def select_backgrounds(
    streams: Sequence[Iterable[Mapping[str, Any]]],
    count: int,
    seed: int,
    input_size: tuple[int, int],
) -> BackgroundBank:
    """Sample `count` frames with no boxes, resized to `input_size` (H, W).

    `streams` are read in order (test first, then val and train): a later
    stream is read only when the earlier ones hold fewer than `count` empty
    frames. Each stream samples uniformly with a generator seeded by
    (seed, stream position). Raises ValueError when no stream has an empty
    frame.
    """
    images: list[np.ndarray] = []
    ids: list[str] = []
    for position, stream in enumerate(streams):
        needed = count - len(ids)
        if needed <= 0:
            break
        reservoir = _Reservoir(needed, np.random.default_rng([seed, position]))
        for raw in stream:
            if len(raw["boxes"]) == 0:
                example = _as_numpy(raw)
                reservoir.offer((example["key"], example["image"]))
        for key, image in reservoir.items():
            ids.append(key)
            images.append(_resize_frame(image, input_size))

    if not ids:
        raise ValueError(
            "no frame without lights found for the sweep backgrounds in the test, val or train split. "
            "Prepare a dataset that has empty frames (BSTLD has them in every split)."
        )
    if len(ids) < count:
        logger.warning("only %d frames without lights found, fewer than sweep.backgrounds = %d", len(ids), count)
    return BackgroundBank(images=np.stack(images), ids=tuple(ids))


def _resize_frame(image: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    frame = np.asarray(image, np.float32)
    if tuple(frame.shape[:2]) == tuple(input_size):
        return frame
    return tf.image.resize(frame, input_size, method="bilinear", antialias=True).numpy()
