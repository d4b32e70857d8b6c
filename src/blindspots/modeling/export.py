"""Saving a trained detector and loading it back as a post-processed callable.

A model directory contains `model.weights.h5` and `model.json` (the resolved
model config and class names), so a later stage rebuilds the exact network
with `ssd.build_ssd` and needs no custom-object registry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import tensorflow as tf
import tf_keras
from official.vision.modeling.layers import detection_generator
from omegaconf import OmegaConf

from blindspots import runinfo
from blindspots.modeling import anchors as anchor_lib
from blindspots.modeling import ssd
from blindspots.modeling.targets import AnchorLabeler

logger = logging.getLogger(__name__)
WEIGHTS_FILE = "model.weights.h5"
CONFIG_FILE = "model.json"


def save_detector(model_dir: Path | str, model: tf_keras.Model, model_cfg: Any, class_names: list[str]) -> None:
    """Write weights and config into `model_dir` (created if needed)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with runinfo.atomic_path(model_dir / WEIGHTS_FILE) as temp:
        model.save_weights(str(temp))
    config = OmegaConf.to_container(model_cfg, resolve=True) if not isinstance(model_cfg, dict) else model_cfg
    runinfo.write_json(model_dir / CONFIG_FILE, {"model": config, "class_names": list(class_names)})


def postprocess(
    outputs: dict[str, tf.Tensor], labeler: AnchorLabeler, input_size: tuple[int, int], model_cfg: Any
) -> dict[str, tf.Tensor]:
    """Decode boxes, apply sigmoid and per-class NMS (Model Garden's batched NMS).

    Returns `boxes` [B, K, 4] normalised `[ymin, xmin, ymax, xmax]` clipped
    to [0, 1], `scores` [B, K], `classes` [B, K] int32 (0-based) and
    `num_detections` [B], with K = `model.max_detections`.
    """
    boxes_px = labeler.decode(outputs["box_encodings"])
    scale = tf.constant([input_size[0], input_size[1], input_size[0], input_size[1]], tf.float32)
    boxes = tf.clip_by_value(boxes_px / scale, 0.0, 1.0)
    scores = tf.sigmoid(outputs["class_logits"])
    # NOTE: a private helper of Model Garden 2.20; it wraps TensorFlow's
    # combined_non_max_suppression, which runs NMS per class.
    nmsed_boxes, nmsed_scores, nmsed_classes, valid = detection_generator._generate_detections_batched(  # noqa: SLF001
        boxes[:, :, tf.newaxis, :],
        scores,
        pre_nms_score_threshold=float(model_cfg.score_threshold),
        nms_iou_threshold=float(model_cfg.nms_iou),
        max_num_detections=int(model_cfg.max_detections),
    )
    return {
        "boxes": nmsed_boxes,
        "scores": nmsed_scores,
        "classes": tf.cast(nmsed_classes, tf.int32),
        "num_detections": tf.cast(valid, tf.int32),
    }


def make_detector(model: tf_keras.Model, model_cfg: Any) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """Wrap `model` as a compiled images -> detections function.

    Images are float32 [B, H, W, 3] with values 0-255 at the model input size.
    """
    input_size = (int(model_cfg.input_size[0]), int(model_cfg.input_size[1]))
    anchors = anchor_lib.generate_anchors(input_size, model_cfg)
    num_classes = int(model.output["class_logits"].shape[-1])
    labeler = AnchorLabeler(anchors, num_classes, float(model_cfg.match_iou))

    @tf.function(reduce_retracing=True)
    def detect(images: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = model(tf.cast(images, tf.float32), training=False)
        return postprocess(outputs, labeler, input_size, model_cfg)

    return detect


def load_model(model_dir: Path | str) -> tuple[tf_keras.Model, Any, list[str]]:
    """Rebuild and load a saved detector. Returns (model, model_cfg, class_names)."""
    model_dir = Path(model_dir)
    config_path = model_dir / CONFIG_FILE
    weights_path = model_dir / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run the train stage for this variant and seed first")
    record = json.loads(config_path.read_text(encoding="utf-8"))
    model_cfg = OmegaConf.create(record["model"])
    class_names = list(record["class_names"])
    model = ssd.build_ssd(model_cfg, len(class_names))
    model.load_weights(str(weights_path))
    logger.info("loaded detector from %s (%d parameters)", model_dir, model.count_params())
    return model, model_cfg, class_names


def load_detector(model_dir: Path | str) -> tuple[Callable[[tf.Tensor], dict[str, tf.Tensor]], tuple[int, int], list[str]]:
    """Load a saved detector as (detect function, input size (H, W), class names)."""
    model, model_cfg, class_names = load_model(model_dir)
    input_size = (int(model_cfg.input_size[0]), int(model_cfg.input_size[1]))
    return make_detector(model, model_cfg), input_size, class_names

