"""Border statistics of a 2-D map: how each border row or column differs from the interior.

Used on activation maps (the channel mean of a post-activation feature map,
for example for an all-zero input) and on foveation count maps. Uneven
padding shows as a top border that differs from the bottom one, or a left
border that differs from the right one.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def channel_mean(feature_map: np.ndarray) -> np.ndarray:
    """Average an NHWC feature map over channels, shape [H, W, C] or [1, H, W, C] -> [H, W]."""
    array = np.asarray(feature_map, dtype=np.float64)
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f"feature map has batch size {array.shape[0]}; pass one image, shape [1, H, W, C] or [H, W, C]")
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"feature map has shape {array.shape}; expected [H, W, C] or [1, H, W, C]")
    return array.mean(axis=-1)


def border_statistics(activation: np.ndarray) -> dict[str, float]:
    """Compare the four borders of an [H, W] map with its interior.

    The interior is the map without its outermost 1-px ring. Each border is a
    full row or column, corners included. For each border b the result
    contains `b` = (mean(b) - interior mean) / |interior mean|, so 0.1 means 10 %
    above the interior. `top_bottom` is (mean(top) - mean(bottom)) /
    |interior mean| and `left_right` likewise, so a positive value means the
    top (left) border is larger. Also returned: `interior_mean`.

    When the interior mean is 0 the relative values are NaN and a warning is
    logged. Raises ValueError for maps smaller than 3 x 3 or with NaN.
    """
    array = np.asarray(activation, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"activation map has shape {array.shape}; expected [H, W], e.g. from channel_mean")
    if array.shape[0] < 3 or array.shape[1] < 3:
        raise ValueError(f"activation map of shape {array.shape} has no interior; borders need at least 3 x 3 pixels")
    if np.isnan(array).any():
        raise ValueError("activation map contains NaN")

    interior_mean = float(array[1:-1, 1:-1].mean())
    border_means = {
        "top": float(array[0, :].mean()),
        "bottom": float(array[-1, :].mean()),
        "left": float(array[:, 0].mean()),
        "right": float(array[:, -1].mean()),
    }
    scale = abs(interior_mean)
    if scale == 0.0:
        logger.warning("interior mean of a %dx%d map is 0; border statistics are NaN", *array.shape)
        scale = float("nan")

    result = {"interior_mean": interior_mean}
    for side, mean in border_means.items():
        result[side] = (mean - interior_mean) / scale
    result["top_bottom"] = (border_means["top"] - border_means["bottom"]) / scale
    result["left_right"] = (border_means["left"] - border_means["right"]) / scale
    return result
