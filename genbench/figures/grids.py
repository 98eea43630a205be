"""Figures 7, 12, 13 (per class, direct sampling beside sampling after textual inversion on
original and on retrieved references) and Figure 14 (strategies by classes): image grids from a
generated manifest. A row the run did not generate is drawn as a row of cells that say why.

A strategy name is a base and '+'-joined parts (DT+TI); TI images use the token embeddings
generate.ti_embeddings names, so one run has TI on one reference kind (original or retrieval).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genbench import storage

GRID_CLASSES = 10  # classes shown per grid
GRID_PER_CELL = 2  # images per cell
TI_ROWS = {"original": "TI on original", "retrieval": "TI on retrieved"}  # reference kind -> row label


def _parts(strategy: str) -> list[str]:
    return strategy.split("+")


def ti_plan(strategies: list[str], ti_reference: str) -> list[tuple[str, str | None, str]]:
    """[(row label, strategy or None, why not)] for direct sampling, TI on original and TI on
    retrieved. Direct sampling is the first TI strategy with TI removed when the run made it,
    else the first strategy without TI; a TI row is the first TI strategy when `ti_reference`
    (original | retrieval) is its reference kind."""
    with_ti = [s for s in strategies if "TI" in _parts(s)]
    plain = [s for s in strategies if "TI" not in _parts(s)]
    bases = ["+".join(p for p in _parts(s) if p != "TI") for s in with_ti]
    direct = next((b for b in bases if b in plain), plain[0] if plain else None)
    rows = [("direct sampling", direct, "" if direct else "the run generated no strategy without TI")]
    for kind, label in TI_ROWS.items():
        if not with_ti:
            rows.append((label, None, "generate.strategies has no +TI strategy (e.g. DT+TI)"))
        elif ti_reference != kind:
            rows.append((label, None, f"generate.ti_embeddings is the {ti_reference} inversion; a run with "
                                      f"data/{{dataset}}/inversion/{'retrieved' if kind == 'retrieval' else kind} draws it"))
        else:
            rows.append((label, with_ti[0], ""))
    return rows


def cell_rows(manifest: pd.DataFrame, strategy: str, classes: list[int], per_cell: int) -> pd.DataFrame:
    """The manifest rows of one grid row: each class's first `per_cell` images of `strategy`, in
    manifest order, classes in the given order."""
    own = manifest[manifest["strategy"] == strategy]
    own = own[own.groupby("class_index").cumcount() < per_cell]
    order = {c: i for i, c in enumerate(classes)}
    own = own[own["class_index"].isin(order)]
    return own.assign(_order=own["class_index"].map(order)).sort_values("_order", kind="stable").drop(columns="_order")


def shown_classes(num_classes: int, limit: int) -> list[int]:
    """Up to `limit` class indices spread evenly over the classes (all of them when they fit)."""
    if num_classes <= limit:
        return list(range(num_classes))
    return sorted({int(round(i)) for i in np.linspace(0, num_classes - 1, limit)})


def image_grid(rows: list[tuple[str, list[np.ndarray] | None, str]], classnames: list[str], path: str | Path, *,
               title: str = "") -> None:
    """rows: (label, one tile per column or None, why not). A tile is an (H, W, 3) uint8 image
    (several images of a cell side by side); a None row says why in every cell."""
    import matplotlib.pyplot as plt

    from genbench.figures._save import save_png

    cols = len(classnames)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.2 * cols + 1.2, 1.25 * len(rows) + 0.6), squeeze=False)
    for r, (label, tiles, reason) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            tile = tiles[c] if tiles is not None and c < len(tiles) else None
            if tile is not None:
                ax.imshow(tile, interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "not produced" if tiles is None else "no image", ha="center", va="center",
                        fontsize=6, transform=ax.transAxes, color="#888888")
            if r == 0:
                ax.set_title(classnames[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
        if tiles is None and reason:
            axes[r][0].annotate(f"not produced: {reason}", (0, -0.12), xycoords="axes fraction", fontsize=6,
                                color="#c44e52", va="top")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.08, hspace=0.35)
    save_png(fig, path)


def tiles_for(images: np.ndarray, rows: pd.DataFrame, classes: list[int], per_cell: int) -> list[np.ndarray | None]:
    """One tile per class: its images in `rows` side by side (white where fewer than per_cell),
    or None when it has none. `images` are those of `rows`, in row order."""
    out = []
    labels = rows["class_index"].to_numpy()
    for c in classes:
        own = [images[i] for i in np.flatnonzero(labels == c)]
        if not own:
            out.append(None)
            continue
        blank = np.full_like(own[0], 255)
        out.append(np.concatenate(own + [blank] * (per_cell - len(own)), axis=1))
    return out


def draw_grid(generated: str | Path, manifest: pd.DataFrame, plan: list[tuple[str, str | None, str]],
              classnames: list[str], path: str | Path, title: str) -> None:
    """Draw one grid to `path`: a row per (label, strategy or None, why not) of `plan`, up to
    GRID_CLASSES classes (shown_classes), GRID_PER_CELL images a cell, the images read from the
    generated folder `generated` whose manifest is `manifest`."""
    classes = shown_classes(len(classnames), GRID_CLASSES)
    rows = []
    for label, strategy, reason in plan:
        if strategy is None:
            rows.append((label, None, reason))
            continue
        picked = cell_rows(manifest, strategy, classes, GRID_PER_CELL)
        rows.append((label, tiles_for(storage.load_images(generated, picked), picked, classes, GRID_PER_CELL), ""))
    image_grid(rows, [classnames[c] for c in classes], path, title=title)
