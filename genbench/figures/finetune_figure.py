"""Figure 10: CLER score against fine-tuned accuracy, one point per dataset and data source
(metrics/<ds>/cler.json beside metrics/<ds>/finetune.json)."""

from __future__ import annotations

from pathlib import Path

from genbench.figures.scatter import scatter_figure

TITLE = "Figure 10: CLER score and fine-tuned accuracy with 5-shot generated and original data"
MISSING = "needs metrics/<dataset>/finetune.json (dvc repro finetune@<dataset>)"


def figure10_points(results: dict[str, dict]) -> list[dict]:
    """{"x": CLER, "y": fine-tuned score, "label"} for every set a dataset both fine-tuned and scored by CLER.
    `results` maps dataset -> {"cler": cler.json or None, "finetune": finetune.json or None}."""
    points = []
    for name, r in results.items():
        cler, tuned = r.get("cler"), r.get("finetune")
        if not cler or not tuned:
            continue
        for set_name, s in tuned["sets"].items():
            if set_name in cler["sets"]:
                points.append({"x": cler["sets"][set_name]["cler"], "y": s["score"], "label": f"{name}: {set_name}"})
    return points


def draw_figure10(results: dict[str, dict], path: Path) -> str | None:
    """Draw Figure 10 to `path`; None when drawn, else why it is not."""
    points = figure10_points(results)
    if not points:
        return MISSING
    scatter_figure(points, path, xlabel="CLER score (%)", ylabel="fine-tuned score on the test set (%)", title=TITLE)
    return None
