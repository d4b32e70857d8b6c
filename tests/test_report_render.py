"""Markdown and HTML rendering of a report document, and the number formats of its tables."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from blindspots.report import format as fmt
from blindspots.report.document import Bullets, Document, FigureRef, Note, Paragraph, Section, Table, split_code_spans
from blindspots.report.html import anchor, inline as html_inline, render_html
from blindspots.report.markdown import inline as markdown_inline, render_markdown, table_markdown


def _table() -> Table:
    data = pd.DataFrame({"variant": ["a|b"], "rate": [0.5]}).set_index("variant")
    return Table("rates", ("variant", "rate"), (("a|b", "0.50"),), "Rates.", data)


def _document(tmp_path) -> Document:
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [0, 1])
    figure.savefig(tmp_path / "line.png", dpi=20)
    sections = [
        Section("Summary", 2, [Bullets(("first `a_b` point", "second <point>"))]),
        Section("Results", 2, [Paragraph("Rates by row."), _table(), FigureRef("line.png", "A line.", "a line"), Note("Left out.")]),
        Section("Results", 3, [FigureRef("line.png", "The same line.", "a line")]),
    ]
    return Document("Study", "Generated today.", sections)


def test_code_spans_split():
    assert split_code_spans("run `blindspots report` now") == [("run ", False), ("blindspots report", True), (" now", False)]


def test_code_spans_unpaired_backtick():
    assert split_code_spans("a `b` c ` d") == [("a ", False), ("b", True), (" c ` d", False)]


def test_markdown_inline_escapes():
    assert markdown_inline("*x* [y] <4 _z_") == "\\*x\\* \\[y\\] \\<4 \\_z\\_"


def test_markdown_inline_keeps_word_underscores():
    assert markdown_inline("tf_same_even and `a_*b`") == "tf_same_even and `a_*b`"


def test_markdown_table_escapes_pipes():
    assert table_markdown(_table()) == "| variant | rate |\n| --- | --- |\n| a\\|b | 0.50 |\n"


def test_markdown_numbers_figures(tmp_path):
    markdown = render_markdown(_document(tmp_path))
    assert "![a line](figures/line.png)\n\n*Figure 1. A line.*" in markdown
    assert "*Figure 2. The same line.*" in markdown


def test_markdown_note_is_quote(tmp_path):
    assert "> **Note:** Left out." in render_markdown(_document(tmp_path))


def test_html_inline_escapes():
    assert html_inline("<script> & `x<y>`") == "&lt;script&gt; &amp; <code>x&lt;y&gt;</code>"


def test_html_anchor():
    assert anchor("Detection rate by position") == "detection-rate-by-position"


def test_html_repeated_titles_get_distinct_ids(tmp_path):
    page = render_html(_document(tmp_path), tmp_path)
    assert '<h2 id="results">' in page
    assert '<h3 id="results-2">' in page


def test_html_embeds_png(tmp_path):
    page = render_html(_document(tmp_path), tmp_path)
    assert page.count('<img src="data:image/png;base64,iVBORw0KGgo') == 2


def test_html_right_aligns_numbers(tmp_path):
    page = render_html(_document(tmp_path), tmp_path)
    assert '<tr><td>a|b</td><td class="number">0.50</td></tr>' in page


def test_format_number_missing():
    assert fmt.number(float("nan")) == "n/a"


def test_format_number_integer():
    assert fmt.number(12) == "12"


def test_format_mean_ci():
    assert fmt.mean_ci(0.5, 0.0123) == "0.500 ± 0.012"


def test_format_mean_without_ci():
    assert fmt.mean_ci(0.5, float("nan")) == "0.500"


def test_format_interval():
    assert fmt.interval(0.8, 0.7, 0.875) == "0.80 [0.70, 0.88]"


def test_format_percent():
    assert fmt.percent(0.125) == "12.5%"
