"""Figure 2: the linear probe on generated data (best strategy per dataset) against zero-shot,
per dataset sorted by improvement (left), and the mean over datasets per external data source
(right).

Input: per dataset {"group", "zero_shot", "probe": {source: score}} where the probe sources are
the probe stage's set names (generated/<strategy>, generated, retrieved, original).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.figures._save import save_png

SOURCES = ("zero-shot", "generated", "retrieved", "original")  # the right panel's bars, in order


def best_strategy(probe: dict[str, float]) -> tuple[str, float] | None:
    """(strategy, score) of the generated/<strategy> set with the highest probe score; ties go to
    the first in name order. None without a per-strategy set."""
    per_strategy = sorted((k.split("/", 1)[1], v) for k, v in probe.items()
                          if k.startswith("generated/") and v is not None)
    if not per_strategy:
        return None
    return max(per_strategy, key=lambda kv: kv[1])


def improvement_rows(datasets: dict[str, dict]) -> list[dict]:
    """[{dataset, group, zero_shot, strategy, probe, improvement}] for every dataset with a
    zero-shot score and a per-strategy generated probe score, sorted by improvement (probe -
    zero-shot) from the largest down; equal improvements keep dataset order."""
    rows = []
    for name, d in datasets.items():
        best = best_strategy(d.get("probe") or {})
        if best is None or d.get("zero_shot") is None:
            continue
        rows.append({"dataset": name, "group": d.get("group"), "zero_shot": d["zero_shot"], "strategy": best[0],
                     "probe": best[1], "improvement": best[1] - d["zero_shot"]})
    return sorted(rows, key=lambda r: -r["improvement"])


def source_means(datasets: dict[str, dict]) -> dict[str, dict]:
    """{source: {"mean", "datasets"}} over the datasets that have the source: zero-shot, generated
    (each dataset's best strategy), retrieved and original (their probe scores). Sources no
    dataset has are left out."""
    values: dict[str, list[float]] = {s: [] for s in SOURCES}
    for d in datasets.values():
        probe = d.get("probe") or {}
        best = best_strategy(probe)
        if d.get("zero_shot") is not None:
            values["zero-shot"].append(d["zero_shot"])
        if best is not None:
            values["generated"].append(best[1])
        for source in ("retrieved", "original"):
            if probe.get(source) is not None:
                values[source].append(probe[source])
    return {s: {"mean": float(np.mean(v)), "datasets": len(v)} for s, v in values.items() if v}


def figure2(rows: list[dict], means: dict[str, dict], path: str | Path, *, title: str = "") -> None:
    """Left: zero-shot and best-strategy probe per dataset (sorted rows), improvement written
    above; right: the mean per source with the number of datasets behind it."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(max(6.0, 0.7 * len(rows) + 4.5), 3.8),
                                      gridspec_kw={"width_ratios": [max(2, len(rows)), 2]})
    x = np.arange(len(rows))
    left.bar(x - 0.2, [r["zero_shot"] for r in rows], 0.4, color="#9a9a9a", label="zero-shot")
    left.bar(x + 0.2, [r["probe"] for r in rows], 0.4, color="#4c72b0", label="linear probe, generated (best strategy)")
    for i, r in enumerate(rows):
        left.text(i + 0.2, r["probe"], f"{r['improvement']:+.1f}\n{r['strategy']}", ha="center", va="bottom", fontsize=6)
    left.set_xticks(x, [r["dataset"] for r in rows], rotation=30, fontsize=7)
    left.set_ylabel("score on the real test set (%)", fontsize=8)
    left.legend(fontsize=7, loc="lower left")
    names = list(means)
    right.bar(names, [means[n]["mean"] for n in names], color=["#9a9a9a", "#4c72b0", "#55a868", "#c44e52"][:len(names)])
    for i, n in enumerate(names):
        right.text(i, means[n]["mean"], f"{means[n]['mean']:.1f}\n(n={means[n]['datasets']})", ha="center",
                   va="bottom", fontsize=6)
    right.set_title("mean over datasets", fontsize=8)
    right.tick_params(axis="x", labelrotation=30, labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


FIGURE2_TITLE = "Figure 2: linear probe on generated data (best strategy) against zero-shot, and the mean per data source"
FIGURE2_MISSING = "needs metrics/<dataset>/cler.json and probe.json with a generated/<strategy> set"


def figure2_inputs(results: dict[str, dict]) -> dict[str, dict]:
    """The module's input from the report's results (dataset -> {"info", "cler", "probe"}, metric
    files or None): {dataset: {"group", "zero_shot", "probe": {set: score}}}."""
    return {n: {"group": r["info"].get("group"), "zero_shot": (r["cler"] or {}).get("zero_shot"),
                "probe": {k: v["score"] for k, v in (r["probe"] or {}).get("sets", {}).items()}}
            for n, r in results.items()}


def draw_figure2(results: dict[str, dict], path: str | Path) -> str | None:
    """Draw Figure 2 to `path`; None when drawn, else why it is not."""
    datasets = figure2_inputs(results)
    rows = improvement_rows(datasets)
    if not rows:
        return FIGURE2_MISSING
    figure2(rows, source_means(datasets), path, title=FIGURE2_TITLE)
    return None
