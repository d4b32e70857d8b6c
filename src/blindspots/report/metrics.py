"""Numbers the report derives from the collected outputs: padding verdicts, pooled blind-spot metrics, tables.

Blind-spot metrics of a variant pool its seeds first. The row tables of
every seed are summed per row (`sweep.metrics.aggregate_seeds`), and the
metrics of `sweep.metrics.blind_spot_metrics` are computed on the pooled
rates. Each pooled rate has a Wilson interval over all placements. The
per-seed table instead averages each run's own `sweep/metrics.json` values
with a Student-t 95% CI across seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from blindspots.analysis.padding_audit import audit_network
from blindspots.evaluation.table import confidence_half_width
from blindspots.report.collect import Study, VariantSetup
from blindspots.report.summary import AccuracyEntry, BlindSpotEntry, RateInterval
from blindspots.sweep import metrics as sweep_metrics

# Keys of a run's sweep/metrics.json mode section that the per-seed table averages.
SEED_METRIC_KEYS = ("detection_rate", "blind_row_count", "worst_row_rate", "row_rate_spread", "top_bottom_asymmetry")
# Sweep modes that produce row rates, in the order `sweep.metrics.summarise_sweep` prefers them.
ROW_MODES = ("vertical", "grid")


@dataclass(frozen=True)
class PaddingVerdict:
    """How many of the network's stride-2 layers pad unevenly, per axis, at a variant's input size."""

    stride2_layers: int
    uneven_height: int
    uneven_width: int
    uneven_layer_names: tuple[str, ...]


def padding_verdict(setup: VariantSetup) -> PaddingVerdict:
    """Audit SSD MobileNet v1 at the variant's input size, padding and alignment."""
    table = audit_network(setup.input_size, setup.padding, setup.alignment)
    stride2_height = table["stride_h"] == 2
    stride2_width = table["stride_w"] == 2
    uneven = (stride2_height & table["uneven_h"]) | (stride2_width & table["uneven_w"])
    return PaddingVerdict(
        stride2_layers=int(stride2_height.sum()),
        uneven_height=int((stride2_height & table["uneven_h"]).sum()),
        uneven_width=int((stride2_width & table["uneven_w"]).sum()),
        uneven_layer_names=tuple(str(name) for name in table.loc[uneven, "layer"]),
    )


def accuracy_entries(study: Study) -> list[AccuracyEntry]:
    """Read each variant's mAP mean and CI half-width from the accuracy table, in params order."""
    entries = []
    for name in study.variant_names:
        row = study.accuracy.loc[name]
        entries.append(
            AccuracyEntry(
                variant=name,
                seeds=int(row["num_seeds"]),
                mean_ap=_float(row.get("mean_ap")),
                mean_ap_ci95=_float(row.get("mean_ap_ci95")),
            )
        )
    return entries


def _float(value: Any) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def pooled_rates(study: Study, variant: str, table: str = "rate_by_row") -> pd.DataFrame | None:
    """Pool one rate table (rate_by_row, rate_by_column or rate_by_cell) over the variant's seeds.

    Returns None when no seed has rows in that table.
    """
    keys = {"rate_by_row": "row", "rate_by_column": "column", "rate_by_cell": ["row", "column"]}[table]
    tables = [getattr(run, table) for run in study.variant_runs(variant)]
    tables = [frame for frame in tables if frame is not None and not frame.empty]
    if not tables:
        return None
    return sweep_metrics.aggregate_seeds(tables, keys)


def _clip_unit(lower: float, upper: float) -> tuple[float, float]:
    """Clip a Wilson interval to [0, 1], because rounding can leave an endpoint a few ulps outside."""
    return float(np.clip(lower, 0.0, 1.0)), float(np.clip(upper, 0.0, 1.0))


