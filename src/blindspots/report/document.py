"""The report as a format-free document: sections of paragraphs, lists, notes, tables and figures.

`blindspots.report.build` assembles it and `markdown` and `html` render it,
so both outputs carry the same text. Text may contain `code` spans in
backticks, and nothing else: renderers escape every other character.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import pandas as pd


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A remark about a section left out or incomplete, rendered apart from the results."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table shown as formatted cells and written to tables/<name>.csv (full precision) and <name>.md.

    `data` is the full-precision table for the CSV, written with its index.
    """

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str
    data: pd.DataFrame = field(compare=False, repr=False)


@dataclass(frozen=True)
class FigureRef:
    """A PNG under reports/figures/ and its caption, which describes what to look for."""

    file_name: str
    caption: str
    alt: str


Block = Union[Paragraph, Bullets, Note, Table, FigureRef]


@dataclass
class Section:
    """A heading (level 2 or deeper, the title is level 1) and its blocks."""

    title: str
    level: int
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    """The whole report: a title, one line under it, and the sections in reading order."""

    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)

    def figures(self) -> list[FigureRef]:
        return [block for section in self.sections for block in section.blocks if isinstance(block, FigureRef)]

    def tables(self) -> list[Table]:
        return [block for section in self.sections for block in section.blocks if isinstance(block, Table)]


def split_code_spans(text: str) -> list[tuple[str, bool]]:
    """Split text into (part, is_code) pieces at backticks; an unpaired backtick stays literal."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:
        # An odd number of backticks: the last one has no partner, so join it back to the text.
        pieces = pieces[:-2] + [pieces[-2] + "`" + pieces[-1]]
    return [(piece, index % 2 == 1) for index, piece in enumerate(pieces) if piece]

