"""Variant colours, uneven-padding bands and the sweep figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blindspots.sweep import figures


def test_variant_colours_tab10_order():
    colours = figures.variant_colours([f"v{index}" for index in range(11)])
    assert colours["v0"] == "#1f77b4"
    assert colours["v1"] == "#ff7f0e"
    # The eleventh variant wraps around to the first colour.
    assert colours["v10"] == colours["v0"]


def test_bands_tf_same_even_height():
    bands = figures.uneven_padding_bands((192, 320), "tf_same", "tf")
    # Each stride-2 layer on an even size pads 0 before and 1 after. With 0
    # before, a layer's output position 0 is centred one input step lower,
    # so the last position of every layer is centred on row 191. Cumulative
    # strides 1, 2, 4, 8, 16, 32 give bands from 191 - j / 2, rounded up.
    # extra_2 gets 3 rows (odd, so even padding). extra_3 gets 2 rows at
    # stride 128, centred at 63 + 128 = 191, so its band starts at 127.
    expected = [
        ("Conv2d_0", 191),
        ("Conv2d_2_depthwise", 190),
        ("Conv2d_4_depthwise", 189),
        ("Conv2d_6_depthwise", 187),
        ("Conv2d_12_depthwise", 183),
        ("extra_1", 175),
        ("extra_3", 127),
    ]
    assert [(band.layer, band.start) for band in bands] == expected
    assert {band.stop for band in bands} == {192}
    assert {band.side for band in bands} == {"after"}


def test_bands_tf_same_odd_height():
    bands = figures.uneven_padding_bands((193, 321), "tf_same", "tf")
    # 193, 97, 49, 25, 13 and 7 are odd, so the backbone and extra_1 pad
    # evenly and centres stay on row 0. extra_2 gets 4 rows at stride 64:
    # last centre 192, band from 160. It pads (0, 1), which moves the centre
    # to 64. extra_3 gets 2 rows at stride 128: last centre 192, band from 128.
    bands = [(band.layer, band.start, band.stop) for band in bands]
    assert bands == [("extra_2", 160, 193), ("extra_3", 128, 193)]


def test_bands_explicit_padding_top_side():
    bands = figures.uneven_padding_bands((192, 320), "zero_explicit", "tf")
    # Padding (1, 1) on an even size leaves the bottom row unread, so the
    # read padding is uneven at the top. Conv2d_0's band is row 0 alone.
    assert bands[0] == figures.PaddingBand("Conv2d_0", 0, 1, "before")
    assert bands[0].edge == 1


def test_bands_column_axis():
    bands = figures.uneven_padding_bands((192, 320), "tf_same", "tf", axis="column")
    assert bands[0] == figures.PaddingBand("Conv2d_0", 319, 320, "after")


def _rates(shift: float) -> pd.DataFrame:
    rows = np.arange(0, 40, 2)
    rate = np.clip(0.8 - shift * (rows > 30), 0, 1)
    return pd.DataFrame(
        {"row": rows, "rate": rate, "lower": rate - 0.1, "upper": np.minimum(rate + 0.1, 1), "mean_score": rate * 0.9}
    )


def _legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_rate_figure_labels_and_legend():
    rates = {"even": _rates(0.5), "odd": _rates(0.0)}
    colours = figures.variant_colours(["even", "odd"])
    bands = {"even": [figures.PaddingBand("Conv2d_0", 39, 40, "after")]}
    figure, caption = figures.plot_rate_by_position(rates, colours, bands)
    ax = figure.axes[0]
    assert ax.get_title()
    assert "px" in ax.get_xlabel()
    assert ax.get_ylabel()
    assert _legend_texts(ax) == ["even", "odd", "even: uneven padding"]
    assert ax.lines[0].get_color() == colours["even"]
    assert "Wilson" in caption


def test_rate_and_score_figure_threshold_line():
    rates = {"even": _rates(0.5)}
    figure, caption = figures.plot_rate_and_score(rates, figures.variant_colours(["even"]), 0.3)
    rate_ax, score_ax = figure.axes
    assert "score threshold 0.3" in _legend_texts(score_ax)
    assert "px" in score_ax.get_xlabel()
    assert figure.get_suptitle()
    assert "threshold" in caption


def test_heatmap_reindexes_missing_cells(tmp_path):
    cells = pd.DataFrame({"row": [0, 0, 16, 16], "column": [0, 8, 0, 8], "rate": [1.0, 0.5, 0.0, 0.25]})
    figure, caption = figures.plot_heatmaps({"even": cells}, figures.variant_colours(["even"]), bin_size=8)
    image = figure.axes[0].images[0]
    data = np.ma.getdata(image.get_array())
    # Rows 0, 8, 16 (row 8 had no placement), columns 0, 8.
    assert data.shape == (3, 2)
    assert np.isnan(data[1]).all()
    assert data[2, 1] == pytest.approx(0.25)
    assert "Grey cells had no placement" in caption
    path = figures.save_figure(figure, tmp_path / "heatmap.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
