"""Render a report `Document` as one self-contained HTML page.

Figures are embedded as base64 `data:` URIs and the style sheet is inline,
so the page has no external reference, runs no script and opens offline.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from blindspots.report.document import Bullets, Document, FigureRef, Note, Paragraph, Section, Table, split_code_spans

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #1b1b1b; }
h1 { font-size: 1.8rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
code { background: #f2f2f2; padding: 0 .25rem; border-radius: 3px; font-size: .92em; }
table { border-collapse: collapse; margin: .5rem 0 1.2rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f5f5f5; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; max-width: 60rem; }
.note { border-left: 4px solid #d9a400; background: #fff8e1; padding: .4rem .8rem; margin: .8rem 0; }
.subtitle { color: #555; }
nav li.level-3 { margin-left: 1.5rem; font-size: .95em; }
"""
# A table cell that contains one number, a percentage, "mean ± CI" or "rate [low, high]" is right-aligned.
_NUMBER_CELL = re.compile(r"^[-+]?\d[\d.]*%?( ± [\d.]+| \[[\d., ]+\])?$")


def inline(text: str) -> str:
    """Escape text for HTML and turn `code` spans into <code> elements."""
    parts = []
    for piece, is_code in split_code_spans(text):
        escaped = html.escape(piece)
        parts.append(f"<code>{escaped}</code>" if is_code else escaped)
    return "".join(parts)


def anchor(title: str) -> str:
    """Return the element id of a heading: lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def data_uri(path: Path) -> str:
    """Return the PNG at `path` as a base64 data URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(table: Table) -> list[str]:
    lines = []
    if table.caption:
        lines.append(f"<p>{inline(table.caption)}</p>")
    lines.append("<table>")
    lines.append("<thead><tr>" + "".join(f"<th>{inline(cell)}</th>" for cell in table.header) + "</tr></thead>")
    lines.append("<tbody>")
    for row in table.rows:
        lines.append("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>")
    lines.append("</tbody></table>")
    return lines


def _cell(text: str) -> str:
    if _NUMBER_CELL.match(text):
        return f'<td class="number">{inline(text)}</td>'
    return f"<td>{inline(text)}</td>"


def _figure(figure: FigureRef, number: int, figures_dir: Path) -> list[str]:
    return [
        "<figure>",
        f'<img src="{data_uri(figures_dir / figure.file_name)}" alt="{html.escape(figure.alt, quote=True)}">',
        f"<figcaption><strong>Figure {number}.</strong> {inline(figure.caption)}</figcaption>",
        "</figure>",
    ]


def _section(section: Section, figure_numbers: dict[int, int], figures_dir: Path, ids: dict[int, str]) -> list[str]:
    level = min(section.level, 6)
    lines = [f'<h{level} id="{ids[id(section)]}">{inline(section.title)}</h{level}>']
    for block in section.blocks:
        if isinstance(block, Paragraph):
            lines.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            lines.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Note):
            lines.append(f'<p class="note"><strong>Note:</strong> {inline(block.text)}</p>')
        elif isinstance(block, Table):
            lines += _table(block)
        elif isinstance(block, FigureRef):
            lines += _figure(block, figure_numbers[id(block)], figures_dir)
    return lines


def _unique_ids(sections: list[Section]) -> dict[int, str]:
    """Give every section a distinct anchor, suffixing repeats with -2, -3, ..."""
    ids: dict[int, str] = {}
    used: dict[str, int] = {}
    for section in sections:
        base = anchor(section.title)
        used[base] = used.get(base, 0) + 1
        ids[id(section)] = base if used[base] == 1 else f"{base}-{used[base]}"
    return ids


def render_html(document: Document, figures_dir: Path | str) -> str:
    """Return the report as one HTML page, reading each figure's PNG from `figures_dir`."""
    figures_dir = Path(figures_dir)
    figure_numbers = {id(figure): index for index, figure in enumerate(document.figures(), start=1)}
    ids = _unique_ids(document.sections)
    contents = [
        f'<li class="level-{section.level}"><a href="#{ids[id(section)]}">{inline(section.title)}</a></li>'
        for section in document.sections
        if section.level <= 3
    ]
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(document.title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{inline(document.title)}</h1>",
        f'<p class="subtitle">{inline(document.subtitle)}</p>',
        "<nav><ul>" + "".join(contents) + "</ul></nav>",
    ]
    for section in document.sections:
        lines += _section(section, figure_numbers, figures_dir, ids)
    lines += ["</body>", "</html>"]
    return "\n".join(lines) + "\n"
