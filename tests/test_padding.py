"""Pad amounts and padded values of every padding mode, checked exactly."""

import numpy as np
import pytest
import tensorflow as tf

import blindspots  # noqa: F401
from blindspots.modeling import geometry
from blindspots.modeling.padding import (
    PaddedConv2D,
    PaddedDepthwiseConv2D,
    apply_padding,
    pad_amounts,
    partial_conv_scale,
)


@pytest.mark.parametrize(
    ("n", "kernel", "stride", "expected"),
    [
        # total = max((ceil(n/s) - 1) * s + k - n, 0), floor(total/2) before.
        (6, 3, 2, (0, 1)),  # total = 2*2 + 3 - 6 = 1
        (7, 3, 2, (1, 1)),  # total = 3*2 + 3 - 7 = 2
        (192, 3, 2, (0, 1)),
        (193, 3, 2, (1, 1)),
        (5, 3, 1, (1, 1)),
        (224, 7, 2, (2, 3)),  # total = 111*2 + 7 - 224 = 5
        (225, 7, 2, (3, 3)),  # total = 112*2 + 7 - 225 = 6
        (4, 1, 1, (0, 0)),
    ],
)
def test_tf_same_amounts(n, kernel, stride, expected):
    assert pad_amounts(n, kernel, stride, "tf_same", "tf") == expected


@pytest.mark.parametrize("mode", ["zero_explicit", "reflect", "symmetric", "replicate", "circular", "partial"])
def test_explicit_alignment_amounts(mode):
    alignment = "tf" if mode == "zero_explicit" else "explicit"
    assert pad_amounts(6, 3, 2, mode, alignment) == (1, 1)


def test_valid_amounts():
    assert pad_amounts(6, 3, 2, "valid", "tf") == (0, 0)


def test_zero_explicit_unconsumed_row():
    # n = 6, k = 3, s = 2 with 1 + 1 padding: windows start at 0, 2, 4 of
    # the 8 padded rows and read rows 0..6, so padded row 7 is never read.
    axis = geometry.axis_geometry(6, 3, 2, "zero_explicit", "tf")
    assert axis.output_size == 3
    assert axis.unconsumed_after == 1
    assert axis.uneven


def test_tf_same_uneven_flag():
    assert geometry.axis_geometry(6, 3, 2, "tf_same", "tf").uneven
    assert not geometry.axis_geometry(7, 3, 2, "tf_same", "tf").uneven


ROW = np.array([1.0, 2.0, 3.0, 4.0], np.float32)


def _pad_row(mode, before, after):
    x = tf.constant(ROW.reshape(1, 4, 1, 1))
    return apply_padding(x, ((before, after), (0, 0)), mode).numpy().reshape(-1)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("tf_same", [0, 0, 1, 2, 3, 4, 0]),
        ("reflect", [3, 2, 1, 2, 3, 4, 3]),
        ("symmetric", [2, 1, 1, 2, 3, 4, 4]),
        ("replicate", [1, 1, 1, 2, 3, 4, 4]),
        ("circular", [3, 4, 1, 2, 3, 4, 1]),
    ],
)
def test_padded_values(mode, expected):
    np.testing.assert_array_equal(_pad_row(mode, 2, 1), np.array(expected, np.float32))


def test_padding_width_axis():
    x = tf.constant(ROW.reshape(1, 1, 4, 1))
    out = apply_padding(x, ((0, 0), (1, 2)), "circular").numpy().reshape(-1)
    np.testing.assert_array_equal(out, [4, 1, 2, 3, 4, 1, 2])


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(ValueError, match="Valid modes: .*symmetric"):
        apply_padding(tf.zeros([1, 2, 2, 1]), ((1, 1), (1, 1)), "mirror")