def blind_spot_entry(study: Study, variant: str, verdict: PaddingVerdict | None = None) -> BlindSpotEntry | None:
    """Compute the pooled blind-spot metrics of one variant, or None without row rates."""
    rates = pooled_rates(study, variant, "rate_by_row")
    if rates is None:
        return None
    blind_fraction = float(study.params["sweep"]["blind_fraction"])
    summary = sweep_metrics.blind_spot_metrics(rates, blind_fraction, "row")
    worst = rates.loc[rates["row"] == summary["worst_row"]].iloc[0]
    detected, placements = int(rates["detected"].sum()), int(rates["n"].sum())
    lower, upper = _clip_unit(*sweep_metrics.wilson_interval(detected, placements))
    worst_lower, worst_upper = _clip_unit(float(worst["lower"]), float(worst["upper"]))
    return BlindSpotEntry(
        variant=variant,
        seeds=len(study.variant(variant).seeds),
        row_count=len(rates),
        blind_rows=tuple(summary["blind_rows"]),
        blind_fraction=blind_fraction,
        median_row_rate=summary["median_row_rate"],
        worst_row=summary["worst_row"],
        worst_row_rate=RateInterval(float(worst["rate"]), worst_lower, worst_upper),
        overall_rate=RateInterval(detected / placements, lower, upper),
        spread=summary["row_rate_spread"],
        asymmetry=summary["top_bottom_asymmetry"],
        uneven_layers=None if verdict is None else verdict.uneven_height,
        stride2_layers=None if verdict is None else verdict.stride2_layers,
    )


def pooled_blind_spot_table(entries: list[BlindSpotEntry]) -> pd.DataFrame:
    """Tabulate pooled blind-spot metrics, one row per variant, with full-precision numbers."""
    rows = []
    for entry in entries:
        rows.append(
            {
                "variant": entry.variant,
                "seeds": entry.seeds,
                "rows": entry.row_count,
                "overall_rate": entry.overall_rate.rate,
                "overall_lower": entry.overall_rate.lower,
                "overall_upper": entry.overall_rate.upper,
                "median_row_rate": entry.median_row_rate,
                "blind_row_count": len(entry.blind_rows),
                "blind_rows": " ".join(str(row) for row in entry.blind_rows),
                "worst_row": entry.worst_row,
                "worst_row_rate": entry.worst_row_rate.rate,
                "worst_row_lower": entry.worst_row_rate.lower,
                "worst_row_upper": entry.worst_row_rate.upper,
                "row_rate_spread": entry.spread,
                "top_bottom_asymmetry": entry.asymmetry,
            }
        )
    return pd.DataFrame(rows).set_index("variant") if rows else pd.DataFrame()


def _row_mode_metrics(sweep: dict[str, Any]) -> dict[str, Any] | None:
    for mode in ROW_MODES:
        if mode in sweep:
            return sweep[mode]
    return None


def seed_blind_spot_table(study: Study) -> pd.DataFrame:
    """Average each run's blind-spot metrics (sweep/metrics.json) per variant: mean and `<key>_ci95` across seeds.

    The CI half-width is NaN for a variant with one seed. Variants whose runs
    have no row mode are left out.
    """
    rows = []
    for name in study.variant_names:
        sections = [_row_mode_metrics(run.sweep_metrics) for run in study.variant_runs(name)]
        sections = [section for section in sections if section is not None]
        if not sections:
            continue
        row: dict[str, Any] = {"variant": name, "num_seeds": len(sections)}
        for key in SEED_METRIC_KEYS:
            values = [float(section[key]) for section in sections if key in section]
            row[key] = float(np.mean(values)) if values else math.nan
            row[f"{key}_ci95"] = confidence_half_width(values) if values else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant") if rows else pd.DataFrame()


def _json_number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def summary_json(accuracy: pd.DataFrame, entries: dict[str, BlindSpotEntry | None], names: list[str]) -> dict[str, Any]:
    """Return headline numbers per variant for `reports/summary.json` (a DVC metrics file).

    Keys per variant: mean_ap, mean_ap_ci95, weighted_mean_ap, blind_rows
    (count), worst_row_rate, row_rate_spread and top_bottom_asymmetry, the
    last four pooled over seeds. Undefined values are null.
    """
    summary: dict[str, Any] = {}
    for name in names:
        row = accuracy.loc[name]
        headline: dict[str, Any] = {
            "mean_ap": _json_number(_float(row.get("mean_ap"))),
            "mean_ap_ci95": _json_number(_float(row.get("mean_ap_ci95"))),
            "weighted_mean_ap": _json_number(_float(row.get("weighted_mean_ap"))),
        }
        entry = entries.get(name)
        if entry is not None:
            headline.update(
                {
                    "blind_rows": len(entry.blind_rows),
                    "worst_row_rate": _json_number(entry.worst_row_rate.rate),
                    "row_rate_spread": _json_number(entry.spread),
                    "top_bottom_asymmetry": _json_number(entry.asymmetry),
                }
            )
        summary[name] = headline
    return summary
