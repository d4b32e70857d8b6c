"""The machine and software a benchmark ran on, as recorded in results.md."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from blindspots import runinfo

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    cores: int
    memory_gib: float
    python: str
    platform: str
    packages: dict[str, str]


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """Return the first `model name` of /proc/cpuinfo, or the platform's processor name."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib(meminfo: Path = MEMINFO) -> float:
    """Return MemTotal of /proc/meminfo in GiB, or 0.0 when it cannot be read."""
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def load_average() -> float:
    """Return the 1-minute load average: runnable processes, averaged over the last minute."""
    return os.getloadavg()[0]


def describe_machine() -> MachineInfo:
    return MachineInfo(
        cpu_model=cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=memory_gib(),
        python=platform.python_version(),
        platform=platform.platform(),
        packages=runinfo.package_versions(),
    )
