"""Item 5: sweep placements/s against plain batched inference.

The sweep task is `blindspots.sweep.runner.detect_placements` over the
compiled step of `runner.make_sweep_step` (composite, detect, match), on
the first placements of a vertical sweep. The inference task calls the
same detector (`blindspots.modeling.export.make_detector`) on a batch of
background frames of the same batch size and reads the outputs back.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from benchmarks import profiles, train_steps
from benchmarks.results import MET, MISSED, Profile, Section, Table, new_section, plural
from benchmarks.settings import Budget, Context
from benchmarks.timing import Task, rate_ratio, spread, time_rounds
from blindspots import paths
from blindspots.data.records import read_dataset
from blindspots.modeling import export, ssd
from blindspots.sweep import compose, placements, runner

logger = logging.getLogger(__name__)

MIN_RATIO = 0.85
MODE = "vertical"
BACKGROUND_SPLITS = ("test", "val", "train")


def load_detector(context: Context) -> tuple[Callable[[tf.Tensor], dict[str, tf.Tensor]], Any, str]:
    """Return (detector, model config, description): the trained model when there is one, else fresh weights."""
    if context.model_dir is not None:
        model, model_cfg, _ = export.load_model(context.model_dir)
        description = f"trained model {context.model_dir.name} of {context.model_dir.parent.name}"
        return export.make_detector(model, model_cfg), model_cfg, description
    model_cfg = train_steps.model_config(context)
    model = ssd.build_ssd(model_cfg, context.num_classes)
    return export.make_detector(model, model_cfg), model_cfg, "untrained model (no pipeline run in this benchmark)"


def placement_inputs(
    bank: compose.CropBank, backgrounds: compose.BackgroundBank, size: tuple[int, int], settings: Any, count: int
) -> list[np.ndarray]:
    """Return background_index, crop_index, y, x [count] and placed boxes [count, 4] of the first `count` placements.

    The vertical sweep's placements are repeated when it has fewer than `count`.
    """
    table = placements.build_placements(
        MODE, size, bank.sizes, bank.light_boxes, len(backgrounds), int(settings.step), int(settings.columns), int(settings.grid_step)
    )
    rows = np.resize(np.arange(len(table)), count)
    table = table.iloc[rows]
    crop_index = table["crop_index"].to_numpy()
    y = table["y"].to_numpy()
    x = table["x"].to_numpy()
    boxes = placements.placed_boxes(y, x, bank.light_boxes[crop_index], size)
    return [table["background_index"].to_numpy(), crop_index, y, x, boxes]


def measure(context: Context, budget: Budget) -> Section:
    section = new_section(5)
    detector, model_cfg, description = load_detector(context)
    size = train_steps.input_size(model_cfg)
    settings = context.config.sweep
    batch_size = int(settings.batch_size)

    test_examples = read_dataset(paths.split_pattern("test", context.prepared_dir))
    crops = compose.select_light_crops(test_examples, int(settings.crops_per_class), int(settings.seed), context.num_classes, size)
    bank = compose.build_crop_bank(crops)
    streams = [
        read_dataset(paths.split_pattern(split, context.prepared_dir))
        for split in BACKGROUND_SPLITS
        if list(context.prepared_dir.glob(f"{split}-*.tfrecord"))
    ]
    backgrounds = compose.select_backgrounds(streams, int(settings.backgrounds), int(settings.seed), size)
    step = runner.make_sweep_step(detector, backgrounds, bank, float(settings.iou))
    count = budget.sweep_batches * batch_size
    inputs = placement_inputs(bank, backgrounds, size, settings, count)

    frames = np.resize(backgrounds.images, (batch_size, *backgrounds.images.shape[1:])).astype(np.float32)

    def sweep_run() -> int:
        best_iou, _, _ = runner.detect_placements(step, inputs, batch_size)
        return len(best_iou)

    def inference_run() -> int:
        detections = 0
        for _ in range(budget.sweep_batches):
            outputs = detector(tf.constant(frames))
            detections += int(outputs["num_detections"].numpy().sum())
        return detections

    timings = time_rounds(
        {"sweep step": Task(sweep_run, float(count)), "plain inference": Task(inference_run, float(count))},
        budget.repeats,
        budget.warmup,
    )
    ratio = rate_ratio(timings["sweep step"], timings["plain inference"])
    rows = [
        [name, f"{timing.rate:.1f}", spread([count / s for s in timing.seconds])]
        for name, timing in timings.items()
    ]
    section.method = [
        f"Detector: {description}, input {size[0]}x{size[1]} px. {len(bank)} light crops and {len(backgrounds)} "
        f"backgrounds from the prepared data, as the sweep stage selects them. Each repeat runs "
        f"{plural(budget.sweep_batches, 'batch', 'batches')} of {batch_size} (`sweep.batch_size`): the sweep "
        f"through `runner.detect_placements` on {MODE} placements (compositing, detection with NMS, matching, "
        "reading back), the inference through the same detector on background frames, with the outputs read back. "
        f"{plural(budget.repeats, 'round')} after {plural(budget.warmup, 'warm-up repeat')}. The ratio is the median "
        "over rounds of (sweep placements/s / inference images/s).",
    ]
    section.tables.append(Table(["task", "images/s (median)", "images/s (range)"], rows))
    section.headline = f"sweep / inference = {ratio:.2f}"
    section.verdict = MET if ratio >= MIN_RATIO else MISSED
    if section.verdict == MISSED:
        traced = {
            "sweep step": profiles.trace_ops(sweep_run, train_steps.profile_dir(context, "sweep")),
            "plain inference": profiles.trace_ops(inference_run, train_steps.profile_dir(context, "inference")),
        }
        section.profiles.append(
            Profile(
                f"sweep step against plain inference, {budget.sweep_batches} batches each",
                profiles.op_comparison_table(traced),
                "Executor time by op type from the TensorFlow profiler; rows are the sweep step's top op types.",
            )
        )
    return section
