"""Item 6: `dvc repro` and `dvc status` when nothing changed since a full pipeline run."""

from __future__ import annotations

import logging
import subprocess
import sys

from benchmarks import profiles
from benchmarks.results import MET, MISSED, NOT_MEASURED, Profile, Section, Table, new_section, plural
from benchmarks.settings import Budget
from benchmarks.timing import Task, spread, time_rounds
from benchmarks.workspace import Workspace

logger = logging.getLogger(__name__)

MAX_SECONDS = 3.0
UP_TO_DATE = "up to date"
COMMANDS = {
    "dvc repro": ["dvc", "repro"],
    "dvc status": ["dvc", "status"],
    # What a user types: it also regenerates conf/runs.yaml first.
    "make repro": ["make", "-o", ".venv/.installed", "repro"],
}
# Commands judged against the target; `make repro` is shown for context.
JUDGED = ("dvc repro", "dvc status")


def command_task(workspace: Workspace, command: list[str], outputs: list[str]) -> Task:
    """Return a `time_rounds` task that runs `command` in the workspace and keeps its output in `outputs`."""
    env = workspace.environment()

    def run() -> None:
        result = subprocess.run(command, cwd=workspace.root, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed with exit code {result.returncode}: {result.stderr[-2000:]}")
        outputs.append(result.stdout + result.stderr)

    return Task(run, 1.0)


def measure(workspace: Workspace, budget: Budget, origin: str) -> Section:
    """Time the no-op commands in `workspace`.

    `origin` is a sentence for results.md naming the full pipeline run that
    left the workspace up to date.
    """
    section = new_section(6)
    outputs: dict[str, list[str]] = {name: [] for name in COMMANDS}
    tasks = {name: command_task(workspace, command, outputs[name]) for name, command in COMMANDS.items()}
    timings = time_rounds(tasks, budget.dvc_repeats, warmup=1)

    stale = [name for name in JUDGED if not all(UP_TO_DATE in text for text in outputs[name])]
    rows = [
        [
            f"`{' '.join(COMMANDS[name])}`",
            f"{timing.median_seconds:.2f}",
            spread(timing.seconds),
            "yes" if name in JUDGED else "context",
        ]
        for name, timing in timings.items()
    ]
    section.method = [
        f"{origin} Then each command ran once untimed and {plural(budget.dvc_repeats, 'time')} timed, in rounds. "
        "Every run of the judged commands must report that data and pipelines are up to date.",
    ]
    section.tables.append(Table(["command", "median (s)", "range (s)", "judged"], rows))
    worst = max(JUDGED, key=lambda name: timings[name].median_seconds)
    section.headline = f"{worst}: {timings[worst].median_seconds:.2f} s"
    if stale:
        section.verdict = NOT_MEASURED
        sample = outputs[stale[0]][-1][-1500:]
        section.notes.append(
            f"{', '.join(stale)} did not report '{UP_TO_DATE}', so the pipeline was not clean:\n\n```\n{sample}\n```"
        )
        return section
    section.verdict = MET if timings[worst].median_seconds <= MAX_SECONDS else MISSED
    if section.verdict == MISSED:
        stats = profiles.profile_command(
            ["dvc", *COMMANDS[worst][1:]],
            workspace.root,
            workspace.environment(),
            workspace.root.parent / f"{workspace.root.name}-dvc.prof",
            timeout_s=600,
        )
        section.profiles.append(
            Profile(
                f"`{worst}` under cProfile, by cumulative time",
                profiles.function_table(stats, "cumulative"),
                f"`{sys.executable} -m cProfile -m {' '.join(COMMANDS[worst])}` in the workspace.",
            )
        )
        by_own_time = profiles.function_table(stats, "tottime", top=10)
        section.profiles.append(Profile(f"`{worst}` under cProfile, by own time", by_own_time))
    return section
