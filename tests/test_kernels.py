"""Mean kernels and their asymmetry: exact values on kernels built to lean."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras

from blindspots.analysis import kernels
from blindspots.analysis.kernels import KernelRecord


def _leaning_kernel() -> np.ndarray:
    # Two output channels of a 3x3x1x2 kernel.
    # A = [[4, 0, 2], [2, 0, 0], [0, 0, 0]], B = [[0, 0, 0], [2, 0, -2], [0, 2, 0]].
    weights = np.zeros((3, 3, 1, 2))
    weights[:, :, 0, 0] = [[4, 0, 2], [2, 0, 0], [0, 0, 0]]
    weights[:, :, 0, 1] = [[0, 0, 0], [2, 0, -2], [0, 2, 0]]
    return weights


def test_mean_kernels_exact() -> None:
    mean_raw, mean_abs = kernels.mean_kernels(_leaning_kernel())
    np.testing.assert_array_equal(mean_raw, [[2, 0, 1], [2, 0, -1], [0, 1, 0]])
    np.testing.assert_array_equal(mean_abs, [[2, 0, 1], [2, 0, 1], [0, 1, 0]])


def test_asymmetry_mean_raw() -> None:
    # Mean raw kernel [[2, 0, 1], [2, 0, -1], [0, 1, 0]]: sum |w| = 7,
    # left column 4, right column 0, top row 3, bottom row 1.
    mean_raw, _ = kernels.mean_kernels(_leaning_kernel())
    left_right, top_bottom = kernels.asymmetry(mean_raw)
    assert left_right == pytest.approx(4 / 7)
    assert top_bottom == pytest.approx(2 / 7)


def test_asymmetry_mean_abs() -> None:
    # Mean |w| kernel [[2, 0, 1], [2, 0, 1], [0, 1, 0]]: sum 7, left 4,
    # right 2, top 3, bottom 1.
    _, mean_abs = kernels.mean_kernels(_leaning_kernel())
    left_right, top_bottom = kernels.asymmetry(mean_abs)
    assert left_right == pytest.approx(2 / 7)
    assert top_bottom == pytest.approx(2 / 7)


def test_asymmetry_mirror_negates() -> None:
    mean_raw, _ = kernels.mean_kernels(_leaning_kernel())
    left_right, top_bottom = kernels.asymmetry(mean_raw[:, ::-1])
    assert left_right == pytest.approx(-4 / 7)
    assert top_bottom == pytest.approx(2 / 7)


def test_asymmetry_zero_kernel() -> None:
    left_right, top_bottom = kernels.asymmetry(np.zeros((3, 3)))
    assert np.isnan(left_right)
    assert np.isnan(top_bottom)


def test_mean_kernels_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match="expected \\[kh, kw, in, out\\]"):
        kernels.mean_kernels(np.zeros((3, 3, 2)))


def test_kernel_statistics_table() -> None:
    # The depthwise kernel [3, 3, 2, 1] has the same two channels, on the
    # input axis this time, so its means match the convolution's.
    depthwise = np.moveaxis(_leaning_kernel(), 3, 2)
    records = [KernelRecord("conv", _leaning_kernel(), stride=2), KernelRecord("dw", depthwise, stride=1)]
    table = kernels.kernel_statistics(records).set_index("layer")
    assert table.loc["conv", "downsampling"]
    assert not table.loc["dw", "downsampling"]
    assert table.loc["dw", "left_right"] == pytest.approx(4 / 7)
    assert table.loc["conv", "abs_left_right"] == pytest.approx(2 / 7)


def test_records_from_keras() -> None:
    inputs = tf_keras.Input((8, 8, 2))
    x = tf_keras.layers.Conv2D(4, 3, strides=2, padding="same", name="down")(inputs)
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = tf_keras.layers.Conv2D(4, 1, name="pointwise")(x)
    outputs = tf_keras.layers.Dense(3, name="dense")(x)
    records = kernels.kernel_records_from_keras(tf_keras.Model(inputs, outputs))
    assert [(record.name, record.stride) for record in records] == [("down", 2), ("dw", 1)]
    assert records[0].weights.shape == (3, 3, 2, 4)
    assert records[1].weights.shape == (3, 3, 4, 1)


def test_plot_mean_kernels(tmp_path) -> None:
    records = [KernelRecord("conv", _leaning_kernel(), stride=2), KernelRecord("flat", np.ones((3, 3)))]
    path = kernels.plot_mean_kernels(records, tmp_path / "kernels.png", "mean kernels")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
