"""Foveation count maps and border statistics: hand-counted tiny cases and TensorFlow gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from blindspots.analysis import foveation
from blindspots.analysis.borders import border_statistics, channel_mean
from blindspots.modeling.geometry import ConvSpec, GeometryError
from blindspots.modeling.padding import PaddedDepthwiseConv2D

MODES = ("tf_same", "zero_explicit", "reflect", "symmetric", "replicate", "circular", "partial")
K3S1 = [ConvSpec("k3s1", 3, 1)]
K3S2 = [ConvSpec("k3s2", 3, 2)]
K5S1 = [ConvSpec("k5s1", 5, 1)]

# n = 4, k = 3, s = 1, padding (1, 1): windows read padded positions
# [-1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]. Without padding each pixel
# counts 2, 3, 3, 2. reflect fills -1 with pixel 1 and 4 with pixel 2;
# symmetric and replicate fill them with pixels 0 and 3; circular with
# pixels 3 and 0. partial weighs the two border windows (2 real taps) by 3/2.
K3S1_EXPLICIT = {
    "zero_explicit": [2, 3, 3, 2],
    "reflect": [2, 4, 4, 2],
    "symmetric": [3, 3, 3, 3],
    "replicate": [3, 3, 3, 3],
    "circular": [3, 3, 3, 3],
    "partial": [1.5 + 1, 1.5 + 1 + 1, 1 + 1 + 1.5, 1 + 1.5],
}

# n = 4, k = 3, s = 2 with TF alignment: padding (0, 1), windows [0, 1, 2]
# and [2, 3, 4]. Position 4 contains zero, pixel 2 (reflect), pixel 3
# (symmetric, replicate), pixel 0 (circular). partial weighs the second
# window by 3/2. zero_explicit pads (1, 1): windows [-1, 0, 1] and [1, 2, 3],
# and position 4 is never read.
K3S2_TF = {
    "tf_same": [1, 1, 2, 1],
    "zero_explicit": [1, 2, 1, 1],
    "reflect": [1, 1, 3, 1],
    "symmetric": [1, 1, 2, 2],
    "replicate": [1, 1, 2, 2],
    "circular": [2, 1, 2, 1],
    "partial": [1, 1, 1 + 1.5, 1.5],
}

# n = 4, k = 5, s = 1, padding (2, 2): windows start at -2, -1, 0, 1, so
# positions -2..5 are read 1, 2, 3, 4, 4, 3, 2, 1 times. Filling -2, -1, 4, 5:
# symmetric 1, 0, 3, 2; replicate 0, 0, 3, 3; reflect 2, 1, 2, 1;
# circular 2, 3, 0, 1. partial: the windows have 3, 4, 4, 3 real taps,
# so weights 5/3, 5/4, 5/4, 5/3; pixel 0 is in the first three windows.
K5S1_EXPLICIT = {
    "zero_explicit": [3, 4, 4, 3],
    "symmetric": [3 + 2, 4 + 1, 4 + 1, 3 + 2],
    "replicate": [3 + 1 + 2, 4, 4, 3 + 2 + 1],
    "reflect": [3, 4 + 2 + 1, 4 + 1 + 2, 3],
    "circular": [3 + 2, 4 + 1, 4 + 1, 3 + 2],
    "partial": [5 / 3 + 5 / 2, 10 / 3 + 5 / 2, 10 / 3 + 5 / 2, 5 / 3 + 5 / 2],
}


@pytest.mark.parametrize("mode", sorted(K3S1_EXPLICIT))
def test_counts_1d_k3_stride1(mode: str) -> None:
    counts = foveation.foveation_counts_1d(4, K3S1, mode, "explicit")
    np.testing.assert_allclose(counts, K3S1_EXPLICIT[mode])


@pytest.mark.parametrize("mode", sorted(K3S2_TF))
def test_counts_1d_k3_stride2(mode: str) -> None:
    counts = foveation.foveation_counts_1d(4, K3S2, mode, "tf")
    np.testing.assert_allclose(counts, K3S2_TF[mode])


@pytest.mark.parametrize("mode", sorted(K5S1_EXPLICIT))
def test_counts_1d_k5_stride1(mode: str) -> None:
    counts = foveation.foveation_counts_1d(4, K5S1, mode, "explicit")
    np.testing.assert_allclose(counts, K5S1_EXPLICIT[mode])


def test_counts_1d_two_layers() -> None:
    # The second layer sends back [2, 3, 3, 2] (see K3S1_EXPLICIT); pixel 0
    # is in windows 0 and 1 of the first layer: 2 + 3 = 5; pixel 1 in
    # windows 0, 1, 2: 2 + 3 + 3 = 8.
    counts = foveation.foveation_counts_1d(4, K3S1 * 2, "zero_explicit", "explicit")
    np.testing.assert_allclose(counts, [5, 8, 8, 5])


def test_map_2d_zero_padding() -> None:
    # 3 x 3 input, 3 x 3 kernel, padding 1: a corner pixel is in 4 windows,
    # an edge pixel in 6 and the centre in all 9.
    count_map = foveation.foveation_map((3, 3), "zero_explicit", "explicit", K3S1)
    np.testing.assert_allclose(count_map, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_map_2d_partial() -> None:
    # Windows of output (0, 0) have 4 real taps (weight 9/4), edge windows 6
    # (9/6), the centre window 9 (1). Corner pixel: windows (0,0), (0,1),
    # (1,0), (1,1) -> 9/4 + 9/6 + 9/6 + 1 = 6.25. Edge pixel (0, 1): six
    # windows, 9/4 * 2 + 9/6 * 3 + 1 = 10. Centre: 9/4 * 4 + 9/6 * 4 + 1 = 16.
    count_map = foveation.foveation_map((3, 3), "partial", "explicit", K3S1)
    np.testing.assert_allclose(count_map, [[6.25, 10, 6.25], [10, 16, 10], [6.25, 10, 6.25]])


@pytest.mark.parametrize("mode", MODES)
def test_map_separable(mode: str) -> None:
    layers = [ConvSpec("a", 3, 2), ConvSpec("b", 3, 1), ConvSpec("c", 3, 2)]
    count_map = foveation.foveation_map((9, 12), mode, "tf", layers)
    rows = foveation.foveation_counts_1d(9, layers, mode, "tf")
    cols = foveation.foveation_counts_1d(12, layers, mode, "tf")
    np.testing.assert_allclose(count_map, np.outer(rows, cols), rtol=1e-12)


def _gradient_counts(size: tuple[int, int], layers: list[ConvSpec], mode: str, alignment: str) -> np.ndarray:
    """Return d sum(output) / d input of the project's padded depthwise layers with all-ones kernels."""
    x = tf.ones([1, *size, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = x
        for spec in layers:
            conv = PaddedDepthwiseConv2D(
                spec.kernel, strides=spec.stride, padding_mode=mode, alignment=alignment, depthwise_initializer="ones"
            )
            y = conv(y)
        total = tf.reduce_sum(y)
    return tape.gradient(total, x).numpy()[0, :, :, 0]


@pytest.mark.parametrize("alignment", ["tf", "explicit"])
@pytest.mark.parametrize("mode", MODES)
def test_map_matches_padded_layers(mode: str, alignment: str) -> None:
    layers = [ConvSpec("a", 3, 2), ConvSpec("b", 3, 1), ConvSpec("c", 3, 2)]
    expected = _gradient_counts((10, 7), layers, mode, alignment)
    count_map = foveation.foveation_map((10, 7), mode, alignment, layers)
    np.testing.assert_allclose(count_map, expected, rtol=1e-5)


def test_partial_matches_2d_mask_count() -> None:
    # Partial convolution computed the direct 2-D way: the number of real
    # pixels per window comes from convolving a zero-padded 2-D mask, not
    # from per-axis counts, so this checks the separable factorisation.
    size, pads = (6, 5), [[0, 0], [0, 1], [1, 1], [0, 0]]  # TF SAME, 3x3 s2 on 6 x 5
    ones = tf.ones([3, 3, 1, 1])
    x = tf.ones([1, *size, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        valid = tf.nn.conv2d(tf.pad(tf.ones_like(x), pads), ones, strides=2, padding="VALID")
        y = tf.nn.conv2d(tf.pad(x, pads), ones, strides=2, padding="VALID") * 9.0 / valid
        total = tf.reduce_sum(y)
    expected = tape.gradient(total, x).numpy()[0, :, :, 0]
    count_map = foveation.foveation_map(size, "partial", "tf", K3S2)
    np.testing.assert_allclose(count_map, expected, rtol=1e-6)


def test_reflect_too_wide_rejected() -> None:
    # REFLECT needs padding <= n - 1, so a 1-px axis cannot take padding 1.
    with pytest.raises(GeometryError, match="layer k3s1 gets 1 px"):
        foveation.foveation_counts_1d(1, K3S1, "reflect", "explicit")


def test_centre_border_ratio() -> None:
    # 4 x 4: the ring (12 pixels) is 1, the central rows 1..2, columns 1..2 are 3.
    count_map = np.ones((4, 4))
    count_map[1:3, 1:3] = 3.0
    assert foveation.centre_border_ratio(count_map) == 3.0


def test_centre_border_ratio_central_half() -> None:
    # 8 x 8: the central region is rows and columns 2..5. Ring at 1, rows
    # 1 and 6 (inside the ring, outside the centre) at 100, centre at 4.
    count_map = np.ones((8, 8))
    count_map[1:7, 1:7] = 100.0
    count_map[2:6, 2:6] = 4.0
    assert foveation.centre_border_ratio(count_map) == 4.0


def test_summary_values(tmp_path) -> None:
    # 4 x 4, one 3x3 stride-2 layer: the map is the outer product of the 1-D
    # counts, [1, 1, 2, 1] for tf_same and [1, 1, 2, 2] for symmetric (K3S2_TF).
    # tf_same: top and bottom rows both sum 5. The centre (rows and columns
    # 1..2) is [[1, 2], [2, 4]], mean 2.25; the 12 ring pixels sum
    # 5 + 5 + 3 + 3 = 16, so the ratio is 2.25 / (16 / 12) = 1.6875.
    # symmetric: top row mean 1.5, bottom row mean 3, interior mean 2.25,
    # so top_bottom = (1.5 - 3) / 2.25 = -2/3.
    maps = foveation.foveation_maps((4, 4), ["tf_same", "symmetric"], "tf", K3S2)
    summary = foveation.foveation_summary(maps).set_index("mode")
    assert summary.loc["tf_same", "centre_border_ratio"] == pytest.approx(1.6875)
    assert summary.loc["tf_same", "top_bottom"] == 0.0
    assert summary.loc["symmetric", "top_bottom"] == pytest.approx(-2 / 3)


def test_plot_writes_png(tmp_path) -> None:
    maps = foveation.foveation_maps((12, 16), ["tf_same", "symmetric", "valid"], "tf", K3S2 * 2)
    path = foveation.plot_foveation_maps(maps, tmp_path / "foveation.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_border_statistics_exact() -> None:
    # Interior (rows 1..2, columns 1..3) is 2. Top row mean 3, bottom 1, left
    # column [3, 4, 4, 1] mean 3, right column [3, 2, 2, 1] mean 2.
    activation = np.array(
        [
            [3, 3, 3, 3, 3],
            [4, 2, 2, 2, 2],
            [4, 2, 2, 2, 2],
            [1, 1, 1, 1, 1],
        ],
        dtype=float,
    )
    stats = border_statistics(activation)
    assert stats["interior_mean"] == 2.0
    assert stats["top"] == 0.5
    assert stats["bottom"] == -0.5
    assert stats["left"] == 0.5
    assert stats["right"] == 0.0
    assert stats["top_bottom"] == 1.0
    assert stats["left_right"] == 0.5


def test_border_statistics_zero_interior() -> None:
    activation = np.zeros((3, 3))
    activation[0, :] = 1.0
    stats = border_statistics(activation)
    assert stats["interior_mean"] == 0.0
    assert np.isnan(stats["top"])


def test_border_statistics_too_small() -> None:
    with pytest.raises(ValueError, match="at least 3 x 3"):
        border_statistics(np.ones((2, 5)))


def test_channel_mean() -> None:
    # Channel c of pixel (i, j) is i + c, so the mean over 3 channels is i + 1.
    feature_map = np.add.outer(np.arange(4)[:, None] * np.ones((1, 5)), np.arange(3))[np.newaxis]
    np.testing.assert_allclose(channel_mean(feature_map), np.arange(4)[:, None] * np.ones((1, 5)) + 1)
