"""Item 4: input-pipeline throughput against what the train step consumes.

The pipeline is the Trainer's own (`Trainer._dataset`, which calls
`blindspots.training.input_pipeline.build_dataset` with the `train` params:
cache, shuffle buffer, augmentation, labelling, batching, prefetch) on the
prepared train split, read through one long-lived iterator as the Trainer
reads it. While the train step is timed, the pipeline's prefetch buffer
fills up, so each timed pipeline repeat first drains `DRAIN_BATCHES`
batches untimed and then times batches produced at the steady rate.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from benchmarks import profiles, train_steps
from benchmarks.results import MET, MISSED, Profile, Section, Table, new_section, plural
from benchmarks.settings import Budget, Context
from benchmarks.timing import Task, rate_ratio, spread, time_call, time_rounds
from blindspots import paths
from blindspots.data.records import read_dataset
from blindspots.training.input_pipeline import count_examples

logger = logging.getLogger(__name__)

MIN_RATIO = 3.0
# More than the 4 batches that were ready after an 8 s pause at 192 x 320,
# batch 16 (AUTOTUNE prefetch, TensorFlow 2.20, 2 cores).
DRAIN_BATCHES = 8


def pull(iterator: Any, batches: int) -> None:
    """Pull `batches` batches from `iterator` and drop them."""
    for _ in range(batches):
        next(iterator)


def measure(context: Context, budget: Budget, reference: train_steps.TrainStep) -> Section:
    section = new_section(4)
    if reference.trainer is None:
        raise ValueError("item 4 needs a Trainer step, not a backbone-only step")
    pattern = paths.split_pattern("train", context.prepared_dir)
    records = read_dataset(pattern)
    examples = count_examples(records)
    batch_size = reference.batch_size
    dataset = reference.trainer._dataset(records)  # noqa: SLF001 - the Trainer's own pipeline

    iterator = iter(dataset)

    # The first pass decodes every PNG and fills the in-memory cache. It
    # runs past the end of the split, because tf.data drops a partial cache.
    first_pass_batches = math.ceil(examples / batch_size) + 1
    first_pass_seconds = time_call(lambda: pull(iterator, first_pass_batches))

    pipeline_images = float(budget.pipeline_batches * batch_size)
    pipeline = Task(lambda: pull(iterator, budget.pipeline_batches), pipeline_images, lambda: pull(iterator, DRAIN_BATCHES))
    timings = time_rounds(
        {"input pipeline": pipeline, "train step": train_steps.step_task(reference, budget.steps_per_repeat)},
        budget.repeats,
        budget.warmup,
    )
    ratio = rate_ratio(timings["input pipeline"], timings["train step"])
    augment = context.config.train.augment
    rows = [
        [
            "input pipeline, first pass (read, decode PNG, fill cache)",
            f"{first_pass_batches * batch_size / first_pass_seconds:.1f}",
            "one pass",
        ],
        [
            "input pipeline, cached",
            f"{timings['input pipeline'].rate:.1f}",
            spread([pipeline_images / s for s in timings["input pipeline"].seconds]),
        ],
        [
            f"train step ({reference.name})",
            f"{timings['train step'].rate:.1f}",
            spread([timings["train step"].items_per_repeat / s for s in timings["train step"].seconds]),
        ],
    ]
    section.method = [
        f"{examples} training examples in {pattern}, batch {batch_size}, shuffle buffer "
        f"{context.config.train.shuffle_buffer}, augmentation: horizontal flip {augment.horizontal_flip}, random crop "
        f"{augment.random_crop}. The first pass ({first_pass_batches} batches) is timed once. Then each repeat drains "
        f"{DRAIN_BATCHES} prefetched batches untimed and times the next {budget.pipeline_batches}, all from one iterator "
        f"as in training, in the same {plural(budget.repeats, 'round')} as {plural(budget.steps_per_repeat, 'train step')} on a fixed "
        "batch. The ratio is the median over rounds of (pipeline images/s / train-step images/s).",
    ]
    section.tables.append(Table(["task", "images/s (median)", "images/s (range)"], rows))
    section.notes.append(
        "Each task had both cores to itself. During training the pipeline's threads share the cores with the step, "
        "so the margin in a real run is smaller than the ratio."
    )
    section.headline = f"pipeline / train step = {ratio:.1f}x"
    section.verdict = MET if ratio >= MIN_RATIO else MISSED
    if section.verdict == MISSED:
        traced = profiles.trace_ops(pipeline.run, train_steps.profile_dir(context, "input-pipeline"))
        section.profiles.append(
            Profile(
                f"input pipeline, {plural(budget.pipeline_batches, 'cached batch', 'cached batches')}",
                profiles.op_comparison_table({"input pipeline": traced}),
                "Executor time by op type from the TensorFlow profiler, over the ops the tf.data map functions run.",
            )
        )
    return section
