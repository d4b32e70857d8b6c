"""Shared fixtures: a tiny prepared workspace built by the real stages."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_PARAMS = {
    "preset": "tiny",
    "variants": {"tf_same_even": {"padding": "tf_same", "input_size": [64, 96]}},
}


def run_cli(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `blindspots ARGS` in `workdir` as a user would, in a fresh process."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "blindspots.cli", *args], cwd=workdir, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"blindspots {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def make_workspace(path: Path, params: dict) -> Path:
    """Lay out a repository-like folder with `params` and the real presets."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "conf" / "presets", path / "conf" / "presets", dirs_exist_ok=True)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """A workspace whose tiny synthetic dataset went through download and prepare."""
    workdir = make_workspace(tmp_path_factory.mktemp("tiny"), TINY_PARAMS)
    run_cli(workdir, "download")
    run_cli(workdir, "prepare")
    return workdir


def clone_workspace(source: Path, target: Path) -> Path:
    """Copy a prepared workspace (params, presets, data) to a fresh folder."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("models", "runs", "metrics", "reports"))
    return target
