"""Accuracy table: per-variant mean and 95% confidence interval of headline metrics over seeds.

Each run's metrics are a nested dict such as `DetectionMetrics.to_dict()`
with the output of `coco.coco_metrics` under the key "coco". Nested keys are
addressed with dots: `mean_ap`, `ap.Green`, `coco.ap50`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from blindspots import runinfo

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# Column headers of the Markdown table. Per-class keys `ap.<class>` become "AP <class>".
METRIC_LABELS = {
    "mean_ap": "mAP",
    "weighted_mean_ap": "weighted mAP",
    "coco.ap": "COCO AP",
    "coco.ap50": "COCO AP50",
    "confusion.accuracy": "class accuracy",
}
CI_SUFFIX = "_ci95"


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys: `{"ap": {"Red": 0.5}}` -> `{"ap.Red": 0.5}`."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def default_metric_keys(metrics: Mapping[str, Any]) -> list[str]:
    """List the headline keys present in one run.

    They are mAP, weighted mAP, per-class AP, COCO AP and AP50, and the class
    accuracy of found lights from `confusion.class_confusion`.
    """
    flat = flatten_metrics(metrics)
    per_class = [key for key in flat if key.startswith("ap.")]
    candidates = ["mean_ap", "weighted_mean_ap", *per_class, "coco.ap", "coco.ap50", "confusion.accuracy"]
    return [key for key in candidates if key in flat]


def confidence_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Return the Student-t confidence-interval half-width of the mean: t * s / sqrt(n).

    `t` is the two-sided quantile with n - 1 degrees of freedom and `s` the
    sample standard deviation (ddof=1). Returns NaN for fewer than 2 values
    or when any value is NaN.
    """
    # stdtrit(df, p) is the Student-t quantile, the same value as
    # scipy.stats.t.ppf(p, df), but scipy.special imports in a fraction of the time.
    from scipy.special import stdtrit

    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2 or np.isnan(array).any():
        return math.nan
    quantile = stdtrit(len(array) - 1, 0.5 + confidence / 2)
    return float(quantile * np.std(array, ddof=1) / math.sqrt(len(array)))


def accuracy_table(
    runs: Mapping[tuple[str, int], Mapping[str, Any]],
    metric_keys: Sequence[str] | None = None,
) -> "pd.DataFrame":
    """Summarise runs keyed by (variant, seed) into one row per variant.

    Columns: `num_seeds`, `seeds` (comma-separated, ascending), then for each
    metric key its mean over seeds and `<key>_ci95`, the 95% CI half-width
    (NaN for one seed). `metric_keys` defaults to `default_metric_keys` of
    the first run. A None or NaN value (an undefined AP) makes that
    variant's mean NaN. Rows follow the order in which variants first appear.

    Raises ValueError when `runs` is empty or a run lacks a metric key.
    """
    import pandas as pd

    if not runs:
        raise ValueError("no runs to tabulate. Pass at least one (variant, seed) -> metrics entry.")
    flat_runs = {run: flatten_metrics(metrics) for run, metrics in runs.items()}
    keys = list(metric_keys) if metric_keys is not None else default_metric_keys(next(iter(runs.values())))

    values_by_variant: dict[str, dict[int, list[float]]] = {}
    for (variant, seed), flat in flat_runs.items():
        missing = [key for key in keys if key not in flat]
        if missing:
            raise ValueError(
                f"run (variant {variant!r}, seed {seed}) has no metric {missing[0]!r}. "
                "Evaluate every run with the same settings, or pass metric_keys."
            )
        values_by_variant.setdefault(variant, {})[seed] = [_as_float(flat[key]) for key in keys]

    rows = []
    for variant, by_seed in values_by_variant.items():
        seeds = sorted(by_seed)
        row: dict[str, Any] = {"variant": variant, "num_seeds": len(seeds), "seeds": ",".join(str(seed) for seed in seeds)}
        for column, key in enumerate(keys):
            samples = [by_seed[seed][column] for seed in seeds]
            row[key] = float(np.mean(samples))
            row[f"{key}{CI_SUFFIX}"] = confidence_half_width(samples)
        rows.append(row)
    logger.info("accuracy table: %d variants, %d runs, %d metrics", len(rows), len(flat_runs), len(keys))
    return pd.DataFrame(rows).set_index("variant")


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def metric_label(key: str) -> str:
    """Return the column header for a metric key, e.g. "ap.Red" -> "AP Red"."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    if key.startswith("ap."):
        return f"AP {key[len('ap.'):]}"
    return key


def format_markdown(table: "pd.DataFrame", digits: int = 3) -> str:
    """Format an `accuracy_table` as a Markdown table with "mean ± CI" cells.

    A cell shows the mean alone when the CI is undefined (one seed), and
    "n/a" when the mean is undefined.
    """
    metric_keys = [column for column in table.columns if column not in ("num_seeds", "seeds") and not column.endswith(CI_SUFFIX)]
    header = ["variant", "seeds", *[metric_label(key) for key in metric_keys]]
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header))]
    for variant, row in table.iterrows():
        cells = [str(variant), str(row["num_seeds"])]
        cells += [_format_cell(row[key], row.get(f"{key}{CI_SUFFIX}", math.nan), digits) for key in metric_keys]
        lines.append(_markdown_row(cells))
    return "\n".join(lines) + "\n"


def _format_cell(mean: float, half_width: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isnan(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"


def _markdown_row(cells: Sequence[str]) -> str:
    escaped = [cell.replace("|", "\\|") for cell in cells]
    return "| " + " | ".join(escaped) + " |"


def write_accuracy_table(table: "pd.DataFrame", csv_path: Path | str, markdown_path: Path | str, digits: int = 3) -> None:
    """Write the table as CSV (full precision, NaN as empty) and as Markdown, each atomically."""
    runinfo.write_text(csv_path, table.to_csv())
    runinfo.write_text(markdown_path, format_markdown(table, digits))
    logger.info("wrote accuracy table to %s and %s", csv_path, markdown_path)
