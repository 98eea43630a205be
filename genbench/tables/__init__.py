"""The paper's tables rebuilt from a run, published value beside reproduced value.

Builders take the published rows (reports/reference/*.csv, `read_reference`) and plain dicts of
the run's results and return a `Table`; `write_table` writes it as Markdown, CSV and LaTeX.
run_tables turns a run's metric files into those dicts and builds every table of the report.
"""

from __future__ import annotations

from pathlib import Path

from genbench import storage
from genbench.tables.cler_tables import table2, table3
from genbench.tables.cost_tables import KIT_DATA_TYPES, section31, table1, table5
from genbench.tables.datasets_table import table4
from genbench.tables.orientation import mnist_orientation
from genbench.tables.reference import read_reference, registry_name
from genbench.tables.render import NOT_PUBLISHED, NOT_RUN, RENDERERS, Column, Row, Table
from genbench.tables.shots import cler_by_shots, default_shot_counts


def write_table(table: Table, directory: str | Path) -> dict[str, Path]:
    """Write reports/tables/<key>.md, .csv and .tex atomically; returns {suffix: path}."""
    out = {}
    for suffix, render in RENDERERS.items():
        path = Path(directory) / f"{table.key}.{suffix}"
        storage.atomic_write_text(path, render(table))
        out[suffix] = path
    return out


__all__ = ["KIT_DATA_TYPES", "NOT_PUBLISHED", "NOT_RUN", "Column", "Row", "Table", "cler_by_shots",
           "default_shot_counts", "mnist_orientation", "read_reference", "registry_name", "section31", "table1",
           "table2", "table3", "table4", "table5", "write_table"]
