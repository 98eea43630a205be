"""A table of the report, and its three renderings: Markdown, CSV and LaTeX.

A `Table` holds rows of cells. A cell is a number, a text, or None; None prints as the row's
`missing` marker ("not run" for a reproduced value the pipeline has not produced, "not
published" for a value the paper does not print). Numbers print with their column's format in
Markdown and LaTeX and at full precision in CSV, so the CSV can be checked against the metric
files it was built from.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

NOT_RUN = "not run"
NOT_PUBLISHED = "not published"

# format name -> how a number prints in Markdown and LaTeX (difference rows add a sign)
FORMATS: dict[str, str] = {
    "text": "{}",
    "score": "{:.2f}",
    "usd": "{:.2e}",
    "usd_total": "{:,.2f}",
    "int": "{:,.0f}",
    "hours": "{:.3g}",
    "ratio": "{:.3g}",
}


@dataclass(frozen=True)
class Column:
    name: str
    fmt: str = "text"

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"column {self.name!r}: format {self.fmt!r} not in {', '.join(FORMATS)}")


@dataclass
class Row:
    """One line of a table. `signed` prints numbers with a sign (difference rows); `fmt`, when
    set, prints the row's numbers in that format instead of their columns'."""

    cells: list
    missing: str = NOT_RUN
    signed: bool = False
    fmt: str | None = None


@dataclass
class Table:
    """A table of the report: `key` names its files (reports/tables/<key>.{md,csv,tex})."""

    key: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, cells: list, *, missing: str = NOT_RUN, signed: bool = False, fmt: str | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.key}: row has {len(cells)} cells for {len(self.columns)} columns")
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"table {self.key}: row format {fmt!r} not in {', '.join(FORMATS)}")
        self.rows.append(Row(list(cells), missing, signed, fmt))

    def column(self, name: str) -> list:
        """The raw cells of column `name`, top to bottom."""
        index = [c.name for c in self.columns].index(name)
        return [row.cells[index] for row in self.rows]

    def cell_text(self, row: Row, index: int) -> str:
        column = self.columns[index].fmt
        fmt = row.fmt if row.fmt and column != "text" else column
        return format_cell(row.cells[index], fmt, missing=row.missing, signed=row.signed)

    def reproduced_cells(self) -> tuple[int, int]:
        """(numbers filled, numeric cells) over the rows holding this run's values: those with a text
        cell starting 'reproduced' or reading 'this run'."""
        numeric = [i for i, c in enumerate(self.columns) if c.fmt != "text"]
        ours = [r for r in self.rows if any(isinstance(v, str) and (v.startswith("reproduced") or v == "this run")
                                            for v in r.cells)]
        return sum(_is_number(r.cells[i]) for r in ours for i in numeric), len(ours) * len(numeric)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_cell(value, fmt: str, *, missing: str = NOT_RUN, signed: bool = False) -> str:
    if value is None:
        return missing
    if not _is_number(value) or fmt == "text":
        return str(value)
    text = FORMATS[fmt].format(value)
    return f"+{text}" if signed and value >= 0 and not text.startswith("+") else text


def to_markdown(table: Table) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"## {table.title}", ""]
    lines.append("| " + " | ".join(escape(c.name) for c in table.columns) + " |")
    lines.append("|" + "|".join("---:" if c.fmt != "text" else "---" for c in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(escape(table.cell_text(row, i)) for i in range(len(table.columns))) + " |")
    if table.notes:
        lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        writer.writerow([row.missing if v is None else (repr(float(v)) if _is_number(v) and isinstance(v, float) else v)
                         for v in row.cells])
    return buf.getvalue()


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A `table` environment (booktabs rules, scaled to the text width: needs booktabs and graphicx)."""
    spec = "".join("r" if c.fmt != "text" else "l" for c in table.columns)
    lines = [
        f"% {table.title}. Generated by `genbench report`; needs \\usepackage{{booktabs,graphicx}}.",
        r"\begin{table}[ht]",
        r"\centering",
        f"\\caption{{{latex_escape(table.title)}}}",
        f"\\label{{tab:genbench-{table.key}}}",
        r"\resizebox{\textwidth}{!}{%",
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(c.name) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        lines.append(" & ".join(latex_escape(table.cell_text(row, i)) for i in range(len(table.columns))) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    if table.notes:
        lines += [f"% {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
