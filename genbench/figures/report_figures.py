"""The report's figures from a run's results: every paper figure (Figures 2 to 7 and 9 to 14) as
a FigureEntry, drawn or saying why not, in the order of reports/index.md, and each dataset's
score chart and sample grid for report.md. Figures 3 to 6 also write their data as CSV beside
the tables (dvc.yaml's plots read them).

`results` maps dataset -> {"info", and each metric file as a dict or None: "cler", "probe",
"shots", "quality", "retrieve", "finetune", "backbones"}; `folders` maps dataset -> its data
folders, an object with `generated` and `read_meta()` (the stages' DatasetPaths).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from genbench import storage
from genbench.errors import GenBenchError
from genbench.figures import backbones_figure, correlation, finetune_figure, grids, groups, improvement, scatter, shots
from genbench.figures.evaluation_time import FIGURE5_TITLE, draw_figure5
from genbench.figures.metric_vs_probe import FIGURE4_TITLE, draw_figure4
from genbench.figures.summary import bar_chart, score_values
from genbench.report import FigureEntry

TI_FIGURES = ("figure7", "figure12", "figure13")  # the direct-vs-TI layout, one per dataset in run order
QUALITY_MISSING = "needs the quality stage (metrics/<dataset>/quality.json, dvc repro quality@<dataset>)"
MANIFEST_COLUMNS = ("key", "class_index", "strategy", "shard", "sha256")


@dataclass(frozen=True)
class FigureFolders:
    """Where the report's figures go (`figures`), their CSV data (`tables`, <key>_data.csv) and
    where the per-dataset metric files are read from (`metrics`)."""

    figures: Path
    tables: Path
    metrics: Path

    def data(self, key: str) -> Path:
        return self.tables / f"{key}_data.csv"


def _entry(key: str, title: str, name: str, reason: str | None) -> FigureEntry:
    return FigureEntry(key, title, None, reason) if reason else FigureEntry(key, title, f"figures/{name}")


def quality_figures(results: dict[str, dict], out: FigureFolders) -> list[FigureEntry]:
    """Figures 4 (CLER, CLIP score and FID against the linear probe) and 5 (evaluation time per
    metric) from the datasets with a quality.json (and cler.json, probe.json)."""
    titles = {"figure4": FIGURE4_TITLE, "figure5": FIGURE5_TITLE}
    names = [n for n, r in results.items() if r["quality"] and r["cler"] and r["probe"]]
    if not names:
        return [FigureEntry(key, title, None, QUALITY_MISSING) for key, title in titles.items()]
    draw = {"figure4": draw_figure4, "figure5": draw_figure5}
    entries = []
    for key, title in titles.items():
        path = out.figures / f"{key}.png"
        try:
            draw[key](out.metrics, names, path, out.data(key))
        except GenBenchError as exc:
            entries.append(FigureEntry(key, title, None, str(exc)))
            continue
        entries.append(FigureEntry(key, title, f"figures/{path.name}"))
    return entries


def _generated(folder):
    """The generated manifest of a dataset's `folder`, None when generate has not run."""
    if not (folder.generated / storage.MANIFEST).is_file():
        return None
    return storage.read_manifest(folder.generated, columns=MANIFEST_COLUMNS)


def image_figures(datasets: list[str], folders: dict, ti_reference: str, out: FigureFolders) -> list[FigureEntry]:
    """Figures 7, 12, 13 (the first three datasets in run order) and Figure 14 per dataset."""
    entries = []
    for i, key in enumerate(TI_FIGURES):
        title = f"Figure {key[6:]}: direct sampling beside textual inversion on original and retrieved references"
        if i >= len(datasets):
            entries.append(FigureEntry(key, title, None, f"the run has {len(datasets)} dataset(s); this figure shows "
                                                         f"dataset {i + 1} of the run's datasets list"))
            continue
        folder = folders[datasets[i]]
        manifest = _generated(folder)
        if manifest is None:
            entries.append(FigureEntry(key, f"{title} ({datasets[i]})", None, f"needs data/{datasets[i]}/generated"))
            continue
        plan = grids.ti_plan(list(dict.fromkeys(manifest["strategy"])), ti_reference)
        name = f"{key}_{datasets[i]}_ti.png"
        grids.draw_grid(folder.generated, manifest, plan, folder.read_meta()["classnames"], out.figures / name,
                        f"{title} ({datasets[i]})")
        entries.append(_entry(key, f"{title} ({datasets[i]})", name, None))
    for ds in datasets:
        title = f"Figure 14: generated images by strategy (rows) and class (columns) ({ds})"
        manifest = _generated(folders[ds])
        if manifest is None:
            entries.append(FigureEntry("figure14", title, None, f"needs data/{ds}/generated"))
            continue
        plan = [(s, s, "") for s in dict.fromkeys(manifest["strategy"])]
        name = f"figure14_{ds}_strategies.png"
        grids.draw_grid(folders[ds].generated, manifest, plan, folders[ds].read_meta()["classnames"],
                        out.figures / name, title)
        entries.append(_entry("figure14", title, name, None))
    return entries


def report_figures(results: dict[str, dict], datasets: list[str], folders: dict, out: FigureFolders, *,
                   usd_per_image: dict, price_label: str, ti_reference: str, primary_model: str) -> list[FigureEntry]:
    """Every paper figure of the report, drawn into `out.figures`, in the order of reports/index.md."""
    fig = out.figures
    entries = [
        _entry("figure3", shots.TITLE, "figure3_shots.png",
               shots.draw_figure3(results, usd_per_image, price_label, fig / "figure3_shots.png", out.data("figure3"))),
        *quality_figures(results, out),
        _entry("figure6", scatter.FIGURE6_TITLE, "figure6_mts.png",
               scatter.draw_figure6(results, fig / "figure6_mts.png", out.data("figure6"))),
    ]
    images = image_figures(datasets, folders, ti_reference, out)
    entries += [
        _entry("figure2", improvement.FIGURE2_TITLE, "figure2_improvement.png",
               improvement.draw_figure2(results, fig / "figure2_improvement.png")),
        _entry("figure3_published", groups.PUBLISHED_TITLE, "figure3_groups.png",
               groups.draw_figure3_published(results, usd_per_image, price_label, fig / "figure3_groups.png")),
        images[0],
        _entry("figure9", correlation.TITLE, "figure9_cler_probe.png",
               correlation.draw_figure9(results, fig / "figure9_cler_probe.png")),
        *images[1:],
        _entry("figure10", finetune_figure.TITLE, "figure10.png", finetune_figure.draw_figure10(results, fig / "figure10.png")),
        _entry("figure11", backbones_figure.TITLE, "figure11.png",
               backbones_figure.draw_figure11(results, primary_model, fig / "figure11.png")),
    ]
    return entries


def dataset_figures(name: str, r: dict, samples: Path, figures: Path) -> dict[str, str]:
    """The per-dataset score chart and (a copy of `samples`, when it exists) sample grid of
    reports/report.md: caption -> path relative to the report."""
    info = r["info"]
    scores_png = figures / f"{name}-scores.png"
    bar_chart(score_values(r["cler"], r["probe"]), scores_png, ylabel=f"{info['metric']} (%)",
              title=f"{name}: scores on the test set", reference=100.0 / info["classes"], reference_label="chance")
    out = {f"{name}: scores per data source": f"figures/{scores_png.name}"}
    if samples.is_file():
        samples_png = figures / f"{name}-samples.png"
        with storage.atomic_path(samples_png) as tmp:
            shutil.copyfile(samples, tmp)
        out[f"{name}: generated samples, one row per class"] = f"figures/{samples_png.name}"
    return out
