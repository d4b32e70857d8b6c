"""Train steps on a fixed batch, built from the project's Trainer.

Every step reads the same batch from a `tf.data` iterator that repeats one
element, so a step costs only the network, the loss and the optimizer, and
the input pipeline is measured on its own (item 4).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import tensorflow as tf
import tf_keras
from omegaconf import OmegaConf

from benchmarks.profiles import OpTime, trace_ops
from benchmarks.settings import Context
from benchmarks.timing import Task
from blindspots import paths
from blindspots.data.records import read_dataset
from blindspots.modeling import mobilenet_v1
from blindspots.training import input_pipeline
from blindspots.training.trainer import Trainer, make_optimizer

logger = logging.getLogger(__name__)


@dataclass
class TrainStep:
    """A compiled train step and the iterator it reads its fixed batch from."""

    name: str
    step_fn: Callable[..., Any]
    iterator: Any
    batch_size: int
    # The Trainer behind the step; None for the backbone-only steps.
    trainer: Trainer | None = None
    # The fixed batch: (images, targets) for Trainer steps, images for backbone steps.
    batch: Any = None
    # Trainable and non-trainable weights of the network.
    parameters: int = 0

    def run(self, steps: int) -> float:
        """Run `steps` steps and return the last loss, which waits for the step to finish."""
        outputs = None
        for _ in range(steps):
            outputs = self.step_fn(self.iterator)
        loss = outputs[0] if isinstance(outputs, tuple) else outputs
        return float(loss.numpy())


def model_config(context: Context, **overrides: Any) -> Any:
    """Return a copy of the shared `model` params with `overrides` applied (e.g. padding="circular")."""
    model_cfg = OmegaConf.create(OmegaConf.to_container(context.config.model, resolve=True))
    for key, value in overrides.items():
        model_cfg[key] = value
    return model_cfg


def input_size(model_cfg: Any) -> tuple[int, int]:
    return int(model_cfg.input_size[0]), int(model_cfg.input_size[1])


def make_trainer(context: Context, model_cfg: Any) -> Trainer:
    """Build the project's Trainer for `model_cfg` and the `train` params. Its checkpoints are never written."""
    return Trainer(
        model_cfg,
        context.config.train,
        context.num_classes,
        context.seed,
        context.scratch / "unused-checkpoints",
        "benchmark",
        class_names=context.class_names,
    )


def first_batch(context: Context, trainer: Trainer) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Label the first `train.batch_size` training records with the trainer's anchor labeler.

    Uses `input_pipeline.build_dataset` without augmentation or shuffling,
    so every network of a benchmark trains on the same images and targets.
    """
    records = read_dataset(paths.split_pattern("train", context.prepared_dir))
    dataset = input_pipeline.build_dataset(
        records,
        trainer.labeler,
        trainer.input_size,
        int(context.config.train.batch_size),
        context.seed,
        augment_cfg=None,
        shuffle_buffer=0,
        repeat=True,
        cache=False,
    )
    return next(iter(dataset))


def repeating_iterator(batch: Any, strategy: tf.distribute.Strategy) -> Any:
    """Return an iterator that yields `batch` forever, distributed like the Trainer's input."""
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return iter(strategy.experimental_distribute_dataset(dataset))


def trainer_step(context: Context, name: str, model_cfg: Any, batch: Any, trainer: Trainer | None = None) -> TrainStep:
    """Build the Trainer's own train step (`Trainer._train_step_fn`) for `model_cfg`.

    Pass `trainer` to reuse one already built for `model_cfg`.
    """
    trainer = trainer or make_trainer(context, model_cfg)
    step_fn = trainer._train_step_fn()  # noqa: SLF001 - the benchmark times the Trainer's real step
    iterator = repeating_iterator(batch, trainer.strategy)
    batch_size = int(context.config.train.batch_size)
    return TrainStep(name, step_fn, iterator, batch_size, trainer, batch, trainer.model.count_params())


def backbone_step(context: Context, name: str, model_cfg: Any, images: tf.Tensor) -> TrainStep:
    """Build a train step of the MobileNet v1 backbone alone, for modes the SSD extra layers reject.

    The loss is the mean square of the last backbone map (`Conv2d_13_pointwise`)
    plus the L2 weight decay. It replaces the detection head, and the
    gradient still flows through every backbone layer as in the detector. The
    optimizer is the one `train.optimizer` names, as in the Trainer.
    """
    height, width = input_size(model_cfg)
    inputs = tf_keras.Input(shape=(height, width, 3), name="images")
    scaled = tf_keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    endpoints = mobilenet_v1.build_backbone(scaled, model_cfg)
    model = tf_keras.Model(inputs, endpoints["Conv2d_13_pointwise"], name=f"backbone_{model_cfg.padding}")
    optimizer = make_optimizer(context.config.train)

    @tf.function
    def step_fn(iterator: Any) -> tf.Tensor:
        batch = next(iterator)
        with tf.GradientTape() as tape:
            features = model(batch, training=True)
            loss = tf.reduce_mean(tf.square(features))
            if model.losses:
                loss += tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    iterator = iter(tf.data.Dataset.from_tensors(images).repeat())
    return TrainStep(name, step_fn, iterator, int(images.shape[0]), None, images, model.count_params())


def reference_step(context: Context, padding: str = "tf_same") -> TrainStep:
    """Build the Trainer step of the params' model with `padding`, on the first training batch.

    Items 1 to 4 share this step, so it is traced once.
    """
    model_cfg = model_config(context, padding=padding)
    trainer = make_trainer(context, model_cfg)
    batch = first_batch(context, trainer)
    return trainer_step(context, padding, model_cfg, batch, trainer)


def step_task(step: TrainStep, steps: int) -> Task:
    """Return a `timing.time_rounds` task running `steps` steps; its items are the images processed."""
    return Task(lambda: step.run(steps), float(steps * step.batch_size))


def profile_dir(context: Context, name: str) -> Path:
    return context.scratch / "profiles" / name


def profile_steps(context: Context, steps: Mapping[str, TrainStep], count: int, prefix: str) -> dict[str, list[OpTime]]:
    """Trace `count` steps of each named step with the TensorFlow profiler and return its op times by name."""
    traced = {}
    for index, (name, step) in enumerate(steps.items()):
        directory = profile_dir(context, f"{prefix}-{index}")
        traced[name] = trace_ops(lambda step=step: step.run(count), directory)
    return traced
