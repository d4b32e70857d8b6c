"""Padding as a first-class option: every convolution of the detector pads here.

`PaddedConv2D` and `PaddedDepthwiseConv2D` pad their input with one of the
modes of `blindspots.config.schema.PADDING_MODES`, then convolve with VALID
padding. The pad amounts come from `geometry.axis_geometry`, so the layers,
the padding audit and the config checks agree on every number.

Feature maps are NHWC. Pad amounts are computed from the static input shape
when a layer is built, so the input height and width must be known then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from blindspots.modeling import geometry

ZERO_MODES = ("tf_same", "zero_explicit", "partial")


def pad_amounts(size: int, kernel: int, stride: int, mode: str, alignment: str) -> tuple[int, int]:
    """Return (before, after) padding along one axis of `size` pixels."""
    axis = geometry.axis_geometry(size, kernel, stride, mode, alignment)
    return axis.pad_before, axis.pad_after


def _slice_axis(x: tf.Tensor, axis: int, start: int, stop: int) -> tf.Tensor:
    begin = [0, 0, 0, 0]
    size = [-1, -1, -1, -1]
    begin[axis] = start
    size[axis] = stop - start
    return tf.slice(x, begin, size)


def _pad_axis(x: tf.Tensor, axis: int, before: int, after: int, mode: str) -> tf.Tensor:
    """Pad one spatial axis of an NHWC tensor with a non-zero mode."""
    if before == 0 and after == 0:
        return x
    size = x.shape[axis]
    if mode in ("replicate", "circular"):
        if mode == "replicate":
            head = tf.repeat(_slice_axis(x, axis, 0, 1), before, axis=axis)
            tail = tf.repeat(_slice_axis(x, axis, size - 1, size), after, axis=axis)
        else:
            head = _slice_axis(x, axis, size - before, size)
            tail = _slice_axis(x, axis, 0, after)
        return tf.concat([head, x, tail], axis=axis)
    paddings = [[0, 0]] * 4
    paddings[axis] = [before, after]
    tf_mode = {"reflect": "REFLECT", "symmetric": "SYMMETRIC"}[mode]
    return tf.pad(x, paddings, mode=tf_mode)


def apply_padding(x: tf.Tensor, pads: tuple[tuple[int, int], tuple[int, int]], mode: str) -> tf.Tensor:
    """Pad NHWC `x` by ((top, bottom), (left, right)) with `mode`.

    Zero modes (tf_same, zero_explicit, partial) pad with zeros; `valid`
    must come with zero pads.
    """
    (top, bottom), (left, right) = pads
    if mode == "valid":
        if any((top, bottom, left, right)):
            raise ValueError(f"padding 'valid' takes no pad amounts, got {pads}")
        return x
    if mode in ZERO_MODES:
        if not any((top, bottom, left, right)):
            return x
        return tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    if mode not in ("reflect", "symmetric", "replicate", "circular"):
        raise ValueError(f"unknown padding mode '{mode}'. Valid modes: {', '.join(('tf_same',) + ZERO_MODES[1:] + ('reflect', 'symmetric', 'replicate', 'circular', 'valid'))}")
    x = _pad_axis(x, 1, top, bottom, mode)
    return _pad_axis(x, 2, left, right, mode)


def partial_conv_scale(
    size: tuple[int, int], kernel: int, stride: int, pads: tuple[tuple[int, int], tuple[int, int]]
) -> np.ndarray:
    """Return the partial-convolution re-weighting map, shape [1, Ho, Wo, 1].

    Each output is scaled by (window size) / (number of valid, non-padding
    pixels in its window), as in Liu et al. 2018, "Image Inpainting for
    Irregular Holes Using Partial Convolutions". The factor is separable
    because the valid-pixel count of a rectangular window is the product
    of the per-axis counts.
    """
    factors = []
    for n, (before, after) in zip(size, pads):
        mask = np.concatenate([np.zeros(before), np.ones(n), np.zeros(after)])
        windows = np.lib.stride_tricks.sliding_window_view(mask, kernel)[::stride]
        valid = windows.sum(axis=1)
        factors.append(kernel / np.maximum(valid, 1.0))
    scale = np.outer(factors[0], factors[1])
    return scale[np.newaxis, :, :, np.newaxis].astype(np.float32)


class _PaddedConvBase(tf_keras.layers.Layer):
    """Shared padding logic of the padded convolution layers."""

    def __init__(self, kernel_size: int, strides: int, padding_mode: str, alignment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.padding_mode = padding_mode
        self.alignment = alignment
        self._pads: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
        self._partial_scale: tf.Tensor | None = None

    def _build_padding(self, input_shape: tf.TensorShape) -> list[int | None]:
        """Compute the pad amounts and return the padded input shape."""
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(f"layer {self.name}: padding needs a static input height and width, got {input_shape}")
        self._pads = (
            pad_amounts(height, self.kernel_size, self.strides, self.padding_mode, self.alignment),
            pad_amounts(width, self.kernel_size, self.strides, self.padding_mode, self.alignment),
        )
        if self.padding_mode == "partial":
            scale = partial_conv_scale((height, width), self.kernel_size, self.strides, self._pads)
            self._partial_scale = tf.constant(scale)
        padded = list(input_shape)
        padded[1] = height + sum(self._pads[0])
        padded[2] = width + sum(self._pads[1])
        return padded

    @property
    def pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) pad amounts, known once the layer is built."""
        return self._pads

    def _pad(self, inputs: tf.Tensor) -> tf.Tensor:
        return apply_padding(inputs, self._pads, self.padding_mode)

    def _reweight(self, outputs: tf.Tensor) -> tf.Tensor:
        if self._partial_scale is None:
            return outputs
        return outputs * tf.cast(self._partial_scale, outputs.dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding_mode=self.padding_mode,
            alignment=self.alignment,
        )
        return config


