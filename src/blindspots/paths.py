"""Input and output paths of each stage, relative to the repository root.

dvc.yaml declares the same paths; keep the two in step.
"""

from __future__ import annotations

from pathlib import Path

PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
RUNS_DIR = Path("runs")
METRICS_DIR = Path("metrics")
REPORTS_DIR = Path("reports")
RUNS_FILE = Path("conf/runs.yaml")


def split_pattern(split: str, prepared_dir: Path = PREPARED_DIR) -> str:
    """Glob of the TFRecord shards of one split (train, val or test)."""
    return str(prepared_dir / f"{split}-*.tfrecord")


def model_dir(variant: str, seed: int) -> Path:
    return MODELS_DIR / variant / f"seed_{seed}"


def run_dir(variant: str, seed: int) -> Path:
    return RUNS_DIR / variant / f"seed_{seed}"


def evaluate_dir(variant: str, seed: int) -> Path:
    """Accuracy metrics and PR curves of one run."""
    return METRICS_DIR / "runs" / variant / f"seed_{seed}"


def run_key(variant: str, seed: int) -> str:
    """Stage key of one run in dvc.yaml, e.g. `tf_same_even-s0`."""
    return f"{variant}-s{seed}"
