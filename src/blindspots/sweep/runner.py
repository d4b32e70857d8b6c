"""Run a shift sweep: paste, detect and match every placement in batches.

The detector is a callable `detector(images)`. It takes float32
[B, H, W, 3] (0-255) at the model input size and returns a dict of
`boxes` [B, K, 4] (normalised `[ymin, xmin, ymax, xmax]`), `scores`
[B, K], `classes` [B, K] (0-based) and `num_detections` [B]. The outputs
are padded to K detections.

Compositing, detection and matching run in one `tf.function` per batch,
so only four index vectors and the placed boxes cross from Python into
the graph, and only three vectors come back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from blindspots import runinfo
from blindspots.config.schema import SweepConfig
from blindspots.sweep import metrics, placements
from blindspots.sweep.compose import BackgroundBank, CropBank, composite, crop_rgba

logger = logging.getLogger(__name__)

# Columns of placements.parquet, in order.
RECORD_COLUMNS = (
    "variant",
    "seed",
    "mode",
    "background_id",
    "crop_id",
    "class_id",
    "crop_height",
    "crop_width",
    "y",
    "x",
    "placed_ymin",
    "placed_xmin",
    "placed_ymax",
    "placed_xmax",
    "row",
    "column",
    "best_iou",
    "score",
    "matched_class",
    "detected",
    "class_correct",
)


def box_iou(boxes: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """Return the IoU of each box with each of its candidates.

    boxes: [B, 4] and candidates: [B, K, 4], both `[ymin, xmin, ymax, xmax]`
    in the same frame (normalised or pixels). Returns [B, K]. A pair with zero
    union (two empty boxes) gets 0.
    """
    boxes = boxes[:, tf.newaxis, :]
    top = tf.maximum(boxes[..., 0], candidates[..., 0])
    left = tf.maximum(boxes[..., 1], candidates[..., 1])
    bottom = tf.minimum(boxes[..., 2], candidates[..., 2])
    right = tf.minimum(boxes[..., 3], candidates[..., 3])
    intersection = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    candidate_area = (candidates[..., 2] - candidates[..., 0]) * (candidates[..., 3] - candidates[..., 1])
    return tf.math.divide_no_nan(intersection, area + candidate_area - intersection)


def match_detections(
    placed: tf.Tensor,
    boxes: tf.Tensor,
    scores: tf.Tensor,
    classes: tf.Tensor,
    num_detections: tf.Tensor,
    iou_threshold: float,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Match each placed light to one detection.

    placed: [B, 4] and boxes: [B, K, 4], normalised `[ymin, xmin, ymax,
    xmax]`. scores and classes: [B, K]. num_detections: [B], and only the
    first num_detections slots count. The match is the highest-scoring
    detection with IoU >= iou_threshold, or the detection of maximum IoU
    when none reaches it. Ties go to the earlier slot.

    The best score among the overlapping detections is taken because NMS
    runs per class. A light often gets a confident box of its own class and
    a low-score box of another class at almost the same place, and the
    low-score box may have the slightly higher IoU. With this rule a light
    counts as detected exactly when some detection reaches both thresholds.

    Returns (best_iou, score, matched_class), each [B]. best_iou is the
    maximum IoU over all detections. score and matched_class belong to the
    match, and are 0 and -1 when no detection overlaps the light.
    """
    iou = box_iou(tf.cast(placed, tf.float32), tf.cast(boxes, tf.float32))
    slots = tf.range(tf.shape(iou)[1])[tf.newaxis, :]
    valid = slots < tf.cast(num_detections, tf.int32)[:, tf.newaxis]
    iou = tf.where(valid, iou, tf.zeros_like(iou))
    scores = tf.cast(scores, tf.float32)

    best_iou = tf.reduce_max(iou, axis=1)
    overlapping = valid & (iou >= iou_threshold)
    best_overlapping = tf.argmax(tf.where(overlapping, scores, -1.0), axis=1, output_type=tf.int32)
    max_iou_slot = tf.argmax(iou, axis=1, output_type=tf.int32)
    match = tf.where(tf.reduce_any(overlapping, axis=1), best_overlapping, max_iou_slot)

    matched = tf.gather(iou, match, axis=1, batch_dims=1) > 0.0
    score = tf.gather(scores, match, axis=1, batch_dims=1)
    matched_class = tf.gather(tf.cast(classes, tf.int32), match, axis=1, batch_dims=1)
    return best_iou, tf.where(matched, score, 0.0), tf.where(matched, matched_class, -1)


