"""Figures: the sample grid of generated images, the report's summary chart, Figure 3 (score
against shots with the cost axis) and a labelled scatter (Figure 6)."""

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


def shots_figure(panels: list[dict], path: str | Path, *, usd_per_image: dict[str, float | None], price_label: str,
                 title: str = "") -> None:
    """Figure 3: score against images per class, one line per data source, with the cost axis.

    A panel is {"dataset", "metric", "classes", "zero_shot", "sources": {source: [{"shots",
    "cler", "cler_std"}]}}; a source's data type is its name before any "/" (generated/DT ->
    generated). The right axis gives what the images of each priced data type cost (shots x
    classes x USD per image), dotted, one line per data type, labelled at its end.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        cost_ax = ax.twinx()
        type_shots: dict[str, set] = {}
        type_colour: dict[str, tuple] = {}
        for i, (source, points) in enumerate(panel["sources"].items()):
            colour = plt.cm.tab10(i % 10)
            shots = np.array([p["shots"] for p in points])
            mean = np.array([p["cler"] for p in points])
            std = np.array([p.get("cler_std", 0.0) for p in points])
            ax.plot(shots, mean, marker="o", color=colour, label=source)
            ax.fill_between(shots, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
            data_type = source.split("/")[0]
            type_shots.setdefault(data_type, set()).update(shots.tolist())
            type_colour.setdefault(data_type, colour)
        priced = False
        for data_type, shot_set in type_shots.items():
            price = usd_per_image.get(data_type)
            if not price:
                continue
            shots = np.array(sorted(shot_set))
            usd = shots * panel["classes"] * price
            cost_ax.plot(shots, usd, linestyle=":", color=type_colour[data_type], label=f"cost: {data_type}")
            cost_ax.annotate(f"{data_type}: {usd[-1]:.2g} USD", (shots[-1], usd[-1]), fontsize=7,
                             color=type_colour[data_type], xytext=(-4, 4), textcoords="offset points", ha="right")
            priced = True
        if panel.get("zero_shot") is not None:
            ax.axhline(panel["zero_shot"], color="grey", linestyle="--", linewidth=1, label="zero-shot")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("images per class (shots)")
        ax.set_ylabel(f"CLER ({panel['metric'].replace('_', ' ')}, %)")
        ax.set_title(f"{panel['dataset']} ({panel['classes']} classes)", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        cost_handles, cost_labels = cost_ax.get_legend_handles_labels()
        ax.legend(handles + cost_handles, labels + cost_labels, fontsize=7, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
        if priced:
            cost_ax.set_yscale("log")
            cost_ax.set_ylabel("USD for the images (dotted)", fontsize=8)
        else:
            cost_ax.set_yticks([])
    fig.suptitle((title + "\n" if title else "") + f"prices: {price_label}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def scatter_figure(points: list[dict], path: str | Path, *, xlabel: str, ylabel: str, title: str = "") -> None:
    """One labelled point per {"x", "y", "label"}, with the least-squares line when there are 3 or more."""
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    xs = np.array([p["x"] for p in points], dtype=float)
    ys = np.array([p["y"] for p in points], dtype=float)
    ax.scatter(xs, ys, color="#4c72b0")
    for p in points:
        ax.annotate(p["label"], (p["x"], p["y"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if len(points) >= 3 and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ys, 1)
        grid = np.linspace(xs.min(), xs.max(), 20)
        ax.plot(grid, slope * grid + intercept, color="grey", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)
