"""The whole DVC pipeline on a tiny params file, in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from blindspots.config.loader import load_params, to_dict

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TINY = {
    "preset": "tiny",
    "variants": {
        "tf_same_even": {"padding": "tf_same", "input_size": [64, 96]},
        "circular_even": {"padding": "circular", "input_size": [64, 96]},
    },
    "sweep": {"modes": ["vertical", "grid"], "step": 8, "grid_step": 16, "columns": 2, "crops_per_class": 1, "backgrounds": 1},
    "analyze": {"data_batches": 1},
}


def run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """Tracked files of the repository, with the tiny params, as a fresh git + DVC repo."""
    target = tmp_path_factory.mktemp("pipeline") / "repo"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    # DVC reads params.yaml itself, so every section a stage declares must
    # be spelled out: write the tiny preset fully resolved.
    (target / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    resolved = to_dict(load_params(target / "params.yaml"))
    resolved["preset"] = ""
    (target / "params.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TF_USE_LEGACY_KERAS": "1", "DVC_NO_ANALYTICS": "1"}
    run(["git", "init", "-q"], target, env)
    run([str(bin_dir / "blindspots"), "pipeline"], target, env)
    run(["git", "add", "-A"], target, env)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "tiny"], target, env)
    run([str(bin_dir / "dvc"), "repro"], target, env)
    return target, env, bin_dir


def test_repro_writes_every_output(repo_copy):
    target, _, _ = repo_copy
    expected = [
        "data/prepared/classes.json",
        "models/tf_same_even/seed_0/model.weights.h5",
        "models/circular_even/seed_0/model.weights.h5",
        "metrics/runs/tf_same_even/seed_0/metrics.json",
        "metrics/accuracy.csv",
        "metrics/accuracy.md",
        "runs/tf_same_even/seed_0/sweep/placements.parquet",
        "runs/circular_even/seed_0/sweep/rate_by_row.csv",
        "runs/tf_same_even/analysis/metrics.json",
        "reports/index.html",
        "reports/report.md",
        "reports/summary.json",
    ]
    for name in expected:
        assert (target / name).is_file(), name


def test_metrics_hold_class_confusion(repo_copy):
    target, _, _ = repo_copy
    metrics = json.loads((target / "metrics/runs/tf_same_even/seed_0/metrics.json").read_text())
    counts = metrics["confusion"]["counts"]
    # Every test light lands in exactly one column, `missed` included.
    for name, total in metrics["num_ground_truth"].items():
        assert sum(counts[name].values()) == total, name
    header = (target / "metrics/accuracy.md").read_text().splitlines()[0]
    assert header.endswith("| class accuracy |")


def test_second_repro_is_up_to_date(repo_copy):
    target, env, bin_dir = repo_copy
    status = run([str(bin_dir / "dvc"), "status"], target, env)
    assert "up to date" in status.stdout
    again = run([str(bin_dir / "dvc"), "repro"], target, env)
    assert "didn't change, skipping" in again.stdout or "up to date" in again.stdout


def test_metrics_show_lists_runs(repo_copy):
    target, env, bin_dir = repo_copy
    metrics_output = run([str(bin_dir / "dvc"), "metrics", "show", "--json"], target, env)
    metrics = json.loads(metrics_output.stdout)
    files = next(iter(metrics.values()))["data"]
    assert "metrics/runs/tf_same_even/seed_0/metrics.json" in files
    assert "reports/summary.json" in files


def test_params_diff_after_edit(repo_copy):
    target, env, bin_dir = repo_copy
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["report"] = {"title": "Edited title"}
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    diff = run([str(bin_dir / "dvc"), "params", "diff"], target, env)
    assert "report.title" in diff.stdout
    status = run([str(bin_dir / "dvc"), "status"], target, env)
    assert "report" in status.stdout
    assert "train@" not in status.stdout