def test_partial_scale_stride_two():
    # n = 6, k = 3, s = 2, TF pads (0, 1): windows cover rows 0-2, 2-4 and
    # 4-6, where row 6 is padding, so valid counts are 3, 3, 2 per axis.
    scale = partial_conv_scale((6, 6), 3, 2, ((0, 1), (0, 1)))[0, :, :, 0]
    per_axis = np.array([1.0, 1.0, 1.5])
    np.testing.assert_allclose(scale, np.outer(per_axis, per_axis), rtol=1e-6)


def test_partial_scale_corners():
    # 3x3 input, k = 3, s = 1, one pixel of padding on each side: the
    # corner windows see 2x2 = 4 real pixels, the edges 2x3 = 6, the centre 9.
    scale = partial_conv_scale((3, 3), 3, 1, ((1, 1), (1, 1)))[0, :, :, 0]
    expected = np.array([[9 / 4, 9 / 6, 9 / 4], [9 / 6, 1.0, 9 / 6], [9 / 4, 9 / 6, 9 / 4]], np.float32)
    np.testing.assert_allclose(scale, expected, rtol=1e-6)


def _ones_conv(mode, size, stride, alignment="tf"):
    layer = PaddedConv2D(1, 3, strides=stride, padding_mode=mode, alignment=alignment, kernel_initializer="ones")
    return layer, layer(tf.ones([1, size, size, 1])).numpy()[0, :, :, 0]


def test_partial_conv_of_ones_is_flat():
    # Re-weighting by window size / valid pixels makes a constant input
    # give a constant output of k*k = 9 everywhere, borders included.
    _, out = _ones_conv("partial", 5, 1)
    np.testing.assert_allclose(out, np.full((5, 5), 9.0), rtol=1e-6)


def test_tf_same_conv_of_ones_border():
    # n = 6, stride 2: pads (0, 1), so the last output row and column
    # read one padded zero row: 2 * 3 = 6 real pixels, and the corner 4.
    _, out = _ones_conv("tf_same", 6, 2)
    expected = np.array([[9, 9, 6], [9, 9, 6], [6, 6, 4]], np.float32)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("size", [5, 6, 7, 8])
@pytest.mark.parametrize("stride", [1, 2])
def test_tf_same_matches_tf_conv2d(size, stride):
    rng = np.random.default_rng(size * 10 + stride)
    images = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    layer = PaddedConv2D(4, 3, strides=stride, padding_mode="tf_same")
    ours = layer(images).numpy()
    reference = tf.nn.conv2d(images, layer.kernel, strides=stride, padding="SAME").numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [6, 7])
def test_zero_explicit_matches_explicit_conv2d(size):
    rng = np.random.default_rng(size)
    images = rng.normal(size=(1, size, size, 2)).astype(np.float32)
    layer = PaddedConv2D(3, 3, strides=2, padding_mode="zero_explicit")
    ours = layer(images).numpy()
    reference = tf.nn.conv2d(images, layer.kernel, strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


def test_depthwise_tf_same_matches_tf():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(1, 8, 6, 4)).astype(np.float32)
    layer = PaddedDepthwiseConv2D(3, strides=2, padding_mode="tf_same")
    ours = layer(images).numpy()
    reference = tf.nn.depthwise_conv2d(images, layer.depthwise_kernel, [1, 2, 2, 1], padding="SAME").numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["tf_same", "zero_explicit", "reflect", "symmetric", "replicate", "circular", "partial"])
@pytest.mark.parametrize("size", [6, 7])
def test_output_size_is_same(mode, size):
    layer = PaddedConv2D(2, 3, strides=2, padding_mode=mode)
    out = layer(tf.zeros([1, size, size, 1]))
    assert out.shape[1:3] == (-(-size // 2), -(-size // 2))


def test_valid_output_size():
    layer = PaddedConv2D(2, 3, strides=2, padding_mode="valid")
    assert layer(tf.zeros([1, 7, 6, 1])).shape[1:3] == (3, 2)


def test_layer_reports_pads():
    layer, _ = _ones_conv("symmetric", 6, 2)
    assert layer.pads == ((0, 1), (0, 1))
