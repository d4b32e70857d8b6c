"""Training loop for one (variant, seed) run, resumable from checkpoints.

The train step is a `tf.function` run under the `tf.distribute` strategy
named in `train.strategy`. Checkpoints hold the model, the optimizer, the
step and the input iterator, so an interrupted run continues exactly where
it stopped. A checkpoint written under a different config is not resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tf_keras
from tqdm import tqdm

from blindspots.modeling import anchors as anchor_lib
from blindspots.modeling import mobilenet_v1, ssd
from blindspots.modeling.losses import DetectionLoss, class_weight_vector
from blindspots.modeling.targets import AnchorLabeler
from blindspots.training import batch_norm, input_pipeline, pretrain, sampling

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: tf_keras.Model
    steps: int
    resumed_from: int
    final_loss: float
    seconds: float
    images_per_second: float
    # Summary of the crop-classification warm start; None when it did not run
    # (turned off, or skipped because the run resumed from a checkpoint).
    pretrain: dict[str, Any] | None = None


def config_fingerprint(data: dict[str, Any]) -> str:
    """SHA-256 of a JSON-serialisable config, used to match checkpoints to runs."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def make_strategy(train_cfg: Any) -> tf.distribute.Strategy:
    """Return the tf.distribute strategy named in `train.strategy`.

    On a CPU-only host, `train.cpu_devices` > 1 splits the CPU into that many
    logical devices first, so `mirrored` can be exercised without GPUs.
    """
    name = train_cfg.strategy
    if int(train_cfg.cpu_devices) > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * int(train_cfg.cpu_devices)
            )
        except RuntimeError:
            logger.warning("TensorFlow is already initialised; keeping its %d logical CPU devices", len(tf.config.list_logical_devices("CPU")))
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"train.strategy: unknown strategy '{name}'")


def make_learning_rate(train_cfg: Any) -> tf_keras.optimizers.schedules.LearningRateSchedule | float:
    """Build the schedule of `train.schedule`, with linear warm-up for cosine."""
    rate = float(train_cfg.learning_rate)
    steps = int(train_cfg.steps)
    warmup = min(int(train_cfg.warmup_steps), steps - 1)
    if train_cfg.schedule == "constant":
        return rate
    if train_cfg.schedule == "cosine":
        if warmup > 0:
            return tf_keras.optimizers.schedules.CosineDecay(
                rate * 0.1, steps - warmup, warmup_target=rate, warmup_steps=warmup
            )
        return tf_keras.optimizers.schedules.CosineDecay(rate, steps)
    boundaries = [int(b) for b in train_cfg.boundaries]
    values = [rate * float(train_cfg.decay_factor) ** i for i in range(len(boundaries) + 1)]
    return tf_keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(train_cfg: Any) -> tf_keras.optimizers.Optimizer:
    """Build the optimizer of `train.optimizer`, clipping by `train.clip_norm` if set.

    The tf_keras 2 optimizers sum the gradients across replicas before they
    clip, so the global norm is that of the whole batch's gradient.
    """
    rate = make_learning_rate(train_cfg)
    name = train_cfg.optimizer
    clip_norm = float(train_cfg.clip_norm)
    clipping = {"global_clipnorm": clip_norm} if clip_norm > 0 else {}
    if name == "adam":
        return tf_keras.optimizers.Adam(rate, **clipping)
    if name == "sgd":
        return tf_keras.optimizers.SGD(rate, **clipping)
    if name == "momentum":
        return tf_keras.optimizers.SGD(rate, momentum=float(train_cfg.momentum), **clipping)
    if name == "rmsprop":
        return tf_keras.optimizers.RMSprop(rate, momentum=float(train_cfg.momentum), epsilon=1.0, **clipping)
    raise ValueError(f"train.optimizer: unknown optimizer '{name}'")


