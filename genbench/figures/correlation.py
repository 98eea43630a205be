"""Figure 9: CLER against the linear probe for 5-shot original and retrieved data, one point per
(dataset, source), from the shots sweep's points at 5 images per class (shots.json)."""

from __future__ import annotations

from pathlib import Path

from genbench.figures.groups import shot_sweeps

SHOTS = 5
SOURCES = ("original", "retrieved")
TITLE = f"Figure 9: CLER against linear probe with {SHOTS}-shot original and retrieved data"
MISSING = f"needs shots.json points at {SHOTS} images per class with probe scores (shots.counts including {SHOTS})"


def five_shot_points(datasets: dict[str, dict], shots: int = SHOTS, sources=SOURCES) -> list[dict]:
    """[{dataset, source, cler, probe}] for each dataset's sources with a point at `shots` images
    per class that has both scores; dataset order, then `sources` order."""
    out = []
    for name, d in datasets.items():
        for source in sources:
            for point in (d.get("sources") or {}).get(source, []):
                if point["shots"] == shots and point.get("probe") is not None and point.get("cler") is not None:
                    out.append({"dataset": name, "source": source, "cler": point["cler"], "probe": point["probe"]})
    return out


def figure9(points: list[dict], path: str | Path, *, title: str = "") -> None:
    """One panel per source: probe against CLER, a labelled point per dataset, the least-squares
    line with 3 or more points, and Pearson r when defined."""
    import matplotlib.pyplot as plt
    import numpy as np

    from genbench.figures._save import save_png

    sources = list(dict.fromkeys(p["source"] for p in points))
    fig, axes = plt.subplots(1, len(sources), figsize=(4.4 * len(sources), 3.6), squeeze=False)
    for ax, source in zip(axes[0], sources):
        own = [p for p in points if p["source"] == source]
        xs, ys = np.array([p["cler"] for p in own]), np.array([p["probe"] for p in own])
        ax.scatter(xs, ys, color="#4c72b0")
        for p in own:
            ax.annotate(p["dataset"], (p["cler"], p["probe"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        label = f"{SHOTS}-shot {source}"
        if len(own) >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
            slope, intercept = np.polyfit(xs, ys, 1)
            grid = np.linspace(xs.min(), xs.max(), 20)
            ax.plot(grid, slope * grid + intercept, color="grey", linewidth=1)
            label += f", r = {np.corrcoef(xs, ys)[0, 1]:.2f}"
        ax.set_title(f"{label} (n = {len(own)})", fontsize=9)
        ax.set_xlabel("CLER (%)")
        ax.set_ylabel("linear probe (%)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def draw_figure9(results: dict[str, dict], path: str | Path) -> str | None:
    """Draw Figure 9 to `path` from the report's results; None when drawn, else why it is not."""
    points = five_shot_points(shot_sweeps(results))
    if not points:
        return MISSING
    figure9(points, path, title=TITLE)
    return None
