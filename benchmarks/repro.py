"""Item 7: wall time and peak memory of the whole `make repro` on an installed environment.

`make repro` runs in the workspace under `/usr/bin/time -v` (when
installed), while a thread polls the process tree with psutil every half
second. GNU time reports the largest resident set of any single process
of the tree. The poller sums the resident sets of all processes alive at
once, and records each stage command's own peak and how long it ran.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks.results import MET, MISSED, NOT_MEASURED, Profile, Section, Table, new_section
from benchmarks.settings import Budget
from benchmarks.workspace import Workspace

logger = logging.getLogger(__name__)

# With `-o .venv/.installed`, make treats the environment stamp as up to
# date and skips the install step, which is the "already installed" case.
MAKE_COMMAND = ("make", "-o", ".venv/.installed", "repro")
GNU_TIME = Path("/usr/bin/time")
MAX_MINUTES = 15.0
MAX_GIB = 4.0
POLL_SECONDS = 0.5


@dataclass
class CommandUsage:
    """Peak memory and lifetime of one command line in the process tree."""

    command: str
    first_seen: float
    last_seen: float
    peak_rss: int = 0


@dataclass
class TreeUsage:
    """Poller samples: the peak summed RSS of the whole tree and each command's usage."""

    peak_rss: int = 0
    commands: dict[str, CommandUsage] = field(default_factory=dict)


def command_key(cmdline: list[str]) -> str | None:
    """Return a short key for a stage or DVC process, or None for helpers (make, sh, time).

    `['/x/.venv/bin/python3', '/x/.venv/bin/blindspots', 'train', '--variant', 'a', '--seed', '0']`
    becomes `blindspots train --variant a --seed 0`.
    """
    for index, part in enumerate(cmdline):
        name = Path(part).name
        if name in ("blindspots", "dvc"):
            return " ".join([name, *cmdline[index + 1 :]])
    return None


