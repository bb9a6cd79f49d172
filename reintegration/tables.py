"""Tables for people: readable at 80 columns and in a pipe.

A table here is a few short columns (ids, dates, amounts, rule ids, states), each row followed by its long text (an
explanation, a legal basis) wrapped below it and indented, instead of a column squeezed to a few letters. A column
marked ``spill`` that does not fit the width goes below its row too, as ``header: value``. Text is wrapped only at
spaces, never inside an amount and its currency ("185.00 EUR"): ids, ISO dates, amounts and rule ids stay whole on
one line. A word longer than a line (a NATS subject) is broken after a dot.

rich is used for the styles only: each line is laid out here and printed as it is (no wrapping, no cropping), so
that the width of the console (``COLUMNS``; 80 in a pipe) is the width of the table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

#: A space that wrapping never breaks: between an amount and its currency.
_KEPT = "\ue000"
_AMOUNT_SPACE = re.compile(r"(?<=\d) (?=EUR\b)")


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False
    #: a phrase that may wrap at its spaces; otherwise each line of a cell is kept whole (an id, a date, a rule id)
    wrap: bool = False
    #: when the row does not fit the width, shown below it as ``header: value`` (the last such column first)
    spill: bool = False


@dataclass(frozen=True)
class Row:
    #: one cell a column, each maybe of several lines ("\n")
    cells: Sequence[str]
    #: paragraphs printed below the row, indented
    below: Sequence[str] = ()
    style: str | None = None


def _words(paragraph: str) -> list[str]:
    return [w.replace(_KEPT, " ") for w in _AMOUNT_SPACE.sub(_KEPT, paragraph).split(" ") if w]


def _pieces(word: str, width: int) -> list[str]:
    """``word`` in pieces of at most ``width``: whole when it fits, else broken after its dots (cut only when a
    part between two dots is itself longer than a line)."""
    if cell_len(word) <= width:
        return [word]
    chunks = [""]
    for part in re.findall(r"[^.]+\.?|\.", word):
        if chunks[-1] and cell_len(chunks[-1] + part) > width:
            chunks.append("")
        chunks[-1] += part
    return [chunk[i:i + width] for chunk in chunks for i in range(0, len(chunk), width)]


def wrap(text: str, width: int) -> list[str]:
    """``text`` wrapped to ``width`` at its spaces (its own line breaks kept), amounts kept with their currency."""
    width = max(width, 1)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in _words(paragraph):
            first, *rest = _pieces(word, width)
            if line and cell_len(line) + 1 + cell_len(first) <= width:
                line += " " + first
            else:
                if line:
                    lines.append(line)
                line = first
            for piece in rest:
                lines.append(line)
                line = piece
        lines.append(line)
    return lines


def _longest_word(text: str) -> int:
    return max((cell_len(w) for line in text.split("\n") for w in _words(line)), default=0)


def _longest_line(text: str) -> int:
    return max((cell_len(line) for line in text.split("\n")), default=0)


def _layout(columns: Sequence[Column], rows: Sequence[Row], width: int, gap: int) -> tuple[list[int], list[int]]:
    """Which columns are shown as columns (the others spill below their rows), and every column's width."""
    natural = [max([cell_len(c.header), *(_longest_line(r.cells[i]) for r in rows)]) for i, c in enumerate(columns)]
    least = [max([_longest_word(c.header),
                  *((_longest_word if c.wrap else _longest_line)(r.cells[i]) for r in rows)])
             for i, c in enumerate(columns)]
    shown = list(range(len(columns)))

    def total(widths: list[int]) -> int:
        return sum(widths[i] for i in shown) + gap * (len(shown) - 1)

    while total(least) > width and (spilling := [i for i in shown if columns[i].spill]):
        shown.remove(spilling[-1])
    widths = list(natural)
    while total(widths) > width:
        narrower = [i for i in shown if widths[i] > least[i]]
        if not narrower:
            break  # nothing left to wrap: the rows are wider than the console
        widest = max(narrower, key=lambda i: widths[i])
        widths[widest] -= 1
    return shown, widths


def _line(console: Console, text: str, style: str | None = None) -> None:
    console.print(Text(text.rstrip(), style=style or ""), soft_wrap=True)


def print_paragraph(console: Console, text: str, *, indent: int = 0, hanging: int = 0, style: str | None = None,
                    width: int | None = None) -> None:
    """``text`` wrapped to the console's width, ``indent`` spaces before it and ``hanging`` more before each line
    after the first."""
    width = width or console.width
    for n, line in enumerate(wrap(text, width - indent - hanging)):
        _line(console, " " * (indent + (hanging if n else 0)) + line, style)


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Row], *, title: str | None = None,
                indent: int = 4, gap: int = 2, header: bool = True, blank_lines: bool = True) -> None:
    """``rows`` as a table no wider than the console (unless one unbreakable cell is), each row's ``below`` text
    (and the columns that spilled) wrapped below it, ``indent`` spaces in."""
    width = console.width
    if title:
        print_paragraph(console, title, style="bold")
    if not rows:
        _line(console, "  (none)")
        return
    shown, widths = _layout(columns, rows, width, gap)

    def lay_out(cells: Sequence[str], style: str | None) -> None:
        wrapped = {i: wrap(cells[i], widths[i]) if columns[i].wrap or cell_len(columns[i].header) > widths[i]
                   else cells[i].split("\n") for i in shown}
        for n in range(max(len(lines) for lines in wrapped.values())):
            parts = []
            for i in shown:
                text = wrapped[i][n] if n < len(wrapped[i]) else ""
                pad = " " * (widths[i] - cell_len(text))
                parts.append(pad + text if columns[i].right else text + pad)
            _line(console, (" " * gap).join(parts), style)

    if header:
        lay_out([c.header for c in columns], "bold")
        _line(console, (" " * gap).join("─" * widths[i] for i in shown))
    for row in rows:
        lay_out(row.cells, row.style)
        spilled = "; ".join(f"{columns[i].header.replace(' ', _KEPT)}: {' '.join(row.cells[i].split())}"
                            for i in range(len(columns)) if i not in shown and row.cells[i].strip())
        for text in ([spilled] if spilled else []) + [t for t in row.below if t]:
            print_paragraph(console, text, indent=indent, style=row.style)
        if blank_lines and (spilled or any(row.below)):
            _line(console, "")
