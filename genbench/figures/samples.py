"""The sample grid of generated images the generate stage draws (plots/<dataset>/samples.png):
one row per class."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from genbench.figures._save import save_png  # noqa: E402


def grid_rows(manifest: pd.DataFrame, per_class: int = 8) -> pd.DataFrame:
    """The manifest rows `sample_grid` shows: each class's first `per_class`, in manifest order."""
    return manifest[manifest.groupby("class_index").cumcount() < per_class].reset_index(drop=True)


def sample_grid(images: np.ndarray, manifest: pd.DataFrame, classnames: list[str], path: str | Path,
                per_class: int = 8, title: str = "") -> None:
    """One row per class (its first `per_class` images in manifest order)."""
    rows = []
    h, w = images.shape[1:3]
    for cls in range(len(classnames)):
        idx = np.flatnonzero(manifest["class_index"].to_numpy() == cls)[:per_class]
        tiles = [images[i] for i in idx] + [np.full((h, w, 3), 255, np.uint8)] * (per_class - len(idx))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    fig, ax = plt.subplots(figsize=(per_class * 0.6 + 1, len(classnames) * 0.6 + 0.6))
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([h * (i + 0.5) for i in range(len(classnames))], labels=classnames)
    ax.set_xticks([])
    if title:
        ax.set_title(title, fontsize=8)
    save_png(fig, path)