def poll_tree(root: psutil.Process, usage: TreeUsage, stop: threading.Event) -> None:
    """Sample the RSS of `root` and its descendants until `stop` is set."""
    while not stop.is_set():
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = 0
        now = time.perf_counter()
        for process in processes:
            try:
                rss = process.memory_info().rss
                key = command_key(process.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += rss
            if key is not None:
                entry = usage.commands.setdefault(key, CommandUsage(key, now, now))
                entry.last_seen = now
                entry.peak_rss = max(entry.peak_rss, rss)
        usage.peak_rss = max(usage.peak_rss, total)
        stop.wait(POLL_SECONDS)


def parse_gnu_time(text: str) -> dict[str, float]:
    """Read the maximum RSS (KiB) and elapsed wall time (s) from `/usr/bin/time -v` output."""
    values: dict[str, float] = {}
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if match:
        values["max_rss_kib"] = float(match.group(1))
    match = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if match:
        seconds = 0.0
        for part in match.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        values["elapsed_s"] = seconds
    return values


def run_make_repro(workspace: Workspace, timeout_s: float, log_path: Path) -> tuple[int | None, float, TreeUsage, str]:
    """Run `make repro` in the workspace and return (exit code or None on timeout, seconds, usage, GNU time output)."""
    command = list(MAKE_COMMAND)
    time_log = log_path.with_suffix(".time")
    if GNU_TIME.is_file():
        command = [str(GNU_TIME), "-v", "-o", str(time_log), *command]
    usage = TreeUsage()
    stop = threading.Event()
    logger.info("item 7: %s in %s (output in %s)", " ".join(command), workspace.root, log_path)
    with open(log_path, "w", encoding="utf-8") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=workspace.root, env=workspace.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        poller = threading.Thread(target=poll_tree, args=(psutil.Process(process.pid), usage, stop), daemon=True)
        poller.start()
        try:
            code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.error("make repro ran past %.0f s; stopping its process group %d", timeout_s, process.pid)
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            code = None
        seconds = time.perf_counter() - start
        stop.set()
        poller.join()
    time_text = time_log.read_text(encoding="utf-8") if time_log.is_file() else ""
    return code, seconds, usage, time_text


def stage_table(usage: TreeUsage) -> Table:
    rows = [
        [f"`{entry.command}`", f"{entry.last_seen - entry.first_seen:.0f}", f"{entry.peak_rss / 2**30:.2f}"]
        for entry in sorted(usage.commands.values(), key=lambda entry: entry.first_seen)
    ]
    return Table(["command", "seconds alive (+-0.5)", "peak RSS (GiB)"], rows)


def stage_summary_table(usage: TreeUsage, wall_seconds: float) -> Table:
    """Sum the lifetimes of the stage processes by subcommand (train, sweep, ...), largest first."""
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for entry in usage.commands.values():
        words = entry.command.split()
        if words[0] != "blindspots" or len(words) < 2:
            continue
        totals[words[1]] = totals.get(words[1], 0.0) + entry.last_seen - entry.first_seen
        counts[words[1]] = counts.get(words[1], 0) + 1
    rows = [
        [f"`blindspots {name}`", str(counts[name]), f"{seconds / 60:.1f}", f"{100.0 * seconds / wall_seconds:.0f}%"]
        for name, seconds in sorted(totals.items(), key=lambda item: item[1], reverse=True)
    ]
    return Table(["stage command", "processes", "minutes", "share of wall time"], rows)


def measure(workspace: Workspace, budget: Budget, tiny: bool) -> tuple[Section, bool]:
    """Run and judge `make repro`; return the section and whether the pipeline completed."""
    section = new_section(7)
    log_path = workspace.root.parent / f"{workspace.root.name}-make-repro.log"
    code, seconds, usage, time_text = run_make_repro(workspace, budget.repro_timeout_s, log_path)
    gnu = parse_gnu_time(time_text)
    tree_gib = usage.peak_rss / 2**30
    single_gib = gnu.get("max_rss_kib", 0.0) / 2**20

    rows = [
        ["wall time", f"{seconds / 60:.2f} min" + (" (stopped at the time limit)" if code is None else ""), f"<= {MAX_MINUTES:g} min"],
        ["peak RSS, sum over the process tree (psutil, every 0.5 s)", f"{tree_gib:.2f} GiB", f"<= {MAX_GIB:g} GiB"],
        ["peak RSS of the largest single process (GNU time)", f"{single_gib:.2f} GiB" if gnu else "GNU time not installed", ""],
    ]
    section.method = [
        f"`{' '.join(MAKE_COMMAND)}` in a fresh copy of the repository with an empty DVC cache"
        + (" and the tiny params (preset tiny, first variant only)" if tiny else ", with the repository's params.yaml")
        + f", under `{GNU_TIME} -v` with the process tree polled by psutil.",
    ]
    section.tables.append(Table(["figure", "measured", "target"], rows))
    caption = "Lifetimes of the stage processes from the poller, summed by stage command."
    section.profiles.append(Profile("time by stage command", stage_summary_table(usage, seconds), caption))
    caption = "Lifetime and peak RSS of each stage process, from the poller."
    section.profiles.append(Profile("time and memory by process", stage_table(usage), caption))

    if code not in (0, None):
        section.verdict = NOT_MEASURED
        section.headline = f"make repro failed with exit code {code}"
        section.notes.append(f"make repro failed with exit code {code}. The last lines of {log_path}:\n\n```\n{_tail(log_path)}\n```")
        return section, False
    section.headline = f"{seconds / 60:.1f} min, {tree_gib:.2f} GiB"
    if tiny:
        section.verdict = NOT_MEASURED
        section.notes.append("The tiny params make this a smoke test, so the targets for the default params are not judged.")
        return section, code == 0
    met = code == 0 and seconds <= MAX_MINUTES * 60 and tree_gib <= MAX_GIB
    section.verdict = MET if met else MISSED
    if code is None:
        section.notes.append(
            f"make repro was stopped after {budget.repro_timeout_s / 60:.0f} min (--repro-timeout), so the wall time is a "
            "lower bound. The table below shows how far each stage got."
        )
    return section, code == 0


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])
