"""The report stage after the real pipeline stages, run with the `blindspots` command on the tiny preset."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS = """\
preset: tiny
train:
  steps: 2
variants:
  even:
    seeds: [0]
sweep:
  modes: [vertical]
  step: 16
  columns: 1
  crops_per_class: 1
  backgrounds: 1
"""


def _blindspots(root: Path, *args: str) -> None:
    command = [sys.executable, "-m", "blindspots.cli", *args]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stderr[-3000:]}"


@pytest.mark.slow
def test_report_after_real_stages(tmp_path):
    # Slow: trains, evaluates and sweeps a real detector (minutes on 2 CPU cores).
    (tmp_path / "params.yaml").write_text(PARAMS, encoding="utf-8")
    shutil.copytree(REPO_ROOT / "conf" / "presets", tmp_path / "conf" / "presets")
    for stage in (["download"], ["prepare"], ["train", "--variant", "even", "--seed", "0"]):
        _blindspots(tmp_path, *stage)
    for stage in (["evaluate", "--variant", "even", "--seed", "0"], ["evaluate", "--table"], ["sweep", "--variant", "even", "--seed", "0"]):
        _blindspots(tmp_path, *stage)
    analyzed = importlib.util.find_spec("blindspots.stages.analyze") is not None
    if analyzed:
        _blindspots(tmp_path, "analyze", "--variant", "even")

    _blindspots(tmp_path, "report")

    reports = tmp_path / "reports"
    html = (reports / "index.html").read_text(encoding="utf-8")
    markdown = (reports / "report.md").read_text(encoding="utf-8")
    assert all(source.startswith("data:image/png;base64,") for source in re.findall(r'<img src="([^"]*)"', html))
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert [link for link in links if not (reports / link).is_file()] == []
    assert (reports / "figures" / "training_curves.png").is_file()
    assert sorted(json.loads((reports / "summary.json").read_text(encoding="utf-8"))) == ["even"]
    assert ("Run `blindspots analyze --variant even`" in markdown) is not analyzed
