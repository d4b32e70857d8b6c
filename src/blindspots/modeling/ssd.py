"""SSD head on MobileNet v1, as in the reference BSTLD config.

Feature maps: `Conv2d_11_pointwise` (stride 16), `Conv2d_13_pointwise`
(stride 32), and four extra layers (stride 64 to 512), each a 1x1 conv to
half its depth and a 3x3 stride-2 conv. Each map feeds a 3x3 box predictor
and a 3x3 class predictor, padded like the rest of the network.

The model takes uint8-range float images [B, H, W, 3] (0-255) and returns
`box_encodings` [B, N, 4] (Faster R-CNN coding of `[ymin, xmin, ymax,
xmax]` against the anchors) and `class_logits` [B, N, C] (sigmoid).
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf
import tf_keras

from blindspots.modeling import anchors as anchor_lib
from blindspots.modeling import geometry
from blindspots.modeling.mobilenet_v1 import _bn_relu, build_backbone
from blindspots.modeling.padding import PaddedConv2D

# Focal-loss prior (Lin et al. 2017): class logits start at p = 0.01 so that
# the many background anchors do not swamp the first steps.
CLASS_PRIOR = 0.01
PREDICTOR_KERNEL = 3


def _extra_layers(x: tf.Tensor, model_cfg: Any) -> list[tf.Tensor]:
    width = float(model_cfg.width_multiplier)
    min_depth = int(model_cfg.min_depth)
    regularizer = tf_keras.regularizers.l2(float(model_cfg.l2_weight_decay)) if model_cfg.l2_weight_decay else None
    outputs = []
    for index, depth in enumerate(geometry.EXTRA_LAYER_DEPTHS, start=1):
        depth = geometry.scaled_depth(depth, width, min_depth)
        name = f"extra_{index}_1x1"
        x = tf_keras.layers.Conv2D(max(depth // 2, min_depth), 1, use_bias=False, kernel_regularizer=regularizer, name=name)(x)
        x = _bn_relu(x, name, float(model_cfg.batch_norm_momentum))
        name = f"extra_{index}"
        x = PaddedConv2D(
            depth,
            3,
            strides=2,
            padding_mode=model_cfg.padding,
            alignment=model_cfg.alignment,
            kernel_regularizer=regularizer,
            name=name,
        )(x)
        x = _bn_relu(x, name, float(model_cfg.batch_norm_momentum))
        outputs.append(x)
    return outputs


def _predictor(x: tf.Tensor, filters: int, name: str, model_cfg: Any, bias: float = 0.0) -> tf.Tensor:
    return PaddedConv2D(
        filters,
        PREDICTOR_KERNEL,
        strides=1,
        padding_mode=model_cfg.padding,
        alignment=model_cfg.alignment,
        use_bias=True,
        kernel_initializer=tf_keras.initializers.RandomNormal(stddev=0.01),
        bias_initializer=tf_keras.initializers.Constant(bias),
        name=name,
    )(x)


def build_ssd(model_cfg: Any, num_classes: int) -> tf_keras.Model:
    """Build the SSD MobileNet v1 detector for `model_cfg.input_size`.

    Outputs a dict with `box_encodings` [B, N, 4] and `class_logits`
    [B, N, num_classes]; N equals `len(anchors.generate_anchors(...))`.
    """
    height, width = (int(v) for v in model_cfg.input_size)
    images = tf_keras.Input(shape=(height, width, 3), name="images")
    scaled = tf_keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(images)
    endpoints = build_backbone(scaled, model_cfg)
    feature_maps = [endpoints["Conv2d_11_pointwise"], endpoints["Conv2d_13_pointwise"]]
    feature_maps += _extra_layers(endpoints["Conv2d_13_pointwise"], model_cfg)

    per_location = anchor_lib.anchors_per_location(model_cfg)
    prior_bias = -math.log((1.0 - CLASS_PRIOR) / CLASS_PRIOR)
    box_parts, class_parts = [], []
    for level, (feature_map, k) in enumerate(zip(feature_maps, per_location)):
        boxes = _predictor(feature_map, k * 4, f"BoxPredictor_{level}_box", model_cfg)
        logits = _predictor(feature_map, k * num_classes, f"BoxPredictor_{level}_class", model_cfg, bias=prior_bias)
        box_parts.append(tf_keras.layers.Reshape((-1, 4), name=f"BoxPredictor_{level}_box_flat")(boxes))
        class_parts.append(tf_keras.layers.Reshape((-1, num_classes), name=f"BoxPredictor_{level}_class_flat")(logits))
    box_encodings = tf_keras.layers.Concatenate(axis=1, name="box_encodings")(box_parts)
    class_logits = tf_keras.layers.Concatenate(axis=1, name="class_logits")(class_parts)
    return tf_keras.Model(images, {"box_encodings": box_encodings, "class_logits": class_logits}, name="ssd_mobilenet_v1")


def feature_map_names() -> tuple[str, ...]:
    return geometry.FEATURE_LAYERS


def activation_model(model: tf_keras.Model) -> tf_keras.Model:
    """Return a model that outputs every post-activation map of `model` by layer name.

    Covers the backbone and extra layers (the `*_relu6` outputs), in order.
    """
    outputs = {
        layer.name[: -len("_relu6")]: layer.output for layer in model.layers if layer.name.endswith("_relu6")
    }
    return tf_keras.Model(model.input, outputs, name="activations")