class PaddedConv2D(_PaddedConvBase):
    """A Conv2D that pads with `padding_mode`, then convolves with VALID.

    Under `partial`, the bias (if any) is added after the re-weighting, so
    that only the data term is rescaled.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        padding_mode: str = "tf_same",
        alignment: str = "tf",
        use_bias: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(kernel_size, strides, padding_mode, alignment, **kwargs)
        self.filters = int(filters)
        self.use_bias = use_bias
        self.conv = tf_keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="valid",
            use_bias=False,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            name="conv",
        )
        self.bias_initializer = tf_keras.initializers.get(bias_initializer)

    def build(self, input_shape: tf.TensorShape) -> None:
        self.conv.build(self._build_padding(input_shape))
        self.bias = self.add_weight("bias", shape=(self.filters,), initializer=self.bias_initializer) if self.use_bias else None
        super().build(input_shape)

    @property
    def kernel(self) -> tf.Variable:
        return self.conv.kernel

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        outputs = self._reweight(self.conv(self._pad(inputs)))
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filters=self.filters, use_bias=self.use_bias)
        return config


class PaddedDepthwiseConv2D(_PaddedConvBase):
    """A DepthwiseConv2D (depth multiplier 1, no bias) that pads with `padding_mode`."""

    def __init__(
        self,
        kernel_size: int,
        strides: int = 1,
        padding_mode: str = "tf_same",
        alignment: str = "tf",
        depthwise_initializer: Any = "glorot_uniform",
        depthwise_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(kernel_size, strides, padding_mode, alignment, **kwargs)
        self.conv = tf_keras.layers.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding="valid",
            use_bias=False,
            depthwise_initializer=depthwise_initializer,
            depthwise_regularizer=depthwise_regularizer,
            name="depthwise",
        )

    def build(self, input_shape: tf.TensorShape) -> None:
        self.conv.build(self._build_padding(input_shape))
        super().build(input_shape)

    @property
    def depthwise_kernel(self) -> tf.Variable:
        return self.conv.depthwise_kernel

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self._reweight(self.conv(self._pad(inputs)))


CUSTOM_OBJECTS = {"PaddedConv2D": PaddedConv2D, "PaddedDepthwiseConv2D": PaddedDepthwiseConv2D}
