"""The report's per-dataset summary chart: one bar per score, with a reference line (chance)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genbench.figures._save import save_png  # noqa: E402


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
    save_png(fig, path)


def score_values(cler: dict, probe: dict | None) -> dict[str, float]:
    """The bars of a dataset's score chart: zero-shot, CLER of each set (cler.json), the probe
    score of each set (probe.json, none when it is None)."""
    values = {"zero-shot": cler["zero_shot"]}
    values.update({f"CLER {n}": s["cler"] for n, s in cler["sets"].items()})
    values.update({f"probe {n}": s["score"] for n, s in (probe or {}).get("sets", {}).items()})
    return values
