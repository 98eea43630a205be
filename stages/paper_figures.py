"""The report's Figures 2, 3 as published, 7, 9, 12, 13 and 14 (genbench.figures) from a run's
metric files and generated manifests; each is a FigureEntry, drawn or saying why not."""

from __future__ import annotations

from genbench import storage
from genbench.figures import correlation, grids, groups, improvement
from genbench.report import FigureEntry
from stages.inputs import REPORTS, DatasetPaths

FIGURES = REPORTS / "figures"
TI_FIGURES = ("figure7", "figure12", "figure13")  # the direct-vs-TI layout, one per dataset in run order
GRID_CLASSES = 10  # classes shown per grid
GRID_PER_CELL = 2  # images per cell


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
