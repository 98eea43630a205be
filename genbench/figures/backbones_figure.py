"""Figure 11: CLER score against linear-probe score across CLIP backbones, one point per dataset,
data source and backbone. The primary backbone's scores are metrics/<ds>/cler.json and probe.json;
each extra backbone's are in metrics/<ds>/backbones.json:
{"backbones": {MODEL: {"sets": {SET: {"cler": ..., "probe": ...}}}}}."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from genbench.figures._save import save_png

TITLE = "Figure 11: CLER score and linear-probe score across CLIP backbones"
ONE_BACKBONE = "one backbone, so not produced (list extra CLIP models in embed.backbones)"


def figure11_points(results: dict[str, dict], primary: str) -> dict[str, list[dict]]:
    """Backbone -> [{"x": CLER, "y": probe score, "label": "<ds>: <set>"}]. `results` maps dataset ->
    {"cler", "probe", "backbones"} (metric files or None); `primary` names embed.model."""
    out: dict[str, list[dict]] = {}
    for name, r in results.items():
        cler, probe = r.get("cler"), r.get("probe")
        if cler and probe:
            out.setdefault(primary, []).extend(
                {"x": cler["sets"][s]["cler"], "y": p["score"], "label": f"{name}: {s}"}
                for s, p in probe["sets"].items() if s in cler["sets"])
        for model, b in ((r.get("backbones") or {}).get("backbones") or {}).items():
            out.setdefault(model, []).extend(
                {"x": v["cler"], "y": v["probe"], "label": f"{name}: {s}"} for s, v in b["sets"].items())
    return out


def draw_figure11(results: dict[str, dict], primary: str, path: Path) -> str | None:
    """Draw Figure 11 to `path` (one marker colour per backbone); None when drawn, else why not."""
    series = figure11_points(results, primary)
    if len(series) < 2:
        return ONE_BACKBONE
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for model, points in series.items():
        ax.scatter([p["x"] for p in points], [p["y"] for p in points], label=model, s=18)
    ax.set_xlabel("CLER score (%)")
    ax.set_ylabel("linear-probe score (%)")
    ax.set_title(TITLE, fontsize=9)
    ax.legend(fontsize=7)
    save_png(fig, path)
    return None
