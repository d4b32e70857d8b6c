"""Atomic file writes and the provenance record every stage leaves behind."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

logger = logging.getLogger(__name__)

RECORDED_PACKAGES = (
    "blindspots",
    "tensorflow",
    "tf-keras",
    "tf-models-official",
    "numpy",
    "dvc",
    "dvclive",
    "hydra-core",
    "omegaconf",
    "pandas",
    "matplotlib",
    "pycocotools",
)


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling path that replaces `target` only on success.

    Works for files and for directories: the caller creates whatever it
    wants at the yielded path. On an exception the temporary path is
    removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield temp
        if target.is_dir() and not target.is_symlink():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, backup)
            os.replace(temp, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(temp, target)
    finally:
        shutil.rmtree(temp.parent, ignore_errors=True)


def files_digest(files: list[Path], root: Path) -> str:
    """Return the SHA-256 of the files' paths relative to `root`, sizes and contents, in path order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda item: item.relative_to(root).as_posix()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_yaml(path: Path | str, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(cwd: Path | str = ".") -> dict[str, Any]:
    """Return the HEAD commit and whether tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def write_run_record(out_dir: Path | str, stage: str, config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write `run.json` with the resolved config, package versions and git commit."""
    record = {
        "stage": stage,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "packages": package_versions(),
        "git": git_commit(),
    }
    if extra:
        record.update(extra)
    path = Path(out_dir) / "run.json"
    write_json(path, record)
    return path


@contextlib.contextmanager
def stage_timer(stage: str) -> Iterator[None]:
    """Log the start and the elapsed time of a stage."""
    start = time.perf_counter()
    logger.info("stage %s: start", stage)
    yield
    logger.info("stage %s: done in %.1f s", stage, time.perf_counter() - start)
