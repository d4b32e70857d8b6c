"""Padding audit: exact pad amounts, checked against TensorFlow's own SAME padding."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
import tensorflow as tf
import tf_keras

from blindspots.analysis import padding_audit
from blindspots.analysis.padding_audit import WindowLayer
from blindspots.modeling import geometry
from blindspots.stages import padding_check

STRIDE2_LAYERS = (
    "Conv2d_0",
    "Conv2d_2_depthwise",
    "Conv2d_4_depthwise",
    "Conv2d_6_depthwise",
    "Conv2d_12_depthwise",
    "extra_1",
    "extra_2",
    "extra_3",
    "extra_4",
)


def _flagged(table: pd.DataFrame, column: str) -> set[str]:
    return set(table.loc[table[column], "layer"])


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_tf_same_matches_probe(kernel: int, stride: int) -> None:
    layer = WindowLayer("probe", "Conv2D", (kernel, kernel), (stride, stride), "tf_same")
    for n in range(1, 14):
        geo = padding_audit.window_axis_geometry(layer, 0, n)
        probed = padding_audit.probe_same_padding(n, kernel, stride)
        assert (geo.pad_before, geo.pad_after - geo.unconsumed_after) == probed, f"n={n}"


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_tf_same_output_matches_conv2d(kernel: int, stride: int) -> None:
    conv = tf_keras.layers.Conv2D(1, kernel, strides=stride, padding="same")
    for n in range(1, 14):
        geo = padding_audit.padded_geometry(n, kernel, stride, *geometry.tf_same_padding(n, kernel, stride))
        output = conv(tf.zeros([1, n, n, 1]))
        assert output.shape[1] == geo.output_size, f"n={n}"


def test_ones_probe_shows_short_borders() -> None:
    # All-ones 3x3 kernel, stride 2, SAME, on ones of 6 x 7. Height 6 pads
    # (0, 1): the first row window reads 3 pixels, the last 2. Width 7 pads
    # (1, 1): the first and last column windows read 2 pixels each. A window
    # sums (valid rows) * (valid columns).
    kernel = tf.ones([3, 3, 1, 1])
    output = tf.nn.conv2d(tf.ones([1, 6, 7, 1]), kernel, strides=2, padding="SAME").numpy()[0, :, :, 0]
    table = padding_audit.audit_keras_model(_single_conv_model((6, 7), 3, 2, "same"))
    row = table.iloc[0]
    assert output[0, 0] == (3 - row.pad_top) * (3 - row.pad_left) == 6
    assert output[-1, 0] == (3 - row.pad_bottom) * (3 - row.pad_left) == 4
    assert output[-1, -1] == (3 - row.pad_bottom) * (3 - row.pad_right) == 4


def test_audit_network_720x1280_uneven_layers() -> None:
    # Height 720 -> 360 -> 180 -> 90 -> 45 -> 23 | extras 23 -> 12 -> 6 -> 3 -> 2.
    # A 3x3 stride-2 SAME layer pads (0, 1) on an even input and (1, 1) on an
    # odd one, so the odd inputs 45, 23 and 3 pad evenly.
    # Width 1280 -> 640 -> 320 -> 160 -> 80 -> 40 | 40 -> 20 -> 10 -> 5 -> 3:
    # only the last extra layer gets an odd input (5).
    table = padding_audit.audit_network((720, 1280))
    even_h = {"Conv2d_12_depthwise", "extra_1", "extra_4"}
    assert _flagged(table, "uneven_h") == set(STRIDE2_LAYERS) - even_h
    assert _flagged(table, "uneven_w") == set(STRIDE2_LAYERS) - {"extra_4"}


def test_audit_network_720x1280_backbone() -> None:
    # The backbone's five stride-2 layers are all uneven except 45 -> 23 in height.
    table = padding_audit.audit_network((720, 1280))
    backbone = table[table["layer"].isin(STRIDE2_LAYERS[:5])]
    assert _flagged(backbone, "uneven_w") == set(STRIDE2_LAYERS[:5])
    assert _flagged(backbone, "uneven_h") == set(STRIDE2_LAYERS[:5]) - {"Conv2d_12_depthwise"}
    step = table.set_index("layer").loc["Conv2d_12_depthwise"]
    assert (step.in_h, step.out_h, step.pad_top, step.pad_bottom) == (45, 23, 1, 1)


def test_audit_network_stride1_layers_even() -> None:
    table = padding_audit.audit_network((720, 1280))
    stride1 = table[table["stride_h"] == 1]
    assert not stride1["uneven_h"].any()
    assert not stride1["uneven_w"].any()


def test_audit_network_zero_explicit_unconsumed() -> None:
    # zero_explicit pads (1, 1). On 192 rows a 3x3 stride-2 layer gives 96
    # windows, the last reading rows 189..191, so the bottom zero row is never read.
    row = padding_audit.audit_network((192, 320), "zero_explicit").iloc[0]
    assert (row.pad_top, row.pad_bottom, row.unconsumed_bottom) == (1, 1, 1)
    assert row.uneven_h


def test_keras_audit_valid_unread_row() -> None:
    # VALID 3x3 stride 2 on 8 rows: 3 windows read rows 0..6, so row 7 is
    # never read. On 9 columns 4 windows read columns 0..8.
    row = padding_audit.audit_keras_model(_single_conv_model((8, 9), 3, 2, "valid")).iloc[0]
    assert (row.out_h, row.unread_bottom) == (3, 1)
    assert (row.out_w, row.unread_right) == (4, 0)
    assert not row.uneven_h


def test_nearest_even_sizes_network_720x1280() -> None:
    # Nine 3x3 stride-2 SAME layers all pad evenly iff n = 512 m + 1; the
    # backbone's five iff n = 32 m + 1.
    every = padding_audit.nearest_even_sizes_network((720, 1280))
    assert (every["height"].below, every["height"].above) == (513, 1025)
    assert (every["width"].below, every["width"].above) == (1025, 1537)
    backbone = padding_audit.nearest_even_sizes_network((720, 1280), last_layer="Conv2d_13_pointwise")
    assert (backbone["height"].below, backbone["height"].above) == (705, 737)
    assert (backbone["width"].below, backbone["width"].above) == (1249, 1281)


def test_nearest_even_sizes_network_none_below() -> None:
    # 513 is the smallest size with all nine stride-2 inputs odd; n = 1 is
    # rejected by the network, so 192 has no evenly padding size below.
    sizes = padding_audit.nearest_even_sizes_network((192, 320))
    assert sizes["height"].below is None
    assert sizes["height"].above == 513
    assert not sizes["height"].already_even


def _single_conv_model(size: tuple[int, int], kernel: int, stride: int, padding: str) -> tf_keras.Model:
    inputs = tf_keras.Input((*size, 1))
    outputs = tf_keras.layers.Conv2D(1, kernel, strides=stride, padding=padding, name="conv")(inputs)
    return tf_keras.Model(inputs, outputs)


def _branchy_model(height: int | None = 12, width: int | None = 9) -> tf_keras.Model:
    inputs = tf_keras.Input((height, width, 3))
    stem = tf_keras.layers.Conv2D(4, 3, strides=2, padding="same", name="stem")(inputs)
    padded = tf_keras.layers.ZeroPadding2D(((0, 1), (1, 1)), name="zp")(stem)
    down = tf_keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="down")(padded)
    pool = tf_keras.layers.MaxPooling2D(2, strides=2, padding="same", name="pool")(stem)
    merged = tf_keras.layers.Add(name="add")([down, pool])
    outputs = tf_keras.layers.AveragePooling2D(2, padding="valid", name="avg")(merged)
    return tf_keras.Model(inputs, outputs, name="branchy")


def test_keras_audit_folds_zero_padding() -> None:
    # Input 12 x 9. stem, SAME 3x3 s2: 12 -> 6 padding (0, 1), 9 -> 5 padding (1, 1).
    # zp adds ((0, 1), (1, 1)): 7 x 7. down, VALID 3x3 s2: 3 x 3, and its last
    # window ends on the last padded pixel, so all padding is read.
    table = padding_audit.audit_keras_model(_branchy_model()).set_index("layer")
    assert set(table.index) == {"stem", "down", "pool", "avg"}
    down = table.loc["down"]
    assert (down.in_h, down.out_h, down.pad_top, down.pad_bottom, down.unconsumed_bottom) == (6, 3, 0, 1, 0)
    assert (down.in_w, down.out_w, down.pad_left, down.pad_right, down.unconsumed_right) == (5, 3, 1, 1, 0)
    assert down.uneven_h
    assert not down.uneven_w


def test_keras_audit_pooling_rows() -> None:
    # pool, SAME 2x2 s2 on 6 x 5: total padding (3-1)*2+2-6 = 0 in height and
    # (3-1)*2+2-5 = 1 in width, so (0, 0) and (0, 1).
    # avg, VALID 2x2 s2 on 3 x 3: one window over rows 0..1, row 2 unread.
    table = padding_audit.audit_keras_model(_branchy_model()).set_index("layer")
    pool, avg = table.loc["pool"], table.loc["avg"]
    assert (pool.pad_top, pool.pad_bottom, pool.pad_left, pool.pad_right) == (0, 0, 0, 1)
    assert (pool.uneven_h, pool.uneven_w) == (False, True)
    assert (avg.out_h, avg.unread_bottom, avg.unread_right) == (1, 1, 1)


def test_keras_audit_matches_probe() -> None:
    table = padding_audit.audit_keras_model(_branchy_model())
    for row in table[table["layer"].isin(["stem", "pool"])].itertuples():
        probed_h = padding_audit.probe_same_padding(row.in_h, row.kernel_h, row.stride_h)
        probed_w = padding_audit.probe_same_padding(row.in_w, row.kernel_w, row.stride_w)
        assert probed_h == (row.pad_top, row.pad_bottom - row.unconsumed_bottom), row.layer
        assert probed_w == (row.pad_left, row.pad_right - row.unconsumed_right), row.layer


def test_keras_audit_zero_padding_row() -> None:
    # A ZeroPadding2D read by batch norm, not by a window, gets its own row.
    inputs = tf_keras.Input((8, 8, 1))
    padded = tf_keras.layers.ZeroPadding2D(((2, 1), (0, 0)), name="zp")(inputs)
    normed = tf_keras.layers.BatchNormalization(name="bn")(padded)
    outputs = tf_keras.layers.Conv2D(1, 3, padding="valid", name="conv")(normed)
    table = padding_audit.audit_keras_model(tf_keras.Model(inputs, outputs)).set_index("layer")
    assert list(table.index) == ["zp", "conv"]
    zp = table.loc["zp"]
    assert (zp.in_h, zp.out_h, zp.pad_top, zp.pad_bottom) == (8, 11, 2, 1)
    assert zp.uneven_h
    assert not zp.uneven_w


def test_keras_audit_nested_model() -> None:
    inner_inputs = tf_keras.Input((6, 6, 1))
    inner_outputs = tf_keras.layers.Conv2D(1, 3, strides=2, padding="same", name="conv")(inner_inputs)
    inner = tf_keras.Model(inner_inputs, inner_outputs, name="inner")
    inputs = tf_keras.Input((6, 6, 1))
    outputs = tf_keras.layers.Conv2D(1, 3, padding="same", name="head")(inner(inputs))
    table = padding_audit.audit_keras_model(tf_keras.Model(inputs, outputs)).set_index("layer")
    assert list(table.index) == ["inner/conv", "head"]
    assert table.loc["head", "in_h"] == 3


def test_keras_audit_project_padded_layers() -> None:
    from blindspots.modeling.padding import PaddedDepthwiseConv2D

    # zero_explicit on 8 rows, 3x3 s2: pads (1, 1), 4 windows, the last reads
    # padded rows 6..8 of 0..9, so the bottom zero row is unconsumed.
    inputs = tf_keras.Input((8, 8, 1))
    outputs = PaddedDepthwiseConv2D(3, strides=2, padding_mode="zero_explicit", name="dw")(inputs)
    row = padding_audit.audit_keras_model(tf_keras.Model(inputs, outputs)).iloc[0]
    assert (row.out_h, row.pad_top, row.pad_bottom, row.unconsumed_bottom) == (4, 1, 1, 1)
    assert row.uneven_h


def test_keras_audit_rejects_reused_layer() -> None:
    inputs = tf_keras.Input((8, 8, 1))
    conv = tf_keras.layers.Conv2D(1, 3, padding="same", name="shared")
    outputs = conv(conv(inputs))
    with pytest.raises(padding_audit.AuditError, match="called 2 times"):
        padding_audit.audit_keras_model(tf_keras.Model(inputs, outputs))


def test_nearest_even_sizes_keras() -> None:
    # Two SAME 3x3 s2 layers pad evenly iff both inputs are odd: n = 4 m + 1.
    inputs = tf_keras.Input((8, 12, 1))
    hidden = tf_keras.layers.Conv2D(1, 3, strides=2, padding="same")(inputs)
    outputs = tf_keras.layers.Conv2D(1, 3, strides=2, padding="same")(hidden)
    sizes = padding_audit.nearest_even_sizes_keras(tf_keras.Model(inputs, outputs))
    assert (sizes["height"].below, sizes["height"].above) == (5, 9)
    assert (sizes["width"].below, sizes["width"].above) == (9, 13)


def test_nearest_even_sizes_keras_conflict() -> None:
    # With m = ceil(n / 2) rows after stem: pool (2x2 s2 SAME) pads evenly
    # only for even m, but down (zp (0, 1), then VALID 3x3 s2) reads its zero
    # row exactly when m is even. In width, zp (1, 1) gives down even padding
    # only for odd m, and pool again needs even m. No size satisfies both.
    sizes = padding_audit.nearest_even_sizes_keras(_branchy_model(), max_distance=40)
    for even in sizes.values():
        assert (even.below, even.above) == (None, None), even.axis


def test_keras_model_at_input_size_rejects_mismatch() -> None:
    # Height 13: stem gives 7 rows, down (7 + 1 - 3) // 2 + 1 = 3, pool
    # ceil(7 / 2) = 4, so the Add cannot be built.
    with pytest.raises(padding_audit.AuditError, match="cannot be rebuilt"):
        padding_audit.keras_model_at_input_size(_branchy_model(None, None), (13, 9))


def test_nearest_even_sizes_keras_opaque() -> None:
    inputs = tf_keras.Input((8, 8, 1))
    outputs = tf_keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same")(inputs)
    assert padding_audit.nearest_even_sizes_keras(tf_keras.Model(inputs, outputs)) is None


def test_keras_model_at_input_size() -> None:
    rebuilt = padding_audit.keras_model_at_input_size(_branchy_model(None, None), (12, 9))
    row = padding_audit.audit_keras_model(rebuilt).iloc[0]
    assert (row.in_h, row.in_w) == (12, 9)


def test_audit_keras_model_needs_fixed_size() -> None:
    with pytest.raises(padding_audit.AuditError, match="fixed height"):
        padding_audit.audit_keras_model(_branchy_model(None, None))


def test_write_audit_files(tmp_path) -> None:
    table = padding_audit.audit_network((193, 321))
    sentence = padding_audit.describe_even_sizes(padding_audit.nearest_even_sizes_network((193, 321)))
    csv_path, md_path = padding_audit.write_audit(table, tmp_path / "audit", "title", [sentence])
    assert pd.read_csv(csv_path)["layer"].tolist() == table["layer"].tolist()
    markdown = md_path.read_text()
    assert sentence in markdown
    # 193 x 321 pads evenly in the backbone, but extra_2 (4 -> 2) and extra_3
    # (2 -> 1) get even heights, and extra_2 (6 -> 3) and extra_4 (2 -> 1) even widths.
    assert "- uneven in height: extra_2, extra_3" in markdown
    assert "- uneven in width: extra_2, extra_4" in markdown


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    padding_check.add_arguments(parser)
    return parser.parse_args(argv)


def test_padding_check_reference(tmp_path, capsys) -> None:
    padding_check.run(_parse(["--input", "720x1280", "--out", str(tmp_path)]))
    printed = capsys.readouterr().out
    assert "8 of 35 layers pad unevenly" in printed
    assert "height 720 pads unevenly, nearest even sizes 513 below and 1025 above" in printed
    assert (tmp_path / "padding_audit.csv").exists()


def test_padding_check_keras_file(tmp_path, capsys) -> None:
    path = tmp_path / "model.keras"
    _branchy_model().save(path)
    padding_check.run(_parse(["--input", "24x18", "--keras-model", str(path)]))
    printed = capsys.readouterr().out
    assert "| stem | Conv2D | 3 | 3 | 2 | 2 | 24 | 18 | 12 | 9 |" in printed


def test_padding_check_too_small() -> None:
    with pytest.raises(SystemExit, match="needs at least 2"):
        padding_check.run(_parse(["--input", "7x7"]))


def test_parse_input_size_invalid() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
        padding_check.parse_input_size("720,1280")
