"""Run every benchmark and write the results page.

    python -m benchmarks.run                 # everything, including the whole default `make repro`
    python -m benchmarks.run --skip-repro    # items 1-5 only (12 minutes on 2 shared cores)
    python -m benchmarks.run --tiny          # every item at tiny sizes, a smoke test (6 minutes)

The pipeline runs in a temporary copy of the repository (`--work-dir`),
never in the repository itself. Items 6 and 7 run `make repro` there first;
items 1 to 5 then use that copy's prepared data and trained model. With
`--skip-repro`, the copy runs only the download and prepare stages.
Exit status: 0 when every benchmark ran (met or missed), 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import blindspots  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads
from benchmarks import machine
from benchmarks.results import FAILED, NOT_MEASURED, TITLES, Section, new_section, render_results
from benchmarks.settings import FULL, TINY, Budget, Context
from benchmarks.workspace import Workspace, short_training_params, tiny_params
from blindspots import runinfo

logger = logging.getLogger("benchmarks")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results.md"
# A tiny run writes beside the ignored outputs, so it never replaces the real results.
TINY_OUTPUT = REPO_ROOT / "benchmarks" / "out" / "results-tiny.md"
# Train steps per run in the fallback pipeline of item 6.
SHORT_TRAIN_STEPS = 20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="run every benchmark at the tiny preset's sizes (a smoke test)")
    parser.add_argument("--skip-repro", action="store_true", help="skip items 6 and 7, which run the whole pipeline")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=(
            f"results page to write (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)}, "
            f"or {TINY_OUTPUT.relative_to(REPO_ROOT)} with --tiny)"
        ),
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="empty folder for the repository copy, kept afterwards (default: a temporary folder, removed afterwards)",
    )
    parser.add_argument(
        "--repro-timeout",
        type=float,
        default=None,
        help="minutes after which make repro is stopped (default: 240, or 15 with --tiny)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging verbosity")
    return parser.parse_args(argv)


def run_section(number: int, measure: Callable[[], Section]) -> Section:
    """Run one benchmark; a failure becomes a `failed` section with the error instead of stopping the run."""
    load_before = machine.load_average()
    start = time.perf_counter()
    logger.info("item %d: %s", number, TITLES[number][0])
    try:
        section = measure()
    except Exception as error:  # noqa: BLE001 - the other benchmarks still run, and the page shows the error
        logger.exception("item %d failed", number)
        section = new_section(number, verdict=FAILED)
        section.headline = f"{type(error).__name__}: {error}"[:200]
        section.notes.append(f"The benchmark raised an error:\n\n```\n{traceback.format_exc()[-3000:]}\n```")
    section.seconds = time.perf_counter() - start
    section.load_before = load_before
    section.load_after = machine.load_average()
    logger.info("item %d: %s (%s), %.0f s", number, section.verdict, section.headline, section.seconds)
    return section


def skipped(number: int, reason: str) -> Section:
    section = new_section(number, verdict=NOT_MEASURED)
    section.headline = "skipped"
    section.notes.append(reason)
    return section


def make_context(workspace: Workspace, scratch: Path) -> Context:
    classes = json.loads((workspace.prepared_dir / "classes.json").read_text(encoding="utf-8"))
    return Context(
        config=workspace.load_config(),
        prepared_dir=workspace.prepared_dir,
        model_dir=workspace.trained_model_dir(),
        scratch=scratch,
        num_classes=len(classes),
        seed=int(workspace.first_run()[1]),
        class_names=tuple(classes),
    )


def in_process_sections(context: Context, budget: Budget) -> list[Section]:
    """Run items 1 to 5, which share one tf_same train step."""
    from benchmarks import flops, input_pipeline, padding_modes, peer, sweep_throughput, train_steps
    from blindspots.training.trainer import seed_everything

    # The train stage seeds and turns on op determinism, so the steps here do too.
    seed_everything(context.seed)
    holder: dict[str, train_steps.TrainStep] = {}

    def reference() -> train_steps.TrainStep:
        if "step" not in holder:
            holder["step"] = train_steps.reference_step(context)
        return holder["step"]

    return [
        run_section(1, lambda: padding_modes.measure(context, budget, reference())),
        run_section(2, lambda: peer.measure(context, budget, reference())),
        run_section(3, lambda: flops.measure(context, budget, reference())),
        run_section(4, lambda: input_pipeline.measure(context, budget, reference())),
        run_section(5, lambda: sweep_throughput.measure(context, budget)),
    ]


def pipeline_sections(workspace: Workspace, work_root: Path, budget: Budget, tiny: bool) -> list[Section]:
    """Run item 7 (`make repro`), then item 6 on the finished pipeline.

    When the full `make repro` does not finish in time, item 6 runs on a
    second copy whose pipeline trains only `SHORT_TRAIN_STEPS` steps per
    run and sweeps a coarser grid. It has the same stages and output files,
    which are what a no-op DVC command checks.
    """
    from benchmarks import dvc_noop, repro

    completed: dict[str, bool] = {}

    def measure_repro() -> Section:
        section, completed["repro"] = repro.measure(workspace, budget, tiny)
        return section

    item7 = run_section(7, measure_repro)
    if completed.get("repro"):
        origin = "In the copy of item 7, right after its `make repro`."
        return [run_section(6, lambda: dvc_noop.measure(workspace, budget, origin)), item7]
    if tiny:
        return [skipped(6, "Not run, because `make repro` (item 7) did not finish."), item7]

    short = Workspace(REPO_ROOT, work_root / "repo-short", short_training_params(REPO_ROOT, SHORT_TRAIN_STEPS))

    def measure_short() -> Section:
        short.create()
        short.run(list(repro.MAKE_COMMAND), timeout_s=budget.repro_timeout_s)
        origin = (
            f"The `make repro` of item 7 did not finish, so a second copy ran `make repro` with train.steps = "
            f"{SHORT_TRAIN_STEPS}, sweep.step = 16 and sweep.grid_step = 32, which keeps every stage and output file."
        )
        return dvc_noop.measure(short, budget, origin)

    return [run_section(6, measure_short), item7]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    budget = TINY if args.tiny else FULL
    output = args.output or (TINY_OUTPUT if args.tiny else DEFAULT_OUTPUT)
    if args.repro_timeout is not None:
        budget = Budget(**{**budget.__dict__, "repro_timeout_s": 60.0 * args.repro_timeout})
    command_line = "python -m benchmarks.run " + " ".join(shlex.quote(arg) for arg in (sys.argv[1:] if argv is None else argv))

    temporary = None
    if args.work_dir is None:
        temporary = tempfile.mkdtemp(prefix="blindspots-bench-")
        work_root = Path(temporary)
    else:
        work_root = args.work_dir.resolve()
    workspace = Workspace(REPO_ROOT, work_root / "repo", tiny_params(REPO_ROOT) if args.tiny else None)
    try:
        workspace.create()
        sections: list[Section] = []
        if args.skip_repro:
            sections += [skipped(6, "Skipped with --skip-repro."), skipped(7, "Skipped with --skip-repro.")]
        else:
            sections += pipeline_sections(workspace, work_root, budget, args.tiny)
        workspace.ensure_prepared()
        context = make_context(workspace, work_root / "scratch")
        sections = in_process_sections(context, budget) + sections
    finally:
        if temporary is not None:
            workspace.remove()
            shutil.rmtree(temporary, ignore_errors=True)

    sections.sort(key=lambda section: section.number)
    preamble = [
        "Every figure is the median of N timed repeats after untimed warm-up repeats; ratios pair the repeats of one "
        "round. The machine may be shared with other work, so each section gives the load average around it.",
    ]
    if args.tiny:
        preamble.insert(0, "**Tiny run**: every benchmark ran at the sizes of `conf/presets/tiny.yaml`, to check that "
                        "the benchmarks work. The figures say nothing about the targets.")
    commands = [
        "make bench  # runs .venv/bin/python -m benchmarks.run",
        command_line,
        "make -o .venv/.installed repro  # items 6 and 7, in a fresh copy of the repository",
    ]
    logger.info("rendering the results page")
    text = render_results(sections, machine.describe_machine(), commands, preamble)
    runinfo.write_text(output, text)
    logger.info("wrote %s", output)
    return 1 if any(section.verdict == FAILED for section in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