def make_sweep_step(
    detector: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
    backgrounds: BackgroundBank,
    crops: CropBank,
    iou_threshold: float,
) -> Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """Build the compiled step: composite a batch, detect, match.

    The returned function takes background_index, crop_index, y, x [B]
    int32 and placed [B, 4] float32 (normalised boxes) and returns
    `match_detections`' three [B] tensors. The frames and crops become
    constants of the graph, so a batch transfers only the indices.
    """
    frames = tf.constant(backgrounds.images, tf.float32)
    rgba = crop_rgba(crops)

    @tf.function
    def step(background_index, crop_index, y, x, placed):
        images = composite(frames, rgba, background_index, crop_index, y, x)
        outputs = detector(images)
        return match_detections(
            placed,
            outputs["boxes"],
            outputs["scores"],
            outputs["classes"],
            outputs["num_detections"],
            iou_threshold,
        )

    return step


def _pad_to_batches(array: np.ndarray, batch_size: int) -> np.ndarray:
    """Repeat the last element so the length is a multiple of batch_size.

    Every call then has the same shape and the step is traced only once.
    """
    remainder = len(array) % batch_size
    if remainder == 0:
        return array
    filler = np.repeat(array[-1:], batch_size - remainder, axis=0)
    return np.concatenate([array, filler])


def detect_placements(
    step: Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]],
    inputs: Sequence[np.ndarray],
    batch_size: int,
    progress: bool = False,
    description: str = "sweep",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run `step` over placement arrays in batches and return (best_iou, score, matched_class).

    `inputs` are background_index, crop_index, y, x [N] and placed [N, 4].
    Each batch's results are read back only after the next batch is
    queued. On a GPU, where TensorFlow runs kernels asynchronously, the
    device then computes one batch while the host copies the previous one.
    """
    count = len(inputs[0])
    padded = [_pad_to_batches(np.asarray(array), batch_size) for array in inputs]
    batches = len(padded[0]) // batch_size
    results: list[tuple[np.ndarray, ...]] = []
    pending = None
    for index in tqdm(range(batches), desc=description, unit="batch", disable=not progress):
        batch = [tf.constant(array[index * batch_size : (index + 1) * batch_size]) for array in padded]
        outputs = step(*batch)
        if pending is not None:
            results.append(tuple(tensor.numpy() for tensor in pending))
        pending = outputs
    if pending is not None:
        results.append(tuple(tensor.numpy() for tensor in pending))
    best_iou, score, matched_class = (np.concatenate(parts)[:count] for parts in zip(*results))
    return best_iou, score, matched_class


def run_sweep(
    step: Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]],
    crops: CropBank,
    backgrounds: BackgroundBank,
    mode: str,
    input_size: tuple[int, int],
    settings: SweepConfig,
    progress: bool = False,
) -> pd.DataFrame:
    """Sweep every crop over every background in one mode and record each placement.

    `step` comes from `make_sweep_step` with the same banks and
    settings.iou. Uses settings.step, columns, grid_step, batch_size, iou
    and score_threshold. Returns `RECORD_COLUMNS` without variant and seed.
    A placement is detected when best_iou >= settings.iou and the matched
    detection's score >= settings.score_threshold, which is true exactly when
    some detection reaches both (see `match_detections`).
    """
    table = placements.build_placements(
        mode,
        input_size,
        crops.sizes,
        crops.light_boxes,
        len(backgrounds),
        int(settings.step),
        int(settings.columns),
        int(settings.grid_step),
    )
    crop_index = table["crop_index"].to_numpy()
    y = table["y"].to_numpy()
    x = table["x"].to_numpy()
    light_boxes = crops.light_boxes[crop_index]
    boxes = placements.placed_boxes(y, x, light_boxes, input_size)
    bin_size = int(settings.grid_step) if mode == "grid" else int(settings.step)
    rows, columns = placements.position_bins(y, x, light_boxes, bin_size)

    logger.info("sweep %s: %d placements in batches of %d", mode, len(table), settings.batch_size)
    best_iou, score, matched_class = detect_placements(
        step,
        [table["background_index"].to_numpy(), crop_index, y, x, boxes],
        int(settings.batch_size),
        progress=progress,
        description=f"sweep {mode}",
    )

    classes = crops.classes[crop_index]
    detected = (best_iou >= settings.iou) & (score >= settings.score_threshold)
    record = pd.DataFrame(
        {
            "mode": mode,
            "background_id": np.asarray(backgrounds.ids, dtype=object)[table["background_index"].to_numpy()],
            "crop_id": np.asarray(crops.ids, dtype=object)[crop_index],
            "class_id": classes,
            "crop_height": crops.sizes[crop_index, 0],
            "crop_width": crops.sizes[crop_index, 1],
            "y": y,
            "x": x,
            "placed_ymin": boxes[:, 0],
            "placed_xmin": boxes[:, 1],
            "placed_ymax": boxes[:, 2],
            "placed_xmax": boxes[:, 3],
            "row": rows,
            "column": columns,
            "best_iou": best_iou.astype(np.float32),
            "score": score.astype(np.float32),
            "matched_class": matched_class.astype(np.int32),
            "detected": detected,
            "class_correct": matched_class == classes,
        }
    )
    return record


def run_sweep_modes(
    detector: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
    crops: CropBank,
    backgrounds: BackgroundBank,
    input_size: tuple[int, int],
    settings: SweepConfig,
    variant: str,
    seed: int,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every mode of settings.modes and return one table with `RECORD_COLUMNS`."""
    _check_fits(crops, input_size)
    step = make_sweep_step(detector, backgrounds, crops, float(settings.iou))
    tables = [run_sweep(step, crops, backgrounds, str(mode), input_size, settings, progress) for mode in settings.modes]
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "variant", variant)
    table.insert(1, "seed", np.int32(seed))
    return table[list(RECORD_COLUMNS)]


