"""Render a report `Document` as GitHub Markdown, with figures linked as `figures/<name>.png`."""

from __future__ import annotations

import re

from blindspots.report.document import Bullets, Document, FigureRef, Note, Paragraph, Section, Table, split_code_spans

# Characters that Markdown would read as emphasis, links or HTML in plain text. An underscore
# inside a word (tf_same_even) is literal in GitHub Markdown, so only one at a word edge is escaped.
_SPECIAL = re.compile(r"([\\*\[\]<]|(?<!\w)_|_(?!\w))")


def inline(text: str) -> str:
    """Escape Markdown syntax in plain text and keep `code` spans as they are."""
    parts = []
    for piece, is_code in split_code_spans(text):
        parts.append(f"`{piece}`" if is_code else _SPECIAL.sub(r"\\\1", piece))
    return "".join(parts)


def table_markdown(table: Table) -> str:
    """Format a table as a GitHub Markdown table, with pipes in cells escaped."""

    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(inline(cell).replace("|", "\\|") for cell in cells) + " |"

    lines = [row(table.header), "| " + " | ".join("---" for _ in table.header) + " |"]
    lines += [row(cells) for cells in table.rows]
    return "\n".join(lines) + "\n"


def _section(section: Section, figure_numbers: dict[int, int]) -> list[str]:
    lines = ["#" * section.level + " " + inline(section.title), ""]
    for block in section.blocks:
        if isinstance(block, Paragraph):
            lines += [inline(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {inline(item)}" for item in block.items] + [""]
        elif isinstance(block, Note):
            lines += [f"> **Note:** {inline(block.text)}", ""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [inline(block.caption), ""]
            lines += [table_markdown(block)]
        elif isinstance(block, FigureRef):
            number = figure_numbers[id(block)]
            lines += [f"![{inline(block.alt)}](figures/{block.file_name})", "", f"*Figure {number}. {inline(block.caption)}*", ""]
    return lines


def render_markdown(document: Document) -> str:
    """Return the report as one Markdown string; figures are numbered in reading order."""
    figure_numbers = {id(figure): index for index, figure in enumerate(document.figures(), start=1)}
    lines = [f"# {inline(document.title)}", "", inline(document.subtitle), ""]
    for section in document.sections:
        lines += _section(section, figure_numbers)
    return "\n".join(lines).rstrip() + "\n"
