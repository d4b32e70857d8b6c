"""A temporary copy of the repository in which the benchmarks run the pipeline.

The copy contains the working tree's tracked and untracked, not ignored files
(the files `git ls-files -co --exclude-standard` lists), so no pipeline
output of the repository is read or overwritten. `.venv` is a symlink to
the repository's environment. The copy gets its own git repository with
one commit, because DVC and DVCLive need one, and its own DVC cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

import yaml

logger = logging.getLogger(__name__)

TINY_PRESET = Path("conf/presets/tiny.yaml")
# Top-level paths never copied: pipeline outputs, the environment and caches.
EXCLUDED = (".git", ".venv", ".dvc/cache", ".dvc/tmp", "data", "models", "runs", "metrics", "reports", "dvclive")


class WorkspaceError(RuntimeError):
    """A command in the workspace failed. The message contains the command and the end of its output."""


def list_source_files(repo: Path) -> list[Path]:
    """Return the repository's files that a fresh clone with local edits would have, relative to `repo`.

    Uses `git ls-files -co --exclude-standard`, which lists tracked files
    and untracked files that .gitignore does not exclude.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode("utf-8")
    files = [Path(name) for name in listed.split("\0") if name]
    return [path for path in files if (repo / path).is_file() and not _excluded(path)]


def _excluded(path: Path) -> bool:
    text = path.as_posix()
    return any(text == prefix or text.startswith(prefix + "/") for prefix in EXCLUDED)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `update` merged in, recursing into nested mappings."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def tiny_params(repo: Path) -> dict[str, Any]:
    """Return the repository's params with the tiny preset merged over them, keeping the first variant and seed.

    The preset's values are written into params.yaml itself, because DVC
    reads each stage's params from that file alone (every key a stage lists
    must be there) and because params.yaml overrides a preset. The variant
    keeps its padding and alignment but takes the preset's input size and
    width.
    """
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8")) or {}
    preset = yaml.safe_load((repo / TINY_PRESET).read_text(encoding="utf-8")) or {}
    variants = params.get("variants") or {}
    if not variants:
        raise WorkspaceError(f"{repo / 'params.yaml'}: no variants defined, so there is no run to benchmark")
    name, variant = next(iter(variants.items()))
    variant = variant or {}
    tiny_variant: dict[str, Any] = {"seeds": [int((variant.get("seeds") or [0])[0])]}
    for key in ("padding", "alignment"):
        if variant.get(key) is not None:
            tiny_variant[key] = variant[key]

    params = merge(params, preset)
    params["variants"] = {name: tiny_variant}
    # Fewer sweep positions keep a sweep stage, if the pipeline has one, at seconds.
    params["sweep"] = merge(params.get("sweep") or {}, {"step": 8, "grid_step": 16})
    # The preset's values are already merged in. dvc.yaml lists `preset` as a
    # param of every stage, so the key stays, with an empty value.
    params["preset"] = ""
    return params


def short_training_params(repo: Path, steps: int) -> dict[str, Any]:
    """Return the repository's params with `train.steps` set to `steps` and a coarse sweep grid.

    The pipeline keeps every stage and writes the same output files as with
    the repository's params. Only training and the sweep do less work.
    """
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8")) or {}
    return merge(params, {"train": {"steps": int(steps)}, "sweep": {"step": 16, "grid_step": 32}})


class Workspace:
    """A copy of `repo` at `root`; `create` fills it, `remove` deletes it.

    `params`, when given, replaces the copy's params.yaml.
    """

    def __init__(self, repo: Path, root: Path, params: dict[str, Any] | None = None) -> None:
        self.repo = Path(repo).resolve()
        self.root = Path(root).resolve()
        self.params = params

    def create(self) -> None:
        if self.root.exists() and any(self.root.iterdir()):
            raise WorkspaceError(f"workspace {self.root} is not empty. Pass an empty or new --work-dir.")
        self.root.mkdir(parents=True, exist_ok=True)
        files = list_source_files(self.repo)
        for relative in files:
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            # copy2 keeps modification times, so make compares the copies'
            # ages as it would in the repository.
            shutil.copy2(self.repo / relative, target)
        (self.root / ".venv").symlink_to(self.repo / ".venv", target_is_directory=True)
        if self.params is not None:
            (self.root / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False), encoding="utf-8")
        # DVCLive in the train stage reads the HEAD commit, so the copy needs one.
        identity = ["-c", "user.name=blindspots benchmarks", "-c", "user.email=benchmarks@localhost"]
        self.run(["git", "init", "-q"], timeout_s=60)
        # `.venv/` in .gitignore matches directories only, not this symlink.
        with open(self.root / ".git" / "info" / "exclude", "a", encoding="utf-8") as exclude:
            exclude.write("/.venv\n")
        self.run(["git", "add", "-A"], timeout_s=60)
        self.run(["git", *identity, "commit", "-q", "--no-verify", "-m", "Benchmark workspace"], timeout_s=60)
        logger.info("workspace %s: copied %d files%s", self.root, len(files), " with its own params.yaml" if self.params else "")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def environment(self) -> dict[str, str]:
        """Return the environment for commands in the workspace.

        The package is installed editable from the repository, so PYTHONPATH
        points at the copy's src/ to run the copied code. PATH starts with
        the environment's bin/, where DVC finds the `blindspots` command.
        """
        env = dict(os.environ)
        env["PATH"] = f"{self.root / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(self.root / "src")
        env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
        return env

    def run(self, command: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Run `command` in the workspace and return the result; raise WorkspaceError if it fails."""
        logger.info("workspace: %s", " ".join(command))
        result = subprocess.run(
            list(command),
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-3000:]
            raise WorkspaceError(f"`{' '.join(command)}` failed in {self.root} with exit code {result.returncode}:\n{tail}")
        return result

    def blindspots(self, *args: str, timeout_s: float = 1800.0) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.root / ".venv" / "bin" / "blindspots"), *args], timeout_s=timeout_s)

    def load_config(self) -> Any:
        from blindspots.config.loader import load_params

        return load_params(self.root / "params.yaml")

    def first_run(self) -> tuple[str, int]:
        from blindspots.config.loader import run_ids

        return run_ids(self.load_config())[0]

    def trained_model_dir(self) -> Path | None:
        """Return the model folder of the first run when the pipeline has written it."""
        from blindspots import paths

        variant, seed = self.first_run()
        model_dir = self.root / paths.model_dir(variant, seed)
        return model_dir if (model_dir / "model.json").is_file() else None

    @property
    def prepared_dir(self) -> Path:
        from blindspots import paths

        return self.root / paths.PREPARED_DIR

    def ensure_prepared(self) -> None:
        """Run the download and prepare stages unless a pipeline run already wrote the prepared data."""
        if (self.prepared_dir / "classes.json").is_file():
            return
        self.blindspots("download")
        self.blindspots("prepare")