def _check_fits(crops: CropBank, input_size: tuple[int, int]) -> None:
    too_big = [
        f"{crop_id} ({height}x{width} px)"
        for crop_id, (height, width) in zip(crops.ids, crops.sizes)
        if height > input_size[0] or width > input_size[1]
    ]
    if too_big:
        raise ValueError(
            f"{len(too_big)} light crops are larger than the model input {input_size[0]}x{input_size[1]} px: "
            f"{', '.join(too_big[:5])}. Use a larger model.input_size."
        )


def write_sweep_outputs(
    out_dir: Path | str,
    table: pd.DataFrame,
    blind_fraction: float,
    extra_metrics: Mapping[str, Any] | None = None,
) -> metrics.SweepSummary:
    """Write placements.parquet, metrics.json and the rate CSVs into out_dir.

    rate_by_row.csv is always written (header only when no mode sweeps
    rows). rate_by_column.csv and rate_by_cell.csv are written only when a
    mode produced them (see `metrics.SweepSummary`). `extra_metrics` (e.g.
    the sweep params and crop counts) are merged into the top level of
    metrics.json.
    """
    out_dir = Path(out_dir)
    summary = metrics.summarise_sweep(table, blind_fraction)

    with runinfo.atomic_path(out_dir / "placements.parquet") as temp:
        table.to_parquet(temp, engine="pyarrow", index=False)
    runinfo.write_json(out_dir / "metrics.json", {**(extra_metrics or {}), **summary.metrics})

    csv_tables = {
        "rate_by_row.csv": summary.rate_by_row,
        "rate_by_column.csv": summary.rate_by_column,
        "rate_by_cell.csv": summary.rate_by_cell,
    }
    for name, frame in csv_tables.items():
        if frame is None and name == "rate_by_row.csv":
            frame = pd.DataFrame(columns=["row", *metrics.RATE_COLUMNS])
        if frame is not None:
            runinfo.write_text(out_dir / name, frame.to_csv(index=False))
    return summary
