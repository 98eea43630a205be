"""Figure 3 as published: linear-probe score against images per class, averaged over the
datasets of each concept group (the registry's groups: Common, Fine-grained, Rare; the embedded
default's digits is group Embedded), one line per data source, each point labelled with what
its images cost.

Input: per dataset {"group", "classes", "sources": {source: [{"shots", "probe", ...}]}} (the
shots stage's shots.json) and USD per image per data type (metrics/cost.json). A point's cost
is the sum over the group's datasets that have it of shots x classes x USD per image of the
source's data type (its name before any "/"): what all the images behind the point cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.figures._save import save_png

SOURCES = ("original", "retrieved", "generated")  # the lines: each data type's pooled set


def group_curves(datasets: dict[str, dict], usd_per_image: dict[str, float | None],
                 sources=SOURCES) -> dict[str, dict[str, list[dict]]]:
    """{group: {source: [{shots, probe, datasets, usd}]}}: at each shot count, the mean probe
    score over the group's datasets with a probe score there, how many they are, and the cost
    of their images (None when the data type has no price). Groups in first-seen order; points
    by shots."""
    sums: dict[str, dict[str, dict[int, list]]] = {}
    for d in datasets.values():
        for source in sources:
            for point in (d.get("sources") or {}).get(source, []):
                if point.get("probe") is None:
                    continue
                cell = sums.setdefault(d["group"], {}).setdefault(source, {}).setdefault(point["shots"], [[], 0.0])
                cell[0].append(point["probe"])
                price = usd_per_image.get(source.split("/")[0])
                cell[1] = None if price is None or cell[1] is None else cell[1] + point["shots"] * d["classes"] * price
    return {group: {source: [{"shots": k, "probe": float(np.mean(v[0])), "datasets": len(v[0]), "usd": v[1]}
                             for k, v in sorted(by_shots.items())]
                    for source, by_shots in per_source.items()}
            for group, per_source in sums.items()}


def cost_label(usd: float | None) -> str:
    """'$0.034', '$1.2e-06', '$1,234' (3 significant figures), or 'unpriced'."""
    if usd is None:
        return "unpriced"
    if usd >= 1000:
        return f"${usd:,.0f}"
    return f"${usd:.3g}"


def figure3_groups(curves: dict[str, dict[str, list[dict]]], path: str | Path, *, price_label: str,
                   title: str = "") -> None:
    """One panel per group: probe against images per class (log 2), one line per source, each
    point labelled with its cost."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 4.0), squeeze=False)
    for ax, (group, per_source) in zip(axes[0], curves.items()):
        for i, (source, points) in enumerate(per_source.items()):
            colour = plt.cm.tab10(i % 10)
            shots = [p["shots"] for p in points]
            ax.plot(shots, [p["probe"] for p in points], marker="o", color=colour, label=source)
            for p in points:
                ax.annotate(cost_label(p["usd"]), (p["shots"], p["probe"]), fontsize=6, color=colour,
                            xytext=(2, -9 if i % 2 else 4), textcoords="offset points")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("images per class")
        ax.set_ylabel("linear probe (%)")
        n = max((p["datasets"] for pts in per_source.values() for p in pts), default=0)
        ax.set_title(f"{group} ({n} dataset{'s' if n != 1 else ''})", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle((title + "\n" if title else "") + f"labels: USD for the images ({price_label})", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


PUBLISHED_TITLE = "Figure 3 (as published): linear probe against images per class per concept group, labelled with cost"
PUBLISHED_MISSING = "needs metrics/<dataset>/shots.json with probe scores (shots.probe: true; dvc repro shots@<dataset>)"


def shot_sweeps(results: dict[str, dict]) -> dict[str, dict]:
    """{dataset: {"group", "classes", "sources"}} of every dataset of the report's results (dataset ->
    {"shots": shots.json or None, ...}) whose shots sweep ran."""
    return {n: {"group": r["shots"]["dataset"].get("group"), "classes": r["shots"]["dataset"]["classes"],
                "sources": r["shots"]["sources"]} for n, r in results.items() if r["shots"]}


def draw_figure3_published(results: dict[str, dict], usd_per_image: dict, price_label: str, path: str | Path) -> str | None:
    """Draw Figure 3 as published to `path`; None when drawn, else why it is not."""
    curves = group_curves(shot_sweeps(results), usd_per_image)
    if not curves:
        return PUBLISHED_MISSING
    figure3_groups(curves, path, price_label=price_label, title=PUBLISHED_TITLE)
    return None
