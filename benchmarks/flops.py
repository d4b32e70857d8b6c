"""Item 3: FLOP/s achieved by the train step against a dense-matmul peak.

FLOPs of one step are counted on the graph of the Trainer's compiled step
with TensorFlow's v1 profiler (`model_analyzer.profile` with the
float-operation options), which sums the FLOP statistics that TensorFlow
registers per op type from static shapes. TensorFlow 2.20 registers none
for the depthwise-convolution gradients, so those are added analytically:
each of the two gradients (input and filter) takes as many multiply-adds as
the forward depthwise convolution. The peak is float32 `tf.matmul` of two
N x N matrices, 2 N^3 FLOPs each, timed in the same rounds as the step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from benchmarks import train_steps
from benchmarks.results import REPORTED, Section, Table, new_section, plural
from benchmarks.settings import Budget, Context
from benchmarks.timing import Task, Timing, rate_ratio, spread, time_rounds

logger = logging.getLogger(__name__)

DEPTHWISE_GRADIENTS = ("DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter")


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one train step."""

    # Counted by the TensorFlow profiler from registered op statistics.
    profiler: int
    # Added for the depthwise gradients, which have no registered statistic.
    depthwise_gradients: int
    # Depthwise gradient ops in the graph, for the record.
    depthwise_gradient_ops: int

    @property
    def total(self) -> int:
        return self.profiler + self.depthwise_gradients


def depthwise_forward_flops(graph: tf.Graph) -> int:
    """Return 2 * multiply-adds of every forward DepthwiseConv2dNative op in `graph`.

    An output element of a k_h x k_w depthwise filter takes k_h * k_w
    multiply-adds, so an op costs 2 * |output| * k_h * k_w FLOPs.
    """
    total = 0
    for op in graph.get_operations():
        if op.type != "DepthwiseConv2dNative":
            continue
        output = op.outputs[0].shape
        kernel = op.inputs[1].shape
        if not output.is_fully_defined() or not kernel.is_fully_defined():
            raise ValueError(f"op {op.name} has a partly unknown shape {output} or kernel {kernel}; FLOPs need static shapes")
        total += 2 * int(np.prod(output.as_list())) * int(kernel[0]) * int(kernel[1])
    return total


def count_step_flops(step: train_steps.TrainStep) -> StepFlops:
    """Count the FLOPs of one call of `step.step_fn` on its fixed batch."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    graph = step.step_fn.get_concrete_function(step.iterator).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profiled = model_analyzer.profile(graph=graph, options=options)
    gradient_ops = sum(1 for op in graph.get_operations() if op.type in DEPTHWISE_GRADIENTS)
    # The forward op and its two gradients each cost the same multiply-adds.
    added = 2 * depthwise_forward_flops(graph) if gradient_ops else 0
    return StepFlops(int(profiled.total_float_ops), added, gradient_ops)


def matmul_task(size: int, count: int) -> Task:
    """Return a `time_rounds` task of `count` float32 size x size matmuls; its items are FLOPs."""
    generator = tf.random.Generator.from_seed(0)
    left = generator.normal([size, size])
    right = generator.normal([size, size])

    def run() -> float:
        product = None
        for _ in range(count):
            product = tf.linalg.matmul(left, right)
        return float(product[0, 0].numpy())

    return Task(run, float(2 * size**3 * count))


def _row(task: str, timing: Timing, calls_per_repeat: int, unit: str) -> list[str]:
    """Format one task's GFLOP per call, median time per call and GFLOP/s (median and range)."""
    gflop_per_call = timing.items_per_repeat / calls_per_repeat / 1e9
    return [
        task,
        f"{gflop_per_call:.2f} per {unit}",
        f"{1000.0 * timing.median_seconds / calls_per_repeat:.0f} per {unit}",
        f"{timing.rate / 1e9:.2f}",
        spread([timing.items_per_repeat / s / 1e9 for s in timing.seconds]),
    ]


def measure(context: Context, budget: Budget, reference: train_steps.TrainStep) -> Section:
    section = new_section(3, verdict=REPORTED)
    flops = count_step_flops(reference)
    step = train_steps.step_task(reference, budget.steps_per_repeat)
    matmul = matmul_task(budget.matmul_size, budget.matmuls_per_repeat)
    timings = time_rounds(
        {"train step": Task(step.run, float(flops.total * budget.steps_per_repeat)), "matmul": matmul},
        budget.repeats,
        budget.warmup,
    )
    share = rate_ratio(timings["train step"], timings["matmul"])

    size = budget.matmul_size
    rows = [
        _row(f"train step ({reference.name}, batch {reference.batch_size})", timings["train step"], budget.steps_per_repeat, "step"),
        _row(f"tf.linalg.matmul float32 {size}x{size}", timings["matmul"], budget.matmuls_per_repeat, "matmul"),
    ]
    section.method = [
        "FLOPs per step: TensorFlow's v1 profiler (`tensorflow.python.profiler.model_analyzer.profile` with "
        "`ProfileOptionBuilder.float_operation()`) on the graph of the Trainer's compiled step, "
        f"{flops.profiler / 1e9:.3f} GFLOP, plus {flops.depthwise_gradients / 1e9:.3f} GFLOP added for the "
        f"{flops.depthwise_gradient_ops} depthwise-convolution gradient ops, which have no registered statistic "
        "(each gradient counted at the forward op's FLOPs). Memory-bound ops without a statistic (batch norm, ReLU6, "
        "padding) are not counted. The graph is the one TensorFlow traced, before Grappler's rewrites.",
        f"Peak: {plural(budget.matmuls_per_repeat, 'float32 `tf.linalg.matmul` call')} of {size}x{size} matrices per repeat. "
        f"Both tasks ran in the same {plural(budget.repeats, 'round')} after {plural(budget.warmup, 'warm-up repeat')}.",
    ]
    section.tables.append(Table(["task", "GFLOP", "median time (ms)", "GFLOP/s (median)", "GFLOP/s (range)"], rows))
    section.headline = f"{timings['train step'].rate / 1e9:.2f} GFLOP/s, {100.0 * share:.1f}% of matmul peak"
    return section
