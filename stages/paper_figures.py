"""The report's figures (genbench.figures) from a run's metric files and generated manifests:
Figures 2 to 7 and 9 to 14, and the per-dataset score charts and sample grids of report.md; each
paper figure is a FigureEntry, drawn or saying why not. Figures 3 to 6 also write their data as
CSV in reports/tables (dvc.yaml's plots read them)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from genbench import storage
from genbench.errors import GenBenchError
from genbench.figures import correlation, grids, groups, improvement
from genbench.figures.scatter import scatter_figure
from genbench.figures.shots import shots_figure
from genbench.figures.summary import bar_chart
from genbench.report import FigureEntry
from stages.frame.paths import METRICS, REPORTS, DatasetPaths

FIGURES = REPORTS / "figures"
TABLES = REPORTS / "tables"
FIGURE3_DATA = TABLES / "figure3_data.csv"
FIGURE_DATA = {key: TABLES / f"{key}_data.csv" for key in ("figure4", "figure5", "figure6")}  # dvc.yaml's plots read these
TI_FIGURES = ("figure7", "figure12", "figure13")  # the direct-vs-TI layout, one per dataset in run order
GRID_CLASSES = 10  # classes shown per grid
GRID_PER_CELL = 2  # images per cell


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """A figure's data as CSV (what `dvc plots show/diff` draws)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    storage.atomic_write_text(path, buf.getvalue())


def _entry(key: str, title: str, name: str) -> FigureEntry:
    return FigureEntry(key, title, f"figures/{name}")


def figure2(results: dict[str, dict]) -> FigureEntry:
    title = "Figure 2: linear probe on generated data (best strategy) against zero-shot, and the mean per data source"
    datasets = {n: {"group": r["info"].get("group"), "zero_shot": (r["cler"] or {}).get("zero_shot"),
                    "probe": {k: v["score"] for k, v in (r["probe"] or {}).get("sets", {}).items()}}
                for n, r in results.items()}
    rows = improvement.improvement_rows(datasets)
    if not rows:
        return FigureEntry("figure2", title, None, "needs metrics/<dataset>/cler.json and probe.json with a generated/<strategy> set")
    name = "figure2_improvement.png"
    improvement.figure2(rows, improvement.source_means(datasets), FIGURES / name, title=title)
    return _entry("figure2", title, name)


def _shots(results: dict[str, dict]) -> dict[str, dict]:
    return {n: {"group": r["shots"]["dataset"].get("group"), "classes": r["shots"]["dataset"]["classes"],
                "sources": r["shots"]["sources"]} for n, r in results.items() if r["shots"]}


def figure3_published(results: dict[str, dict], usd_per_image: dict, price_label: str) -> FigureEntry:
    title = "Figure 3 (as published): linear probe against images per class per concept group, labelled with cost"
    curves = groups.group_curves(_shots(results), usd_per_image)
    if not curves:
        return FigureEntry("figure3_published", title, None,
                           "needs metrics/<dataset>/shots.json with probe scores (shots.probe: true; dvc repro shots@<dataset>)")
    name = "figure3_groups.png"
    groups.figure3_groups(curves, FIGURES / name, price_label=price_label, title=title)
    return _entry("figure3_published", title, name)


def figure9(results: dict[str, dict]) -> FigureEntry:
    title = f"Figure 9: CLER against linear probe with {correlation.SHOTS}-shot original and retrieved data"
    points = correlation.five_shot_points(_shots(results))
    if not points:
        return FigureEntry("figure9", title, None, f"needs shots.json points at {correlation.SHOTS} images per class "
                                                   f"with probe scores (shots.counts including {correlation.SHOTS})")
    name = "figure9_cler_probe.png"
    correlation.figure9(points, FIGURES / name, title=title)
    return _entry("figure9", title, name)


def _generated(name: str):
    paths = DatasetPaths(name)
    if not (paths.generated / storage.MANIFEST).is_file():
        return None, None
    return paths, storage.read_manifest(paths.generated, columns=("key", "class_index", "strategy", "shard", "sha256"))


def _grid(paths, manifest, plan, classnames, path, title) -> None:
    classes = grids.shown_classes(len(classnames), GRID_CLASSES)
    rows = []
    for label, strategy, reason in plan:
        if strategy is None:
            rows.append((label, None, reason))
            continue
        picked = grids.cell_rows(manifest, strategy, classes, GRID_PER_CELL)
        rows.append((label, grids.tiles_for(storage.load_images(paths.generated, picked), picked, classes,
                                            GRID_PER_CELL), ""))
    grids.image_grid(rows, [classnames[c] for c in classes], path, title=title)


