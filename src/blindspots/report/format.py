"""Number formatting shared by the report's tables: fixed digits, "n/a" for undefined values."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any, digits: int = 3) -> str:
    """Format a float with `digits` decimals, an integer as is and a bool as yes or no. None and NaN become "n/a"."""
    if is_missing(value):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def percent(share: Any, digits: int = 1) -> str:
    """Format a share in [0, 1] as a percentage."""
    return "n/a" if is_missing(share) else f"{100.0 * float(share):.{digits}f}%"


def mean_ci(mean: Any, half_width: Any, digits: int = 3) -> str:
    """Format "mean ± half-width", the mean alone when the half-width is undefined, "n/a" when the mean is."""
    if is_missing(mean):
        return "n/a"
    if is_missing(half_width):
        return f"{float(mean):.{digits}f}"
    return f"{float(mean):.{digits}f} ± {float(half_width):.{digits}f}"


def interval(rate: Any, lower: Any, upper: Any, digits: int = 2) -> str:
    """Format a rate with its interval as "0.80 [0.70, 0.88]"."""
    if is_missing(rate):
        return "n/a"
    return f"{float(rate):.{digits}f} [{float(lower):.{digits}f}, {float(upper):.{digits}f}]"
