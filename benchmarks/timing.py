"""Repeated timing: medians of N repeats and ratios taken round by round.

Tasks that are compared run in the same rounds, one repeat of each per
round, so a slowdown of the shared machine hits every task of a round and
cancels out of their ratio. The start of each round moves one task along,
so no task always runs first.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """Wall times of one task, one per repeat, and the work each repeat does."""

    name: str
    seconds: tuple[float, ...]
    # Images, placements or FLOPs processed by one repeat.
    items_per_repeat: float

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        """Items per second at the median repeat time."""
        return self.items_per_repeat / self.median_seconds

    @property
    def repeats(self) -> int:
        return len(self.seconds)


@dataclass(frozen=True)
class Task:
    """One repeat of a timed task: `run` is timed, `setup` (if any) runs untimed just before it."""

    run: Callable[[], object]
    # Images, placements or FLOPs processed by one call of `run`.
    items: float
    setup: Callable[[], object] | None = None


def time_call(function: Callable[[], object]) -> float:
    """Run `function` once and return its wall time in seconds."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def time_rounds(tasks: Mapping[str, Task], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time each task `repeats` times, one repeat of every task per round.

    Each task first runs `warmup` times untimed, so tracing and caches are
    not counted. `run` must block until its work is done, e.g. by reading a
    result back with `.numpy()`.
    """
    names = list(tasks)
    for name in names:
        for _ in range(warmup):
            _run_once(tasks[name])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        offset = round_index % len(names)
        for name in names[offset:] + names[:offset]:
            seconds[name].append(_run_once(tasks[name]))
        logger.debug("round %d: %s", round_index, {name: values[-1] for name, values in seconds.items()})
    return {name: Timing(name, tuple(seconds[name]), float(tasks[name].items)) for name in names}


def _run_once(task: Task) -> float:
    if task.setup is not None:
        task.setup()
    return time_call(task.run)


def _check_paired(numerator: Timing, denominator: Timing) -> None:
    if numerator.repeats != denominator.repeats:
        raise ValueError(
            f"cannot pair {numerator.name} ({numerator.repeats} repeats) with {denominator.name} ({denominator.repeats} repeats)"
        )


def time_ratio(numerator: Timing, denominator: Timing) -> float:
    """Return the median over rounds of numerator time / denominator time.

    Both timings must come from the same `time_rounds` call, so that round
    i of one ran next to round i of the other.
    """
    _check_paired(numerator, denominator)
    return statistics.median(a / b for a, b in zip(numerator.seconds, denominator.seconds))


def rate_ratio(numerator: Timing, denominator: Timing) -> float:
    """Return the median over rounds of numerator rate / denominator rate (items/s over items/s).

    Pairs rounds as `time_ratio` does. Unlike a time ratio, this compares
    tasks that process different numbers of items per repeat.
    """
    _check_paired(numerator, denominator)
    pairs = zip(numerator.seconds, denominator.seconds)
    return statistics.median(
        (numerator.items_per_repeat / a) / (denominator.items_per_repeat / b) for a, b in pairs
    )


def spread(values: Sequence[float]) -> str:
    """Format the range of `values` as 'min-max', with three significant digits below 100 and none above."""
    return f"{_significant(min(values))}-{_significant(max(values))}"


def _significant(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
