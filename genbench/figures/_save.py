"""Writing a matplotlib figure as a PNG, atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genbench import storage  # noqa: E402


def save_png(fig, path: str | Path) -> None:
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