def image_figures(datasets: list[str], ti_reference: str) -> list[FigureEntry]:
    """Figures 7, 12, 13 (the first three datasets in run order) and Figure 14 per dataset."""
    entries = []
    for i, key in enumerate(TI_FIGURES):
        title = f"Figure {key[6:]}: direct sampling beside textual inversion on original and retrieved references"
        if i >= len(datasets):
            entries.append(FigureEntry(key, title, None, f"the run has {len(datasets)} dataset(s); this figure shows "
                                                         f"dataset {i + 1} of the run's datasets list"))
            continue
        paths, manifest = _generated(datasets[i])
        if manifest is None:
            entries.append(FigureEntry(key, f"{title} ({datasets[i]})", None, f"needs data/{datasets[i]}/generated"))
            continue
        strategies = list(dict.fromkeys(manifest["strategy"]))
        name = f"{key}_{datasets[i]}_ti.png"
        _grid(paths, manifest, grids.ti_plan(strategies, ti_reference), paths.read_meta()["classnames"], FIGURES / name,
              f"{title} ({datasets[i]})")
        entries.append(_entry(key, f"{title} ({datasets[i]})", name))
    for ds in datasets:
        title = f"Figure 14: generated images by strategy (rows) and class (columns) ({ds})"
        paths, manifest = _generated(ds)
        if manifest is None:
            entries.append(FigureEntry("figure14", title, None, f"needs data/{ds}/generated"))
            continue
        plan = [(s, s, "") for s in dict.fromkeys(manifest["strategy"])]
        name = f"figure14_{ds}_strategies.png"
        _grid(paths, manifest, plan, paths.read_meta()["classnames"], FIGURES / name, title)
        entries.append(_entry("figure14", title, name))
    return entries


def paper_figures(results: dict[str, dict], datasets: list[str], *, usd_per_image: dict, price_label: str,
                  ti_reference: str) -> list[FigureEntry]:
    """Every figure of this module, in the paper's order."""
    images = image_figures(datasets, ti_reference)
    return [figure2(results), figure3_published(results, usd_per_image, price_label), images[0], figure9(results),
            *images[1:]]


def figure3(results: dict[str, dict], usd_per_image: dict, snapshot_label: str) -> FigureEntry:
    title = "Figure 3: CLER against images per class per data source, with what the images cost"
    panels = []
    rows = []
    for name, r in results.items():
        if not r["shots"]:
            continue
        info = r["shots"]["dataset"]
        zero_shot = (r["cler"] or {}).get("zero_shot")
        panels.append({"dataset": name, "metric": info["metric"], "classes": info["classes"], "zero_shot": zero_shot,
                       "sources": r["shots"]["sources"]})
        for source, points in r["shots"]["sources"].items():
            price = usd_per_image.get(source.split("/")[0])
            for pt in points:
                rows.append([name, source, source.split("/")[0], pt["shots"], pt["cler"], pt["cler_std"],
                             pt["shots"] * info["classes"] * price if price else ""])
    if not panels:
        return FigureEntry("figure3", title, None, "needs metrics/<dataset>/shots.json (dvc repro shots@<dataset>)")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "source", "data_type", "shots", "cler", "cler_std", "usd"])
    writer.writerows(rows)
    storage.atomic_write_text(FIGURE3_DATA, buf.getvalue())
    path = FIGURES / "figure3_shots.png"
    shots_figure(panels, path, usd_per_image=usd_per_image, price_label=snapshot_label, title=title)
    return FigureEntry("figure3", title, f"figures/{path.name}")


