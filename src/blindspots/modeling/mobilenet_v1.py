"""MobileNet v1 backbone (Howard et al. 2017) with pluggable padding.

Layer names follow the TF-slim scheme of the public ImageNet checkpoints:
`Conv2d_0`, `Conv2d_N_depthwise`, `Conv2d_N_pointwise`, each followed by a
batch norm named `<layer>_BatchNorm` and a ReLU6 named `<layer>_relu6`.
`load_pretrained` maps a slim checkpoint or a Keras weights file onto them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from blindspots.modeling import geometry
from blindspots.modeling.padding import PaddedConv2D, PaddedDepthwiseConv2D

logger = logging.getLogger(__name__)

SLIM_SCOPE = "MobilenetV1"


def _bn_relu(x: tf.Tensor, name: str, momentum: float) -> tf.Tensor:
    x = tf_keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3, name=f"{name}_BatchNorm")(x)
    return tf_keras.layers.ReLU(6.0, name=f"{name}_relu6")(x)


def build_backbone(inputs: tf.Tensor, model_cfg: Any) -> dict[str, tf.Tensor]:
    """Apply MobileNet v1 to `inputs` (NHWC, scaled to [-1, 1]).

    Returns every post-activation endpoint by layer name, in order.
    """
    width = float(model_cfg.width_multiplier)
    min_depth = int(model_cfg.min_depth)
    padding, alignment = model_cfg.padding, model_cfg.alignment
    momentum = float(model_cfg.batch_norm_momentum)
    regularizer = tf_keras.regularizers.l2(float(model_cfg.l2_weight_decay)) if model_cfg.l2_weight_decay else None
    endpoints: dict[str, tf.Tensor] = {}

    x = PaddedConv2D(
        geometry.scaled_depth(geometry.STEM_DEPTH, width, min_depth),
        3,
        strides=2,
        padding_mode=padding,
        alignment=alignment,
        kernel_regularizer=regularizer,
        name="Conv2d_0",
    )(inputs)
    x = endpoints["Conv2d_0"] = _bn_relu(x, "Conv2d_0", momentum)
    for index, (stride, depth) in enumerate(geometry.MOBILENET_V1_BLOCKS, start=1):
        name = f"Conv2d_{index}_depthwise"
        x = PaddedDepthwiseConv2D(3, strides=stride, padding_mode=padding, alignment=alignment, name=name)(x)
        x = endpoints[name] = _bn_relu(x, name, momentum)
        name = f"Conv2d_{index}_pointwise"
        x = tf_keras.layers.Conv2D(
            geometry.scaled_depth(depth, width, min_depth),
            1,
            use_bias=False,
            kernel_regularizer=regularizer,
            name=name,
        )(x)
        x = endpoints[name] = _bn_relu(x, name, momentum)
    return endpoints


def _slim_name_map(model: tf_keras.Model) -> dict[str, tf.Variable]:
    """Map TF-slim variable names to the model's backbone variables."""
    mapping: dict[str, tf.Variable] = {}
    for layer in model.layers:
        name = layer.name
        if not name.startswith("Conv2d_"):
            continue
        if name.endswith("_BatchNorm"):
            base = f"{SLIM_SCOPE}/{name[: -len('_BatchNorm')]}/BatchNorm"
            mapping[f"{base}/gamma"] = layer.gamma
            mapping[f"{base}/beta"] = layer.beta
            mapping[f"{base}/moving_mean"] = layer.moving_mean
            mapping[f"{base}/moving_variance"] = layer.moving_variance
        elif isinstance(layer, PaddedDepthwiseConv2D):
            mapping[f"{SLIM_SCOPE}/{name}/depthwise_weights"] = layer.depthwise_kernel
        elif isinstance(layer, PaddedConv2D):
            mapping[f"{SLIM_SCOPE}/{name}/weights"] = layer.kernel
        elif isinstance(layer, tf_keras.layers.Conv2D):
            mapping[f"{SLIM_SCOPE}/{name}/weights"] = layer.kernel
    return mapping


def load_pretrained(model: tf_keras.Model, path: str | Path) -> int:
    """Load MobileNet v1 ImageNet weights into the backbone layers of `model`.

    `path` is a TF-slim checkpoint prefix (variables named
    `MobilenetV1/Conv2d_N_pointwise/weights` and so on) or a Keras `.h5`
    weights file with this module's layer names. Returns the number of
    variables loaded. Raises FileNotFoundError or ValueError on a missing
    file or a shape mismatch, naming the variable.
    """
    path = Path(path)
    if path.suffix in (".h5", ".hdf5", ".keras"):
        if not path.is_file():
            raise FileNotFoundError(f"model.init_weights: weights file not found: {path}")
        model.load_weights(str(path), by_name=True, skip_mismatch=False)
        count = sum(len(layer.weights) for layer in model.layers if layer.name.startswith("Conv2d_"))
        logger.info("loaded %d backbone variables from %s", count, path)
        return count

    if not tf.io.gfile.exists(f"{path}.index"):
        raise FileNotFoundError(f"model.init_weights: no checkpoint at prefix {path} ({path}.index not found)")
    reader = tf.train.load_checkpoint(str(path))
    available = reader.get_variable_to_shape_map()
    loaded = 0
    for slim_name, variable in _slim_name_map(model).items():
        if slim_name not in available:
            logger.warning("checkpoint %s has no variable %s; it keeps its initial value", path, slim_name)
            continue
        value = reader.get_tensor(slim_name)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"model.init_weights: {slim_name} has shape {value.shape} in {path} but {tuple(variable.shape)} "
                "in the model. Check model.width_multiplier against the checkpoint's width."
            )
        variable.assign(np.asarray(value, dtype=variable.dtype.as_numpy_dtype))
        loaded += 1
    if loaded == 0:
        raise ValueError(f"model.init_weights: no {SLIM_SCOPE}/* variable of {path} matches the backbone")
    logger.info("loaded %d backbone variables from checkpoint %s", loaded, path)
    return loaded
