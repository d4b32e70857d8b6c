"""Sections of results.md and their Markdown rendering."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Sequence

from benchmarks.machine import MachineInfo

MET = "met"
MISSED = "missed"
REPORTED = "reported"
NOT_MEASURED = "not measured"
FAILED = "failed"


# Number -> (title, target) of every measurement, in the order of results.md.
TITLES = {
    1: ("Train-step throughput by padding mode", "every mode's step time within 1.15x of tf_same"),
    2: ("Train step against a Model Garden RetinaNet peer", "ours / peer images/s >= 1.0"),
    3: ("FLOP/s of the train step against a dense-matmul peak", "reported"),
    4: ("Input-pipeline throughput against the train step", "pipeline images/s >= 3x train-step images/s"),
    5: ("Sweep placements/s against plain batched inference", "sweep / inference >= 0.85"),
    6: ("No-op `dvc repro` and `dvc status` after a full run", "<= 3 s each"),
    7: ("Whole `make repro` on an installed environment", "<= 15 min on 2 cores and <= 4 GiB peak memory"),
}


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """Return e.g. '1 step' or '3 steps'. Pass `plural_noun` for irregular plurals such as 'batches'."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_noun or noun + 's'}"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Profile:
    """A measured breakdown of where the time of a missed target goes."""

    title: str
    table: Table
    caption: str = ""


@dataclass
class Section:
    """One measurement of results.md: what was timed, the figures and the verdict."""

    number: int
    title: str
    target: str
    verdict: str = NOT_MEASURED
    # The figure shown in the summary table, e.g. "worst ratio 1.08x (circular)".
    headline: str = ""
    method: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    # 1-minute load averages when the measurement started and ended.
    load_before: float | None = None
    load_after: float | None = None
    seconds: float | None = None

    def markdown(self) -> str:
        parts = [f"## {self.number}. {self.title}", ""]
        parts.append(f"Target: {self.target}. Verdict: **{self.verdict}**" + (f" ({self.headline})." if self.headline else "."))
        if self.load_before is not None and self.load_after is not None and self.seconds is not None:
            parts.append(
                f"Measured in {self.seconds:.0f} s, with a 1-minute load average of "
                f"{self.load_before:.2f} at the start and {self.load_after:.2f} at the end."
            )
        parts.append("")
        for line in self.method:
            parts += [line, ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        for note in self.notes:
            parts += [f"- {note}"]
        if self.notes:
            parts.append("")
        for profile in self.profiles:
            parts += [f"**Profile: {profile.title}**", ""]
            if profile.caption:
                parts += [profile.caption, ""]
            parts += [profile.table.markdown(), ""]
        return "\n".join(parts)


def new_section(number: int, verdict: str = NOT_MEASURED) -> Section:
    """Return an empty section for measurement `number` with its title and target from `TITLES`."""
    title, target = TITLES[number]
    return Section(number, title, target, verdict=verdict)


def machine_table(machine: MachineInfo) -> Table:
    return Table(
        ["CPU model", "cores", "memory (GiB)", "Python", "platform"],
        [[machine.cpu_model, str(machine.cores), f"{machine.memory_gib:.1f}", machine.python, machine.platform]],
    )


def package_table(machine: MachineInfo) -> Table:
    return Table(["package", "version"], [[name, version] for name, version in machine.packages.items()])


def summary_table(sections: Sequence[Section]) -> Table:
    rows = [[str(section.number), section.title, section.headline, section.target, section.verdict] for section in sections]
    return Table(["#", "measurement", "figure", "target", "verdict"], rows)


def render_results(
    sections: Sequence[Section],
    machine: MachineInfo,
    commands: Sequence[str],
    preamble: Sequence[str],
    generated: dt.datetime | None = None,
) -> str:
    """Render the whole results page: machine, packages, commands, summary, then each section."""
    generated = generated or dt.datetime.now(dt.timezone.utc)
    parts = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks.run` on {generated.isoformat(timespec='seconds')}.",
        "",
    ]
    for line in preamble:
        parts += [line, ""]
    parts += ["## Machine", "", machine_table(machine).markdown(), ""]
    parts += ["## Packages", "", package_table(machine).markdown(), ""]
    parts += ["## Commands", ""]
    parts += [f"- `{command}`" for command in commands]
    parts += ["", "## Summary", "", summary_table(sections).markdown(), ""]
    for section in sections:
        parts += [section.markdown(), ""]
    return "\n".join(parts).rstrip() + "\n"
