"""Figure 3 with the cost axis: score against images per class, one line per data source, and what
the images of each priced data type cost."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from genbench.figures._save import save_csv, save_png  # noqa: E402

TITLE = "Figure 3: CLER against images per class per data source, with what the images cost"
MISSING = "needs metrics/<dataset>/shots.json (dvc repro shots@<dataset>)"
DATA_HEADER = ["dataset", "source", "data_type", "shots", "cler", "cler_std", "usd"]


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
    save_png(fig, path)


def figure3_inputs(results: dict[str, dict], usd_per_image: dict) -> tuple[list[dict], list[list]]:
    """(panels for shots_figure, data rows under DATA_HEADER) from the report's results (dataset ->
    {"shots": shots.json or None, "cler": cler.json or None}): one panel per dataset whose shots
    sweep ran, one row per point; a row's usd is shots x classes x USD per image of the source's
    data type (its name before any "/"), "" when that type has no price."""
    panels, rows = [], []
    for name, r in results.items():
        if not r["shots"]:
            continue
        info = r["shots"]["dataset"]
        panels.append({"dataset": name, "metric": info["metric"], "classes": info["classes"],
                       "zero_shot": (r["cler"] or {}).get("zero_shot"), "sources": r["shots"]["sources"]})
        for source, points in r["shots"]["sources"].items():
            price = usd_per_image.get(source.split("/")[0])
            for pt in points:
                rows.append([name, source, source.split("/")[0], pt["shots"], pt["cler"], pt["cler_std"],
                             pt["shots"] * info["classes"] * price if price else ""])
    return panels, rows


def draw_figure3(results: dict[str, dict], usd_per_image: dict, price_label: str, path: str | Path,
                 data_csv: str | Path) -> str | None:
    """Write Figure 3's data to `data_csv` and draw it to `path`; None when drawn, else why it is not."""
    panels, rows = figure3_inputs(results, usd_per_image)
    if not panels:
        return MISSING
    save_csv(data_csv, DATA_HEADER, rows)
    shots_figure(panels, path, usd_per_image=usd_per_image, price_label=price_label, title=TITLE)
    return None
