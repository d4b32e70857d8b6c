"""Load every pipeline output that the report uses into one `Study` object.

Paths are those of `blindspots.paths`, taken relative to `root` (the
repository root). Inputs of the main results are required: a missing file
raises `MissingInputError`, which lists every missing file with the
command that writes it. The spatial-bias analysis and the training curves
are optional: what is missing is recorded in `Study.analysis_notes` and
`Study.training_notes`, and the report shows those notes in place of the
missing figures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from omegaconf import DictConfig

from blindspots import paths, runinfo
from blindspots.config.loader import resolve_variant, run_ids, to_dict

logger = logging.getLogger(__name__)

# DVCLive series that the train stage logs under plots/metrics/train/.
TRAINING_SERIES = ("loss", "class_loss", "box_loss")
TRAINING_PLOTS_DIR = Path("train/dvclive/plots/metrics/train")
PR_CURVE_COLUMNS = ("class", "recall", "precision", "threshold")


class MissingInputError(FileNotFoundError):
    """A pipeline output that the report needs does not exist. The message names the command that writes it."""


@dataclass(frozen=True)
class VariantSetup:
    """One variant's resolved model settings. `input_size` is (height, width) in pixels."""

    name: str
    padding: str
    alignment: str
    input_size: tuple[int, int]
    width_multiplier: float
    seeds: tuple[int, ...]


@dataclass
class RunOutputs:
    """Outputs of one (variant, seed) run.

    `rate_by_row`, `rate_by_column` and `rate_by_cell` are the sweep's rate
    tables (`blindspots.sweep.metrics.rate_table` columns). A table is None
    when its sweep mode did not run, and `rate_by_row` is empty when neither
    vertical nor grid ran. `training` maps a DVCLive series name to a table
    with columns step and value, and is empty when the series files are missing.
    """

    variant: str
    seed: int
    metrics: dict[str, Any]
    pr_curves: pd.DataFrame
    sweep_metrics: dict[str, Any]
    rate_by_row: pd.DataFrame
    rate_by_column: pd.DataFrame | None
    rate_by_cell: pd.DataFrame | None
    training: dict[str, pd.DataFrame]


@dataclass
class AnalysisFigure:
    """A figure of the analyze stage: its file, its caption from captions.json."""

    file_name: str
    path: Path
    caption: str


@dataclass
class VariantAnalysis:
    """Outputs of the analyze stage for one variant (`runs/<variant>/analysis/`)."""

    variant: str
    folder: Path
    figures: list[AnalysisFigure]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Provenance:
    """Origin of the report: git commit, params hash, package versions and date (UTC, ISO 8601)."""

    git_commit: str
    git_dirty: bool | None
    params_sha256: str
    packages: dict[str, str]
    date: str


@dataclass
class Study:
    """Every input of the report, loaded.

    `params` is the resolved config as plain containers, `variants` follows
    the order of `variants` in params.yaml, and `runs` is keyed by
    (variant, seed). `analysis` is None for a variant without analysis
    outputs. `analysis_notes` and `training_notes` list the optional inputs
    that were not found, one sentence each.
    """

    root: Path
    params: dict[str, Any]
    variants: list[VariantSetup]
    class_names: list[str]
    data_source: str
    data_stats: dict[str, Any]
    anchor_coverage: dict[str, Any]
    box_sizes_png: Path
    accuracy: pd.DataFrame
    runs: dict[tuple[str, int], RunOutputs]
    analysis: dict[str, VariantAnalysis | None]
    provenance: Provenance
    analysis_notes: list[str] = field(default_factory=list)
    training_notes: list[str] = field(default_factory=list)

    @property
    def variant_names(self) -> list[str]:
        return [variant.name for variant in self.variants]

    def variant_runs(self, variant: str) -> list[RunOutputs]:
        """Return the runs of one variant in seed order."""
        return [self.runs[(variant, seed)] for seed in self.variant(variant).seeds]

    def variant(self, name: str) -> VariantSetup:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"unknown variant '{name}'. Variants of this study: {', '.join(self.variant_names)}.")


