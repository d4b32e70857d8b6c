"""Placement positions of each sweep mode, and the boxes of the placed lights.

All positions are in model-input pixels. A placement's (y, x) is the
crop's top-left pixel, so its light covers the crop's light box shifted
by (y, x). Modes:

- `vertical`: every row from top to bottom in steps of `step`, at
  `columns` columns spread evenly across the width.
- `horizontal`: every column in steps of `step`, at `columns` rows spread
  evenly down the height (the same count, so both modes cost the same).
- `grid`: every row and every column in steps of `grid_step`, for heatmaps.

Swept positions start at 0 and always include the last position that keeps
the crop inside the frame (H - h), so both borders are covered even when
`step` does not divide H - h.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MODES = ("vertical", "horizontal", "grid")


def swept_positions(frame: int, extent: int, step: int) -> np.ndarray:
    """Return top-left positions 0, step, 2 * step, ... and frame - extent.

    `frame` and `extent` are the frame and crop sizes along one axis, in
    pixels. Raises ValueError when the crop does not fit in the frame.
    """
    if step < 1:
        raise ValueError(f"sweep step must be at least 1 pixel, got {step}")
    last = frame - extent
    if last < 0:
        raise ValueError(f"a crop of {extent} px does not fit in a frame of {frame} px")
    positions = np.arange(0, last + 1, step)
    if positions[-1] != last:
        positions = np.append(positions, last)
    return positions.astype(np.int32)


def spread_positions(frame: int, extent: int, light_centre: float, count: int) -> np.ndarray:
    """Return `count` top-left positions that put the light at evenly spread centres.

    The frame is cut into `count` equal cells and the light's centre goes to
    the middle of each cell: centre_j = (j + 0.5) * frame / count, so the
    positions avoid the border. `light_centre` is the light's centre inside
    the crop, in pixels. Positions are rounded half up and clipped to
    [0, frame - extent].
    """
    if count < 1:
        raise ValueError(f"sweep.columns must be at least 1, got {count}")
    if extent > frame:
        raise ValueError(f"a crop of {extent} px does not fit in a frame of {frame} px")
    centres = (np.arange(count) + 0.5) * frame / count
    positions = np.floor(centres - light_centre + 0.5)
    return np.clip(positions, 0, frame - extent).astype(np.int32)


def crop_positions(
    mode: str,
    input_size: tuple[int, int],
    crop_size: tuple[int, int],
    light_box: np.ndarray,
    step: int,
    columns: int,
    grid_step: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (ys, xs) top-left positions of one crop, all pairs flattened.

    `light_box` is `[ymin, xmin, ymax, xmax]` in crop pixels. The order is
    row-major: every x of the first y, then every x of the next.
    """
    height, width = input_size
    crop_height, crop_width = crop_size
    centre_y = (float(light_box[0]) + float(light_box[2])) / 2
    centre_x = (float(light_box[1]) + float(light_box[3])) / 2
    if mode == "vertical":
        ys = swept_positions(height, crop_height, step)
        xs = spread_positions(width, crop_width, centre_x, columns)
    elif mode == "horizontal":
        ys = spread_positions(height, crop_height, centre_y, columns)
        xs = swept_positions(width, crop_width, step)
    elif mode == "grid":
        ys = swept_positions(height, crop_height, grid_step)
        xs = swept_positions(width, crop_width, grid_step)
    else:
        raise ValueError(f"unknown sweep mode '{mode}'. Allowed: {', '.join(MODES)}")
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return grid_y.ravel(), grid_x.ravel()


def build_placements(
    mode: str,
    input_size: tuple[int, int],
    crop_sizes: np.ndarray,
    light_boxes: np.ndarray,
    num_backgrounds: int,
    step: int,
    columns: int,
    grid_step: int,
) -> pd.DataFrame:
    """List every (background, crop, y, x) of one sweep mode.

    `crop_sizes` is [C, 2] (h, w) and `light_boxes` [C, 4] in crop pixels.
    Returns columns background_index, crop_index, y, x (int32), ordered by
    background, then crop, then position as `crop_positions` gives it.
    """
    parts = []
    for crop_index, (crop_size, light_box) in enumerate(zip(crop_sizes, light_boxes)):
        ys, xs = crop_positions(mode, input_size, (int(crop_size[0]), int(crop_size[1])), light_box, step, columns, grid_step)
        parts.append(pd.DataFrame({"crop_index": np.int32(crop_index), "y": ys, "x": xs}))
    per_crop = pd.concat(parts, ignore_index=True)

    tables = [per_crop.assign(background_index=np.int32(index)) for index in range(num_backgrounds)]
    table = pd.concat(tables, ignore_index=True)
    return table[["background_index", "crop_index", "y", "x"]].astype(np.int32)


def placed_boxes(
    y: np.ndarray,
    x: np.ndarray,
    light_boxes: np.ndarray,
    input_size: tuple[int, int],
) -> np.ndarray:
    """Return the placed lights' `[ymin, xmin, ymax, xmax]` normalised to [0, 1].

    y, x: [N] top-left crop positions in pixels. light_boxes: [N, 4] in crop
    pixels (one per placement). Returns [N, 4] float32.
    """
    height, width = input_size
    offset = np.stack([y, x, y, x], axis=1).astype(np.float64)
    scale = np.array([height, width, height, width], np.float64)
    return ((np.asarray(light_boxes, np.float64) + offset) / scale).astype(np.float32)


def position_bins(
    y: np.ndarray,
    x: np.ndarray,
    light_boxes: np.ndarray,
    bin_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (row, column) bin of each placed light's centre, in pixels.

    y, x: [N] top-left crop positions. light_boxes: [N, 4] `[ymin, xmin,
    ymax, xmax]` in crop pixels. A bin is the centre's pixel coordinate
    rounded down to a multiple of `bin_size`, so row 40 with bin size 2
    contains centres in [40, 42). Computed from pixels, not from normalised
    boxes, so that float32 rounding cannot move a centre into the bin below.
    """
    boxes = np.asarray(light_boxes, np.float64)
    centre_y = np.asarray(y, np.float64) + (boxes[:, 0] + boxes[:, 2]) / 2
    centre_x = np.asarray(x, np.float64) + (boxes[:, 1] + boxes[:, 3]) / 2
    rows = np.floor(centre_y / bin_size) * bin_size
    cols = np.floor(centre_x / bin_size) * bin_size
    return rows.astype(np.int32), cols.astype(np.int32)
