"""How long each benchmark runs, and the inputs every benchmark shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Budget:
    """Repeat counts and sizes that bound each benchmark's run time."""

    # Timed repeats per task; every figure is the median over them.
    repeats: int
    # Untimed runs of each task before the first timed repeat (tracing, caches).
    warmup: int
    # Train steps in one timed repeat.
    steps_per_repeat: int
    # Batches the input pipeline delivers in one timed repeat.
    pipeline_batches: int
    # Sweep or inference batches in one timed repeat.
    sweep_batches: int
    # Side of the square float32 matrices of the dense-matmul peak.
    matmul_size: int
    matmuls_per_repeat: int
    # Runs of each no-op DVC command.
    dvc_repeats: int
    # Train steps traced by the TensorFlow profiler for a missed target.
    profile_steps: int
    # `make repro` is stopped after this many seconds.
    repro_timeout_s: float
    # Padding modes timed by item 1.
    modes: tuple[str, ...] = ("tf_same", "zero_explicit", "reflect", "symmetric", "replicate", "circular", "partial")


# On 2 shared cores of an AMD EPYC VM, a train step at 192 x 320, batch 16,
# took 0.6-1.3 s and the first call of each network (tracing) 30-60 s.
# Items 1 to 5 then took 12 minutes, 7 of them for the 8 networks of item 1.
FULL = Budget(
    repeats=5,
    warmup=1,
    steps_per_repeat=3,
    pipeline_batches=40,
    sweep_batches=3,
    matmul_size=2048,
    matmuls_per_repeat=3,
    dvc_repeats=5,
    profile_steps=2,
    repro_timeout_s=4 * 3600.0,
)
TINY = Budget(
    repeats=3,
    warmup=1,
    steps_per_repeat=1,
    pipeline_batches=2,
    sweep_batches=1,
    matmul_size=256,
    matmuls_per_repeat=2,
    dvc_repeats=2,
    profile_steps=1,
    repro_timeout_s=900.0,
    # One zero mode, one copying mode and reflect, which times the backbone path.
    modes=("tf_same", "circular", "reflect"),
)


@dataclass(frozen=True)
class Context:
    """Inputs shared by the in-process benchmarks (items 1 to 5)."""

    # Validated params of the workspace (`blindspots.config.load_params`).
    config: Any
    prepared_dir: Path
    # A trained model of the workspace's first run, or None when no pipeline ran.
    model_dir: Path | None
    # Scratch folder for profiler traces and unused checkpoint paths.
    scratch: Path
    num_classes: int
    seed: int = 0
    # Class names in id order, which `model.class_weights` is keyed by.
    class_names: tuple[str, ...] = ()
