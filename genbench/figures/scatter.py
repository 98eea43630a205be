"""A labelled scatter with its least-squares line: Figure 6 (CLER gain against MTS) and Figure 10."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genbench.figures._save import save_csv, save_png  # noqa: E402

FIGURE6_TITLE = "Figure 6: CLER gain over zero-shot against dataset-level mean text similarity"
FIGURE6_MISSING = "needs the retrieve stage (metrics/<dataset>/retrieve.json with 'mts')"


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
    save_png(fig, path)


def figure6_points(results: dict[str, dict]) -> list[dict]:
    """Figure 6's points {"x": MTS, "y": CLER(generated) - zero-shot, "label": dataset}, one per
    dataset of the report's results (dataset -> {"retrieve", "cler"}, metric files or None) with
    both (MTS: retrieve.json key `mts`)."""
    points = []
    for name, r in results.items():
        mts = (r["retrieve"] or {}).get("mts")
        if mts is not None and r["cler"]:
            gain = r["cler"]["sets"]["generated"]["cler"] - r["cler"]["zero_shot"]
            points.append({"x": mts, "y": gain, "label": name})
    return points


def draw_figure6(results: dict[str, dict], path: str | Path, data_csv: str | Path) -> str | None:
    """Write Figure 6's data to `data_csv` and draw it to `path`; None when drawn, else why it is not."""
    points = figure6_points(results)
    if not points:
        return FIGURE6_MISSING
    save_csv(data_csv, ["dataset", "mts", "cler_gain"], [[p["label"], p["x"], p["y"]] for p in points])
    scatter_figure(points, path, xlabel="mean text similarity (MTS)", ylabel="CLER(generated) - zero-shot (points)",
                   title=FIGURE6_TITLE)
    return None