def params_sha256(params: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of the resolved config as compact JSON with sorted keys."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Inputs:
    """Reads input files relative to the root and collects the missing ones with the command that writes each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.missing: list[tuple[Path, str]] = []

    def path(self, relative: Path, command: str) -> Path | None:
        """Return root / relative, or record it as missing and return None."""
        path = self.root / relative
        if path.is_file():
            return path
        self.missing.append((relative, command))
        return None

    def json(self, relative: Path, command: str) -> Any:
        path = self.path(relative, command)
        return None if path is None else json.loads(path.read_text(encoding="utf-8"))

    def csv(self, relative: Path, command: str, columns: tuple[str, ...] = (), **kwargs: Any) -> pd.DataFrame | None:
        """Read a CSV. A file without a header (a table with no rows) reads as an empty table of `columns`."""
        path = self.path(relative, command)
        if path is None:
            return None
        try:
            return pd.read_csv(path, **kwargs)
        except pd.errors.EmptyDataError:
            return pd.DataFrame(columns=list(columns))

    def raise_if_missing(self) -> None:
        if not self.missing:
            return
        lines = [f"  {path}  (written by `{command}`)" for path, command in self.missing]
        raise MissingInputError(
            f"the report needs {len(self.missing)} pipeline output(s) that do not exist under {self.root.resolve()}:\n"
            + "\n".join(lines)
            + "\nRun those commands, or `dvc repro`, then rerun `blindspots report`."
        )


def variant_setups(config: DictConfig) -> list[VariantSetup]:
    """Resolve every variant of `config` in params order."""
    setups = []
    for name in config.variants:
        resolved = resolve_variant(config, str(name))
        model = resolved.model
        setups.append(
            VariantSetup(
                name=str(name),
                padding=str(model.padding),
                alignment=str(model.alignment),
                input_size=(int(model.input_size[0]), int(model.input_size[1])),
                width_multiplier=float(model.width_multiplier),
                seeds=resolved.seeds,
            )
        )
    return setups


def _read_training(root: Path, variant: str, seed: int) -> dict[str, pd.DataFrame]:
    """Read the DVCLive loss series of one run as tables of step and value, skipping missing files."""
    folder = root / paths.run_dir(variant, seed) / TRAINING_PLOTS_DIR
    series = {}
    for name in TRAINING_SERIES:
        path = folder / f"{name}.tsv"
        if not path.is_file():
            continue
        table = pd.read_csv(path, sep="\t")
        # DVCLive 3.49 names the value column after the metric. Any other layout falls back to the last column.
        value_column = name if name in table.columns else table.columns[-1]
        series[name] = table.rename(columns={value_column: "value"})[["step", "value"]]
    return series


def _read_run(inputs: _Inputs, config: DictConfig, variant: str, seed: int) -> RunOutputs | None:
    evaluate_command = f"blindspots evaluate --variant {variant} --seed {seed}"
    sweep_command = f"blindspots sweep --variant {variant} --seed {seed}"
    evaluate_dir = paths.evaluate_dir(variant, seed)
    sweep_dir = paths.run_dir(variant, seed) / "sweep"

    metrics = inputs.json(evaluate_dir / "metrics.json", evaluate_command)
    # The evaluate stage writes an empty pr_curves.csv when no class has both ground truth and detections.
    pr_curves = inputs.csv(evaluate_dir / "pr_curves.csv", evaluate_command, columns=PR_CURVE_COLUMNS)
    sweep_metrics = inputs.json(sweep_dir / "metrics.json", sweep_command)
    rate_by_row = inputs.csv(sweep_dir / "rate_by_row.csv", sweep_command)
    modes = set(config.sweep.modes)
    rate_by_column = None
    if modes & {"horizontal", "grid"}:
        rate_by_column = inputs.csv(sweep_dir / "rate_by_column.csv", sweep_command)
    rate_by_cell = inputs.csv(sweep_dir / "rate_by_cell.csv", sweep_command) if "grid" in modes else None

    if metrics is None or pr_curves is None or sweep_metrics is None or rate_by_row is None:
        return None
    return RunOutputs(
        variant=variant,
        seed=seed,
        metrics=metrics,
        pr_curves=pr_curves,
        sweep_metrics=sweep_metrics,
        rate_by_row=rate_by_row,
        rate_by_column=rate_by_column,
        rate_by_cell=rate_by_cell,
        training=_read_training(inputs.root, variant, seed),
    )


def _read_analysis(root: Path, variant: str, notes: list[str]) -> VariantAnalysis | None:
    """Read `runs/<variant>/analysis/`, or add a note and return None when it is missing or incomplete."""
    relative = paths.RUNS_DIR / variant / "analysis"
    folder = root / relative
    command = f"blindspots analyze --variant {variant}"
    if not folder.is_dir():
        notes.append(f"No spatial-bias analysis for `{variant}`: {relative} not found. Run `{command}` to add it.")
        return None
    captions_path = folder / "captions.json"
    if not captions_path.is_file():
        notes.append(f"The analysis of `{variant}` is left out: {relative / 'captions.json'} not found. Rerun `{command}`.")
        return None
    captions = json.loads(captions_path.read_text(encoding="utf-8"))
    figures = []
    for file_name, caption in captions.items():
        path = folder / file_name
        if path.is_file():
            figures.append(AnalysisFigure(str(file_name), path, str(caption)))
        else:
            notes.append(f"Analysis figure {relative / file_name} is listed in captions.json but not found. Rerun `{command}`.")
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    return VariantAnalysis(variant, folder, figures, metrics)


def _check_accuracy_variants(accuracy: pd.DataFrame, names: list[str], relative: Path) -> None:
    missing = [name for name in names if name not in accuracy.index]
    if missing:
        raise MissingInputError(
            f"{relative} has no row for variant(s) {', '.join(missing)}, so it predates the current params.yaml. "
            "Rerun `blindspots evaluate --table`."
        )


def collect_study(config: DictConfig, root: Path | str = ".") -> Study:
    """Load every report input for the runs of `config` from the repository at `root`.

    Raises MissingInputError listing every missing required file.
    """
    root = Path(root)
    inputs = _Inputs(root)
    params = to_dict(config)

    stats = inputs.json(paths.PREPARED_DIR / "stats.json", "blindspots prepare")
    coverage = inputs.json(paths.PREPARED_DIR / "anchor_coverage.json", "blindspots prepare")
    box_sizes = inputs.path(paths.PREPARED_DIR / "box_sizes.png", "blindspots prepare")
    prepare_record = inputs.json(paths.PREPARED_DIR / "run.json", "blindspots prepare")
    accuracy_relative = paths.METRICS_DIR / "accuracy.csv"
    accuracy = inputs.csv(accuracy_relative, "blindspots evaluate --table", index_col="variant", dtype={"seeds": str})

    runs = {}
    for variant, seed in run_ids(config):
        outputs = _read_run(inputs, config, variant, seed)
        if outputs is not None:
            runs[(variant, seed)] = outputs
    inputs.raise_if_missing()

    setups = variant_setups(config)
    _check_accuracy_variants(accuracy, [setup.name for setup in setups], accuracy_relative)
    training_notes = []
    for (variant, seed), outputs in runs.items():
        if not outputs.training:
            folder = paths.run_dir(variant, seed) / TRAINING_PLOTS_DIR
            training_notes.append(
                f"No training curve for `{variant}` seed {seed}: {folder} has no loss series. "
                f"`blindspots train --variant {variant} --seed {seed}` writes it."
            )
    analysis_notes: list[str] = []
    analysis = {setup.name: _read_analysis(root, setup.name, analysis_notes) for setup in setups}

    git = runinfo.git_commit(root)
    provenance = Provenance(
        git_commit=str(git["commit"]),
        git_dirty=git["dirty"],
        params_sha256=params_sha256(params),
        packages=runinfo.package_versions(),
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    data_source = str((prepare_record or {}).get("config", {}).get("data", {}).get("source", config.data.source))
    study = Study(
        root=root,
        params=params,
        variants=setups,
        class_names=list(stats.get("class_names", [])),
        data_source=data_source,
        data_stats=stats,
        anchor_coverage=coverage,
        box_sizes_png=box_sizes,
        accuracy=accuracy,
        runs=runs,
        analysis=analysis,
        provenance=provenance,
        analysis_notes=analysis_notes,
        training_notes=training_notes,
    )
    missing = len(analysis_notes) + len(training_notes)
    logger.info("collected %d runs of %d variants from %s (%d optional input(s) missing)", len(runs), len(setups), root, missing)
    return study
