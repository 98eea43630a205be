"""Writing a matplotlib figure as a PNG, and a figure's data as CSV, atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genbench import storage  # noqa: E402


def save_png(fig, path: str | Path) -> None:
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def save_csv(path: str | Path, header: list[str], rows: list[list]) -> None:
    """A figure's data as CSV (what `dvc plots show/diff` draws)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    storage.atomic_write_text(path, buf.getvalue())
