"""Profiles that name where the time goes when a target is missed.

`trace_ops` runs a task under `tf.profiler.experimental` and sums the time
of each TensorFlow op type on the executor threads, read from the trace's
XPlane protobuf. `profile_command` runs a Python command under cProfile and
lists the functions with the most time.
"""

from __future__ import annotations

import collections
import logging
import pstats
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from benchmarks.results import Table

logger = logging.getLogger(__name__)

# Ops that only call a function body, whose own ops are traced separately.
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall", "While", "If", "StatelessWhile", "StatelessIf"})


@dataclass(frozen=True)
class OpTime:
    """Total executor time of one TensorFlow op type during a trace."""

    op_type: str
    count: int
    milliseconds: float


def _xplane_module():
    # TensorFlow 2.20 ships the XPlane protobuf under tensorflow.tsl.
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    return xplane_pb2


def summarise_xplane(path: Path) -> list[OpTime]:
    """Sum op time by op type over all threads of one `.xplane.pb` file, largest first.

    An op event's metadata name is `<node name>:<op type>` and its display
    name is the op type. Ops run on the executor threads (`tf_Compute`) and,
    inside tf.data map functions, on the tf.data thread pool. Other events
    (executor bookkeeping, Eigen thread regions, tf.data iterator spans,
    Python frames) have no display name and are skipped. Times of ops that
    overlap on two threads both count, so the total can exceed the wall time.
    """
    xplane_pb2 = _xplane_module()
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    milliseconds: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                op_type = metadata.display_name
                if not op_type or ":" not in metadata.name or op_type in CALL_OPS:
                    continue
                milliseconds[op_type] += event.duration_ps / 1e9
                counts[op_type] += 1
    return [OpTime(name, counts[name], value) for name, value in milliseconds.most_common()]


def trace_ops(task: Callable[[], object], log_dir: Path) -> list[OpTime]:
    """Run `task` once under the TensorFlow profiler and return its op times, largest first."""
    import tensorflow as tf

    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    tf.profiler.experimental.start(str(log_dir))
    try:
        task()
    finally:
        tf.profiler.experimental.stop()
    traces = sorted(log_dir.glob("plugins/profile/*/*.xplane.pb"))
    if not traces:
        raise FileNotFoundError(f"the TensorFlow profiler wrote no .xplane.pb file under {log_dir}")
    return summarise_xplane(traces[-1])


def op_comparison_table(profiles: Mapping[str, Sequence[OpTime]], top: int = 12) -> Table:
    """Tabulate the `top` op types of the first profile, with their time in every profile.

    Columns give milliseconds per profile and the first profile's share of
    its own total op time.
    """
    names = list(profiles)
    first = profiles[names[0]]
    total = sum(op.milliseconds for op in first) or 1.0
    by_type = {name: {op.op_type: op for op in ops} for name, ops in profiles.items()}
    headers = ["op type", f"ops in {names[0]}", f"share of {names[0]} op time"] + [f"ms in {name}" for name in names]
    rows = []
    for op in first[:top]:
        row = [op.op_type, str(op.count), f"{100.0 * op.milliseconds / total:.1f}%"]
        for name in names:
            other = by_type[name].get(op.op_type)
            row.append(f"{other.milliseconds:.1f}" if other else "0")
        rows.append(row)
    totals = ["all ops", str(sum(op.count for op in first)), "100%"]
    totals += [f"{sum(op.milliseconds for op in profiles[name]):.1f}" for name in names]
    rows.append(totals)
    return Table(headers, rows)


def profile_command(
    module_args: Sequence[str], cwd: Path, env: Mapping[str, str], output: Path, timeout_s: float
) -> pstats.Stats:
    """Run `python -m <module_args>` under cProfile in `cwd` and return its statistics.

    Example: `profile_command(["dvc", "status"], ...)` profiles `dvc status`.
    """
    command = [sys.executable, "-m", "cProfile", "-o", str(output), "-m", *module_args]
    result = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout_s)
    if not output.is_file():
        raise RuntimeError(f"cProfile wrote no statistics for {' '.join(module_args)}: {(result.stdout + result.stderr)[-2000:]}")
    return pstats.Stats(str(output))


def function_table(stats: pstats.Stats, sort: str = "cumulative", top: int = 15) -> Table:
    """Tabulate the `top` functions of `stats` by `sort` ('cumulative' or 'tottime').

    By cumulative time, functions above 90% of the whole run are left out:
    they are the entry chain (runpy, the CLI's main) that encloses all work.
    """
    entries = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        entries.append((filename, line, function, calls, own, cumulative))
    index = 5 if sort == "cumulative" else 4
    entries.sort(key=lambda entry: entry[index], reverse=True)
    if sort == "cumulative" and entries:
        whole_run = entries[0][5]
        entries = [entry for entry in entries if entry[5] <= 0.9 * whole_run]
    rows = []
    for filename, line, function, calls, own, cumulative in entries[:top]:
        location = f"{_short_path(filename)}:{line}" if line else filename
        rows.append([f"`{function}`", location, str(calls), f"{own:.3f}", f"{cumulative:.3f}"])
    return Table(["function", "file:line", "calls", "own s", "cumulative s"], rows)


def _short_path(filename: str) -> str:
    """Cut a path to the part after site-packages/ or the last three components."""
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1]
    return "/".join(Path(filename).parts[-3:])
