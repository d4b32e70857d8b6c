"""Item 1: train-step throughput of each padding mode, as a time ratio to `tf_same`."""

from __future__ import annotations

import logging

from benchmarks import profiles, train_steps
from benchmarks.results import MET, MISSED, Profile, Section, Table, new_section, plural
from benchmarks.settings import Budget, Context
from benchmarks.timing import Timing, time_ratio, time_rounds, spread
from blindspots.modeling import geometry

logger = logging.getLogger(__name__)

REFERENCE = "tf_same"
MAX_TIME_RATIO = 1.15


def fits_full_network(model_cfg) -> bool:
    """Return whether the whole SSD (backbone and extra layers) accepts the input size under the mode."""
    try:
        geometry.trace_network(train_steps.input_size(model_cfg), model_cfg.padding, model_cfg.alignment)
    except geometry.GeometryError:
        return False
    return True


def _ratios(timings: dict[str, Timing]) -> dict[str, float]:
    """Return each mode's time ratio to the reference mode of the same rounds."""
    return {mode: time_ratio(timing, timings[REFERENCE]) for mode, timing in timings.items()}


def _rows(network: str, timings: dict[str, Timing], budget: Budget) -> list[list[str]]:
    rows = []
    for mode, ratio in _ratios(timings).items():
        timing = timings[mode]
        step_ms = 1000.0 * timing.median_seconds / budget.steps_per_repeat
        rows.append(
            [
                mode,
                network,
                f"{step_ms:.0f}",
                f"{timing.rate:.1f}",
                spread([timing.items_per_repeat / s for s in timing.seconds]),
                f"{ratio:.3f}",
                "yes" if ratio <= MAX_TIME_RATIO else "no",
            ]
        )
    return rows


def measure(context: Context, budget: Budget, reference: train_steps.TrainStep) -> Section:
    """Time every padding mode's train step next to `reference`, the tf_same step of `train_steps.reference_step`."""
    section = new_section(1)
    full_modes, backbone_modes = [], [REFERENCE]
    for mode in dict.fromkeys((REFERENCE, *budget.modes)):
        model_cfg = train_steps.model_config(context, padding=mode)
        (full_modes if fits_full_network(model_cfg) else backbone_modes).append(mode)

    base_cfg = train_steps.model_config(context)
    size = train_steps.input_size(base_cfg)
    batch = reference.batch

    logger.info("item 1: building full SSD steps for %s", ", ".join(full_modes))
    full_steps = {REFERENCE: reference}
    for mode in full_modes:
        if mode != REFERENCE:
            full_steps[mode] = train_steps.trainer_step(context, mode, train_steps.model_config(context, padding=mode), batch)
    full = time_rounds(
        {mode: train_steps.step_task(step, budget.steps_per_repeat) for mode, step in full_steps.items()},
        budget.repeats,
        budget.warmup,
    )
    rows = _rows("SSD", full, budget)

    backbone: dict[str, Timing] = {}
    backbone_steps: dict[str, train_steps.TrainStep] = {}
    if len(backbone_modes) > 1:
        logger.info("item 1: building backbone-only steps for %s", ", ".join(backbone_modes))
        backbone_steps = {
            mode: train_steps.backbone_step(context, mode, train_steps.model_config(context, padding=mode), batch[0])
            for mode in backbone_modes
        }
        backbone = time_rounds(
            {mode: train_steps.step_task(step, budget.steps_per_repeat) for mode, step in backbone_steps.items()},
            budget.repeats,
            budget.warmup,
        )
        rows += _rows("backbone only", backbone, budget)

    section.method = [
        f"Input {size[0]}x{size[1]} px, width multiplier {base_cfg.width_multiplier}, batch "
        f"{context.config.train.batch_size}, optimizer {context.config.train.optimizer}. Each mode's step is the "
        "Trainer's own `_train_step_fn` (forward, loss, gradients, optimizer update) on one fixed batch, so input "
        f"reading is excluded. Each repeat runs {plural(budget.steps_per_repeat, 'step')} after "
        f"{plural(budget.warmup, 'untimed warm-up repeat')}. All modes of a table run in the same "
        f"{plural(budget.repeats, 'round')}, and the time ratio is the median over rounds of "
        "(mode time / tf_same time in the same round).",
    ]
    section.tables.append(
        Table(
            [
                "mode",
                "network",
                "median step (ms)",
                "images/s (median)",
                "images/s (range)",
                "time ratio to tf_same",
                f"<= {MAX_TIME_RATIO}",
            ],
            rows,
        )
    )
    if len(backbone_modes) > 1:
        rejected = ", ".join(backbone_modes[1:])
        section.notes.append(
            f"{rejected}: the SSD extra layers reach 1-pixel maps at {size[0]}x{size[1]}, and a reflect pad needs at least "
            "2 pixels, so `blindspots.config` rejects the whole detector. These modes are timed on the MobileNet v1 "
            "backbone alone (loss: mean square of Conv2d_13_pointwise), next to tf_same on the same backbone."
        )

    networks = {"SSD": (_ratios(full), full_steps), "backbone only": (_ratios(backbone), backbone_steps)}
    worst_ratio, worst_mode, worst_network = max(
        (ratio, mode, network) for network, (ratios, _) in networks.items() for mode, ratio in ratios.items()
    )
    section.headline = f"worst time ratio {worst_ratio:.3f}x ({worst_mode}, {worst_network})"
    section.verdict = MISSED if worst_ratio > MAX_TIME_RATIO else MET
    for network, (ratios, steps) in networks.items():
        missed = sorted((mode for mode, ratio in ratios.items() if ratio > MAX_TIME_RATIO), key=ratios.get, reverse=True)
        if missed:
            section.profiles.append(_profile(context, budget, network, [steps[mode] for mode in missed], steps[REFERENCE]))
    return section


def _profile(
    context: Context,
    budget: Budget,
    network: str,
    slow: list[train_steps.TrainStep],
    reference: train_steps.TrainStep,
) -> Profile:
    """Profile the modes that missed the target, slowest first, and the reference mode on one network."""
    steps = {step.name: step for step in [*slow, reference]}
    traced = train_steps.profile_steps(context, steps, budget.profile_steps, f"padding-{network.replace(' ', '-')}")
    names = ", ".join(step.name for step in slow)
    return Profile(
        f"{names} against {reference.name} ({network}), {plural(budget.profile_steps, 'train step')} each",
        profiles.op_comparison_table(traced),
        "Executor time by op type from the TensorFlow profiler (tf.profiler.experimental trace). The rows are the "
        f"op types that take most time in {slow[0].name}. The columns of the other modes show what each mode adds "
        f"to {reference.name}.",
    )
