"""Constant-input maps and feature means: exact border effects of tiny padded models."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras

from blindspots.analysis import activations
from blindspots.modeling.padding import PaddedConv2D
from blindspots.sweep.figures import save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _ones_conv_model(size: int, rescale: bool = False) -> tf_keras.Model:
    """Build Input(size, size, 3) -> [Rescaling to [-1, 1]] -> 3x3 stride-2 tf_same conv with all-ones kernel, 1 filter.

    The output dict has one map, `conv`, as ssd.activation_model returns.
    """
    inputs = tf_keras.Input((size, size, 3))
    x = tf_keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs) if rescale else inputs
    conv = PaddedConv2D(1, 3, strides=2, padding_mode="tf_same", kernel_initializer="ones", name="conv")
    return tf_keras.Model(inputs, {"conv": conv(x)})


def test_constant_images_fill() -> None:
    images = activations.constant_images((2, 3), [[0, 0, 0], [10, 20, 30]])
    assert images.shape == (2, 2, 3, 3)
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images[1, 1, 2], [10, 20, 30])
    assert not images[0].any()


def test_constant_images_rejects_range() -> None:
    with pytest.raises(ValueError, match=r"3 pixel values \(R, G, B\) in \[0, 255\]"):
        activations.constant_images((2, 2), [[0, 0, 300]])


def test_constant_images_rejects_length() -> None:
    with pytest.raises(ValueError, match="colour \\[1.0, 2.0\\] is invalid"):
        activations.constant_images((2, 2), [[1, 2]])


def test_constant_map_tf_same_even() -> None:
    # Input 8 px, k = 3, s = 2, TF SAME: 4 outputs, padding 0 before and 1
    # after. Windows read rows 0 to 2, 2 to 4, 4 to 6 and 6 to 8, and row 8
    # is padding, so the windows read 3, 3, 3 and 2 real rows. With an all-ones kernel over
    # 3 channels of value 1 the output is 3 * rows * columns.
    maps = activations.constant_input_maps(_ones_conv_model(8), (8, 8), {"one": [1, 1, 1]})
    counts = np.array([3, 3, 3, 2])
    np.testing.assert_allclose(maps["one"]["conv"], 3 * np.outer(counts, counts))


def test_border_stats_tf_same_even() -> None:
    # In the map above the interior (rows and columns 1 and 2) is 27. The top
    # row is 27, 27, 27, 18 (mean 24.75) and the bottom row 18, 18, 18, 12
    # (mean 16.5).
    # top = (24.75 - 27) / 27 = -1/12, bottom = (16.5 - 27) / 27 = -7/18,
    # top_bottom = (24.75 - 16.5) / 27 = 11/36. Columns are the same.
    maps = activations.constant_input_maps(_ones_conv_model(8), (8, 8), {"one": [1, 1, 1]})
    row = activations.border_table(maps["one"], "one").iloc[0]
    assert row["interior_mean"] == pytest.approx(27.0)
    assert row["top"] == pytest.approx(-1 / 12)
    assert row["bottom"] == pytest.approx(-7 / 18)
    assert row["top_bottom"] == pytest.approx(11 / 36)
    assert row["left_right"] == pytest.approx(11 / 36)


def test_zero_input_through_rescaling() -> None:
    # Pixel value 0 becomes -1 after the [-1, 1] rescaling, so the map is
    # the one above negated: interior -27, top mean -24.75, bottom -16.5,
    # and top_bottom = (-24.75 + 16.5) / |-27| = -11/36.
    maps = activations.constant_input_maps(_ones_conv_model(8, rescale=True), (8, 8), {"zero": activations.ZERO_RGB})
    row = activations.border_table(maps["zero"], "zero").iloc[0]
    assert row["interior_mean"] == pytest.approx(-27.0)
    assert row["top_bottom"] == pytest.approx(-11 / 36)


def test_border_stats_tf_same_odd() -> None:
    # Input 7 px: padding 1 before and 1 after. Windows read rows -1 to 1,
    # 1 to 3, 3 to 5 and 5 to 7, so 2, 3, 3 and 2 real rows. The map is
    # 3 * outer([2, 3, 3, 2], [2, 3, 3, 2]): interior 27, top and bottom rows
    # 12, 18, 18, 12 with mean 15, so top = bottom = (15 - 27) / 27 = -4/9.
    # Both borders lose the same amount: no top-bottom or left-right asymmetry.
    maps = activations.constant_input_maps(_ones_conv_model(7), (7, 7), {"one": [1, 1, 1]})
    row = activations.border_table(maps["one"], "one").iloc[0]
    assert row["top"] == pytest.approx(-4 / 9)
    assert row["bottom"] == pytest.approx(-4 / 9)
    assert row["top_bottom"] == pytest.approx(0.0)
    assert row["left_right"] == pytest.approx(0.0)


def test_constant_maps_keep_layer_order() -> None:
    # "b" is built before "a", and the maps keep that order, not the sorted one.
    inputs = tf_keras.Input((4, 4, 3))
    first = tf_keras.layers.Rescaling(2.0, name="b")(inputs)
    second = tf_keras.layers.Rescaling(3.0, name="a")(first)
    model = tf_keras.Model(inputs, {"b": first, "a": second})
    maps = activations.constant_input_maps(model, (4, 4), {"grey": [1, 2, 3], "zero": activations.ZERO_RGB})
    assert list(maps) == ["grey", "zero"]
    assert list(maps["grey"]) == ["b", "a"]
    # Channel mean of 6 * (1, 2, 3) is 12.
    np.testing.assert_allclose(maps["grey"]["a"], np.full((4, 4), 12.0))


def test_layer_names_reject_single_output() -> None:
    inputs = tf_keras.Input((4, 4, 3))
    model = tf_keras.Model(inputs, tf_keras.layers.Rescaling(1.0)(inputs), name="plain")
    with pytest.raises(ValueError, match="model plain has a single output"):
        activations.layer_names(model)


def test_border_table_small_maps() -> None:
    maps = {"big": np.arange(9.0).reshape(3, 3) + 1.0, "thin": np.ones((2, 5))}
    table = activations.border_table(maps, "zero")
    assert list(table.columns) == list(activations.BORDER_COLUMNS)
    assert list(table["layer"]) == ["big", "thin"]
    assert np.isnan(table.loc[1, "top_bottom"])
    # 3 x 3 map 1..9: interior is 5, top row mean 2, bottom row mean 8.
    assert table.loc[0, "top_bottom"] == pytest.approx((2 - 8) / 5)


def _identity_model(height: int, width: int) -> tf_keras.Model:
    inputs = tf_keras.Input((height, width, 3))
    return tf_keras.Model(inputs, tf_keras.layers.Rescaling(1.0)(inputs))


def _batches() -> list[dict[str, np.ndarray]]:
    # Two images of colour (10, 20, 30) and one of (40, 50, 60).
    first = np.broadcast_to(np.array([10, 20, 30], np.uint8), (2, 4, 6, 3))
    second = np.broadcast_to(np.array([40, 50, 60], np.uint8), (1, 4, 6, 3))
    return [
        {"image": first, "key": np.array([b"rgb/a.png", b"rgb/b.png"])},
        {"image": second, "key": np.array([b"rgb/c.png"])},
    ]


def test_feature_means_exact() -> None:
    # Per channel, the mean over 3 images is (2 * 10 + 40) / 3 = 20,
    # (2 * 20 + 50) / 3 = 30 and (2 * 30 + 60) / 3 = 40, at every pixel.
    means = activations.feature_means(_identity_model(4, 6), _batches(), layer="identity", scenes=2)
    assert means.images == 3
    np.testing.assert_allclose(means.filter_means, np.broadcast_to([20.0, 30.0, 40.0], (4, 6, 3)))
    np.testing.assert_allclose(means.mean_rgb, [20.0, 30.0, 40.0])
    np.testing.assert_allclose(means.mean_map, np.full((4, 6), 30.0))


def test_feature_means_scenes() -> None:
    means = activations.feature_means(_identity_model(4, 6), _batches(), layer="identity", scenes=3)
    assert means.scene_keys == ["rgb/a.png", "rgb/b.png", "rgb/c.png"]
    assert means.scene_images.dtype == np.uint8
    np.testing.assert_array_equal(means.scene_images[2, 0, 0], [40, 50, 60])
    # The channel mean of scene c is (40 + 50 + 60) / 3 = 50.
    np.testing.assert_allclose(means.scene_maps[2], np.full((4, 6), 50.0))


def test_feature_means_rejects_no_batches() -> None:
    with pytest.raises(ValueError, match="no images to average for identity"):
        activations.feature_means(_identity_model(4, 6), [], layer="identity")


def test_plot_layer_maps(tmp_path) -> None:
    maps = {"conv": np.outer([3, 3, 3, 2], [3, 3, 3, 2]).astype(float), "flat": np.ones((1, 1))}
    figure, caption = activations.plot_layer_maps(maps, "zero input", "an all-black image")
    assert figure.get_suptitle() == "zero input"
    assert "an all-black image" in caption
    assert save_figure(figure, tmp_path / "maps.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_layer_maps_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no activation maps to plot"):
        activations.plot_layer_maps({}, "zero input", "an all-black image")


def test_plot_feature_means(tmp_path) -> None:
    means = activations.feature_means(_identity_model(4, 6), _batches(), layer="identity", scenes=2)
    figure, caption = activations.plot_feature_means(means, "variant", filters=2)
    assert figure.get_suptitle() == "variant: identity (4x6)"
    assert "over 3 test images" in caption
    assert save_figure(figure, tmp_path / "means.png").read_bytes()[:8] == PNG_SIGNATURE
