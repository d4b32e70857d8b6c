"""notebooks/study.ipynb: stored without outputs, and runs top to bottom on a small study."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from test_report import write_study

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "study.ipynb"


def test_notebook_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.outputs for cell in code_cells] == [[] for _ in code_cells]
    assert [cell.execution_count for cell in code_cells] == [None for _ in code_cells]


def _kernelspec_dir(tmp_path: Path) -> Path:
    """Write a python3 kernelspec that starts this interpreter, so the kernel is the venv's Python."""
    folder = tmp_path / "jupyter"
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_notebook_runs_on_study(tmp_path, monkeypatch):
    # Slow: starts a kernel that imports pandas and matplotlib and draws a figure (about 20 s on 2 CPU cores).
    root = tmp_path / "study"
    root.mkdir()
    write_study(root)
    monkeypatch.setenv("BLINDSPOTS_ROOT", str(root))
    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec_dir(tmp_path)))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert [output for output in outputs if output.output_type == "error"] == []
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    # Box sizes, rate by row and the one analysis figure of variant `even`.
    assert len(images) == 3
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert f"root: {root.resolve()}" in printed