def figure4_5(results: dict[str, dict]) -> list[FigureEntry]:
    """Figures 4 (CLER, CLIP score and FID against the linear probe) and 5 (evaluation time per
    metric), drawn by genbench.figures (metric_vs_probe, evaluation_time) from the datasets with a quality.json."""
    titles = {"figure4": "Figure 4: correlation of CLER, CLIP score and FID with the linear-probe score",
              "figure5": "Figure 5: evaluation time per metric"}
    names = [n for n, r in results.items() if r["quality"] and r["cler"] and r["probe"]]
    if not names:
        reason = "needs the quality stage (metrics/<dataset>/quality.json, dvc repro quality@<dataset>)"
        return [FigureEntry(key, title, None, reason) for key, title in titles.items()]
    from genbench.figures.evaluation_time import figure5_evaluation_time, gather_timings, timing_summary
    from genbench.figures.metric_vs_probe import figure4_metric_vs_probe, gather_rows

    def draw4(path):
        rows = gather_rows(METRICS, names)
        write_csv(FIGURE_DATA["figure4"], ["dataset", "source", "probe", "cler", "clip_score", "fid_clip"],
                  [[r["dataset"], r["source"], r["probe"], r["cler"], r["clip_score"], r["fid_clip"]] for r in rows])
        figure4_metric_vs_probe(rows, path)

    def draw5(path):
        summary = timing_summary(gather_timings(METRICS, names))
        write_csv(FIGURE_DATA["figure5"], ["metric", "seconds", "std"],
                  [[metric, s["mean"], s["std"]] for metric, s in summary.items()])
        figure5_evaluation_time(summary, path)

    draw = {"figure4": draw4, "figure5": draw5}
    entries = []
    for key, title in titles.items():
        path = FIGURES / f"{key}.png"
        try:
            draw[key](path)
        except GenBenchError as exc:
            entries.append(FigureEntry(key, title, None, str(exc)))
            continue
        entries.append(FigureEntry(key, title, f"figures/{path.name}"))
    return entries


def figure6(results: dict[str, dict]) -> FigureEntry:
    """Figure 6: CLER gain over zero-shot against the dataset's mean text similarity (MTS), one
    point per dataset with both (MTS from metrics/<ds>/retrieve.json key `mts`)."""
    title = "Figure 6: CLER gain over zero-shot against dataset-level mean text similarity"
    points = []
    for name, r in results.items():
        mts = (r["retrieve"] or {}).get("mts")
        if mts is not None and r["cler"]:
            gain = r["cler"]["sets"]["generated"]["cler"] - r["cler"]["zero_shot"]
            points.append({"x": mts, "y": gain, "label": name})
    if not points:
        return FigureEntry("figure6", title, None, "needs the retrieve stage (metrics/<dataset>/retrieve.json with 'mts')")
    write_csv(FIGURE_DATA["figure6"], ["dataset", "mts", "cler_gain"], [[p["label"], p["x"], p["y"]] for p in points])
    path = FIGURES / "figure6_mts.png"
    scatter_figure(points, path, xlabel="mean text similarity (MTS)", ylabel="CLER(generated) - zero-shot (points)",
                   title=title)
    return FigureEntry("figure6", title, f"figures/{path.name}")


def figure10_11(results: dict[str, dict], primary_model: str) -> list[FigureEntry]:
    """Figure 10 (CLER against fine-tuned score) and Figure 11 (CLER against probe across backbones)."""
    from genbench.figures import backbones_figure, finetune_figure

    entries = []
    for key, module, draw in (
            ("figure10", finetune_figure, lambda path: finetune_figure.draw_figure10(results, path)),
            ("figure11", backbones_figure, lambda path: backbones_figure.draw_figure11(results, primary_model, path))):
        path = FIGURES / f"{key}.png"
        reason = draw(path)
        entries.append(FigureEntry(key, module.TITLE, None if reason else f"figures/{path.name}", reason or ""))
    return entries


def dataset_figures(name: str, r: dict) -> dict[str, str]:
    """The per-dataset score chart and sample grid of reports/report.md."""
    info, cler, probe = r["info"], r["cler"], r["probe"]
    values = {"zero-shot": cler["zero_shot"]}
    values.update({f"CLER {n}": s["cler"] for n, s in cler["sets"].items()})
    values.update({f"probe {n}": s["score"] for n, s in (probe or {}).get("sets", {}).items()})
    scores_png = FIGURES / f"{name}-scores.png"
    bar_chart(values, scores_png, ylabel=f"{info['metric']} (%)", title=f"{name}: scores on the test set",
              reference=100.0 / info["classes"], reference_label="chance")
    figures = {f"{name}: scores per data source": f"figures/{scores_png.name}"}
    samples = DatasetPaths(name).samples
    if samples.is_file():
        samples_png = FIGURES / f"{name}-samples.png"
        with storage.atomic_path(samples_png) as tmp:
            shutil.copyfile(samples, tmp)
        figures[f"{name}: generated samples, one row per class"] = f"figures/{samples_png.name}"
    return figures


def report_figures(results: dict[str, dict], datasets: list[str], *, usd_per_image: dict, price_label: str,
                   ti_reference: str, primary_model: str) -> list[FigureEntry]:
    """Every paper figure of the report, in the order of reports/index.md."""
    return [figure3(results, usd_per_image, price_label), *figure4_5(results), figure6(results),
            *paper_figures(results, datasets, usd_per_image=usd_per_image, price_label=price_label,
                           ti_reference=ti_reference),
            *figure10_11(results, primary_model)]
