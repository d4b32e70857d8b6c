"""The benchmark runner: `python -m benchmarks.run --tiny` runs and writes every section.

No figure is checked, because times depend on the machine and its load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# `benchmarks` is a top-level package of the repository, not of the installed project.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.results import TITLES  # noqa: E402

# Headings of the seven measurements, 1 to 7, as results.md writes them.
SECTION_HEADINGS = tuple(f"## {number}. {title}" for number, (title, _) in sorted(TITLES.items()))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the tiny benchmarks once for every test of this file; returns (process, results page)."""
    out = tmp_path_factory.mktemp("bench")
    output = out / "results.md"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--output", str(output), "--work-dir", str(out / "work")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    text = output.read_text(encoding="utf-8") if output.is_file() else ""
    return process, text


@pytest.mark.slow
def test_tiny_run_exits_zero(tiny_run):
    process, _ = tiny_run
    assert process.returncode == 0, process.stderr[-4000:]


def test_headings_cover_seven_items():
    assert len(SECTION_HEADINGS) == 7


@pytest.mark.slow
@pytest.mark.parametrize("heading", SECTION_HEADINGS)
def test_tiny_run_writes_section(tiny_run, heading):
    _, text = tiny_run
    assert heading in text


@pytest.mark.slow
def test_tiny_run_has_no_failed_section(tiny_run):
    _, text = tiny_run
    verdicts = re.findall(r"Verdict: \*\*([a-z ]+)\*\*", text)
    assert "failed" not in verdicts


@pytest.mark.slow
def test_tiny_run_records_machine(tiny_run):
    _, text = tiny_run
    assert "## Machine" in text
    assert "## Packages" in text
    assert "| tensorflow |" in text


@pytest.mark.slow
def test_tiny_run_times_pipeline(tiny_run):
    # Items 6 and 7 ran `make repro` in the copy, so both report figures
    # instead of a skip or a failure.
    _, text = tiny_run
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "skipped" not in summary
    assert "make repro failed" not in summary