def _loss_class_weights(model_cfg: Any, class_names: Sequence[str], num_classes: int) -> list[float] | None:
    """Return `model.class_weights` as one weight per class id, or None when none is set."""
    weights = dict(model_cfg.get("class_weights") or {})
    if not weights:
        return None
    if len(class_names) != num_classes:
        raise ValueError(f"model.class_weights needs the names of all {num_classes} classes, got {list(class_names)}")
    vector = class_weight_vector(weights, class_names)
    logger.info("class weights in the classification loss: %s",
                ", ".join(f"{name} {weight:g}" for name, weight in zip(class_names, vector)))
    return vector


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic."""
    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class Trainer:
    """Train one run. `records` yields decoded examples of the train split.

    `class_names`, in class id order, maps `model.class_weights` onto ids and
    is required when that mapping is not empty.
    """

    def __init__(
        self,
        model_cfg: Any,
        train_cfg: Any,
        num_classes: int,
        seed: int,
        checkpoint_dir: Path,
        fingerprint: str,
        class_names: Sequence[str] = (),
    ) -> None:
        self.model_cfg = model_cfg
        self.train_cfg = train_cfg
        self.num_classes = num_classes
        self.seed = seed
        self.checkpoint_dir = Path(checkpoint_dir)
        self.fingerprint = fingerprint
        self.input_size = (int(model_cfg.input_size[0]), int(model_cfg.input_size[1]))
        self.strategy = make_strategy(train_cfg)
        logger.info("strategy %s, replicas: %d", type(self.strategy).__name__, self.strategy.num_replicas_in_sync)
        anchors = anchor_lib.generate_anchors(self.input_size, model_cfg)
        self.labeler = AnchorLabeler(anchors, num_classes, float(model_cfg.match_iou))
        with self.strategy.scope():
            self.model = ssd.build_ssd(model_cfg, num_classes)
            if model_cfg.init_weights:
                mobilenet_v1.load_pretrained(self.model, model_cfg.init_weights)
            self.optimizer = make_optimizer(train_cfg)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.loss_fn = DetectionLoss(model_cfg, _loss_class_weights(model_cfg, class_names, num_classes))
        self._iterator: Any = None
        self._cached_repeat_counts: np.ndarray | None = None
        self._replay_on_resume = False
        self._manager: tf.train.CheckpointManager | None = None

    def _dataset(self, records: tf.data.Dataset, seed: int | None = None) -> tf.data.Dataset:
        """Build the training input; `seed` defaults to the run's seed."""
        return input_pipeline.build_dataset(
            records,
            self.labeler,
            self.input_size,
            int(self.train_cfg.batch_size),
            self.seed if seed is None else seed,
            augment_cfg=self.train_cfg.augment,
            shuffle_buffer=int(self.train_cfg.shuffle_buffer),
            repeat_counts=self._repeat_counts(records),
        )

    def _repeat_counts(self, records: tf.data.Dataset) -> np.ndarray | None:
        """Return the per-image counts of repeat-factor sampling, or None when it is off."""
        threshold = float(self.train_cfg.repeat_factor_threshold)
        if threshold == 0:
            return None
        if self._cached_repeat_counts is None:
            class_sets = sampling.image_class_sets(records)
            self._cached_repeat_counts = sampling.image_repeat_counts(class_sets, self.num_classes, threshold, self.seed)
        return self._cached_repeat_counts

    def _checkpoint_manager(self, iterator: Any) -> tf.train.CheckpointManager:
        try:
            checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step, iterator=iterator)
            self._replay_on_resume = False
        except ValueError:
            # A multi-replica DistributedIterator cannot be checkpointed. The
            # input stream is seeded, so a resumed run replays it up to the
            # restored step instead.
            checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step)
            self._replay_on_resume = True
        return tf.train.CheckpointManager(checkpoint, str(self.checkpoint_dir), max_to_keep=2)

    def _restore(self, manager: tf.train.CheckpointManager) -> int:
        fingerprint_file = self.checkpoint_dir / "fingerprint.txt"
        if manager.latest_checkpoint is None:
            return 0
        if not fingerprint_file.is_file() or fingerprint_file.read_text().strip() != self.fingerprint:
            logger.warning(
                "checkpoints in %s come from another config, training code or training data, so training starts from step 0",
                self.checkpoint_dir,
            )
            for path in self.checkpoint_dir.glob("ckpt-*"):
                path.unlink()
            (self.checkpoint_dir / "checkpoint").unlink(missing_ok=True)
            return 0
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        step = int(self.step.numpy())
        logger.info("resumed from %s at step %d", manager.latest_checkpoint, step)
        if self._replay_on_resume:
            logger.info("replaying %d input batches to reach the restored position", step)
            for _ in range(step):
                next(self._iterator)
        return step

    def _train_step_fn(self):
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
        replicas = self.strategy.num_replicas_in_sync

        def replica_step(images: tf.Tensor, targets: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                outputs = model(images, training=True)
                loss, parts = loss_fn(outputs, targets)
                regularisation = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
                total = loss + regularisation
                scaled = total / replicas
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return total, parts["class"], parts["box"]

        if self.train_cfg.jit_compile:
            # XLA cannot compile the iterator read, so only the replica step is fused.
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function
        def step_fn(iterator: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            images, targets = next(iterator)
            results = self.strategy.run(replica_step, args=(images, targets))
            return tuple(self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None) for value in results)

        return step_fn

    def restore(self, records: tf.data.Dataset) -> int:
        """Build the input iterator and restore the latest matching checkpoint.

        Returns the step to continue from (0 for a fresh run).
        """
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        dataset = self.strategy.experimental_distribute_dataset(self._dataset(records))
        self._iterator = iter(dataset)
        self._manager = self._checkpoint_manager(self._iterator)
        start_step = self._restore(self._manager)
        (self.checkpoint_dir / "fingerprint.txt").write_text(self.fingerprint + "\n")
        return start_step

    def fit(self, records: tf.data.Dataset, live: Any = None, summary_dir: Path | None = None) -> TrainResult:
        """Run the loop to `train.steps`, checkpointing every `train.checkpoint_every`.

        Calls `restore` first unless the caller already did.
        """
        if self._manager is None:
            self.restore(records)
        iterator, manager = self._iterator, self._manager
        start_step = int(self.step.numpy())
        pretrain_summary = self._pretrain(records) if start_step == 0 else None
        total_steps = int(self.train_cfg.steps)
        step_fn = self._train_step_fn()
        writer = tf.summary.create_file_writer(str(summary_dir)) if summary_dir else None
        log_every = max(1, int(self.train_cfg.log_every))
        checkpoint_every = int(self.train_cfg.checkpoint_every)

        losses: list[float] = []
        started = time.perf_counter()
        progress = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
        for step in range(start_step + 1, total_steps + 1):
            total, class_loss, box_loss = step_fn(iterator)
            self.step.assign(step)
            value = float(total.numpy())
            if not np.isfinite(value):
                raise FloatingPointError(f"loss became {value} at step {step}; lower train.learning_rate")
            losses.append(value)
            progress.update(1)
            if step % log_every == 0 or step == total_steps:
                progress.set_postfix(loss=f"{value:.3f}")
                self._log(step, value, float(class_loss.numpy()), float(box_loss.numpy()), live, writer)
            if step % checkpoint_every == 0 or step == total_steps:
                manager.save(checkpoint_number=step)
        progress.close()
        self._recalibrate_batch_norm(records)
        seconds = time.perf_counter() - started
        steps_run = total_steps - start_step
        rate = steps_run * int(self.train_cfg.batch_size) / seconds if steps_run and seconds > 0 else 0.0
        final = float(np.mean(losses[-log_every:])) if losses else float("nan")
        logger.info("trained %d steps (from %d) in %.1f s, %.1f images/s, final loss %.4f", steps_run, start_step, seconds, rate, final)
        return TrainResult(self.model, total_steps, start_step, final, seconds, rate, pretrain_summary)

    def _pretrain(self, records: tf.data.Dataset) -> dict[str, Any] | None:
        """Warm-start the backbone on light crops when `train.pretrain.steps` > 0.

        Runs only before step 1: a resumed run restores weights that already
        include the warm start. It is seeded like the run, so a run stopped
        before its first checkpoint repeats it exactly.
        """
        pretrain_cfg = self.train_cfg.pretrain
        if int(pretrain_cfg.steps) == 0:
            return None
        # The classifier trains outside the distribution strategy, on one
        # device; only the copy into the detector touches its variables.
        result = pretrain.pretrain_backbone(self.model, records, self.model_cfg, pretrain_cfg, self.num_classes, self.seed)
        return result.to_dict()

    def _recalibrate_batch_norm(self, records: tf.data.Dataset) -> None:
        """Recompute batch-norm statistics with the final weights (precise BN).

        The batches come from a fresh, seeded copy of the training input, so
        an uninterrupted run and a resumed one end with the same statistics.
        """
        num_batches = int(self.train_cfg.precise_bn_batches)
        if num_batches == 0:
            return
        dataset = self._dataset(records, seed=self.seed + 1)
        images = (batch[0] for batch in dataset.take(num_batches))
        with self.strategy.scope():
            batch_norm.recalibrate(self.model, images, num_batches)

    def _log(self, step: int, total: float, class_loss: float, box_loss: float, live: Any, writer: Any) -> None:
        learning_rate = float(tf_keras.backend.get_value(self.optimizer.learning_rate))
        values = {"loss": total, "class_loss": class_loss, "box_loss": box_loss, "learning_rate": learning_rate}
        if live is not None:
            live.step = step
            for name, value in values.items():
                live.log_metric(f"train/{name}", value)
            live.next_step()
        if writer is not None:
            with writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(f"train/{name}", value)
        logger.debug("step %d: %s", step, values)
