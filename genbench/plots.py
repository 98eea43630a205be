"""Figures: the sample grid of generated images and the report's summary chart."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from genbench import storage  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


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
    _save(fig, path)


def bar_chart(values: dict[str, float], path: str | Path, *, ylabel: str, title: str = "", reference: float | None = None,
              reference_label: str = "") -> None:
    fig, ax = plt.subplots(figsize=(max(4, len(values) * 0.9), 3.2))
    names = list(values)
    ax.bar(names, [values[n] for n in names], color="#4c72b0")
    for i, n in enumerate(names):
        ax.text(i, values[n], f"{values[n]:.1f}", ha="center", va="bottom", fontsize=8)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label=reference_label)
        ax.legend(fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    _save(fig, path)
