"""Stage `report` (and its per-dataset helper stage `shots`): the paper's tables and figures
rebuilt from whatever the pipeline has produced, published beside reproduced.

`genbench report` writes
- reports/index.md: which profile, commit and price snapshot produced the report, links to all of it;
- reports/report.md: this run's scores per dataset and data source, and the cost per data type;
- reports/tables/<key>.{md,csv,tex}: Tables 1-5, Section 3.1, the embedded default beside MNIST;
- reports/figures/*.png: Figure 3 (and 4, 5, 6 when their stages have run), score charts, samples.

`genbench report shots --dataset NAME` writes metrics/NAME/shots.json, Figure 3's data: CLER of
each data source at 1, 2, 4, ... images per class (params `shots`), and the linear probe of the
pooled sets; the original curve draws from prepared/original_pool (prepare.pool_shots) when the
embed stage has encoded one, else from the prepare.shots-shot original set.

It reads metrics/, plots/, reports/ledger.csv and reports/reference/ (the published tables);
a dataset whose shots.json is missing takes its size from data/<ds>/prepared/meta.json.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import click

from genbench import storage
from genbench.datasets import DATASETS, category_total, get_dataset
from genbench.errors import GenBenchError
from genbench.figures.scatter import scatter_figure
from genbench.figures.shots import shots_figure
from genbench.figures.summary import bar_chart
from genbench.report import DatasetResults, FigureEntry, TableEntry, build_index, build_report
from genbench.tables import (
    KIT_DATA_TYPES,
    cler_by_shots,
    mnist_orientation,
    read_reference,
    section31,
    table1,
    table2,
    table3,
    table4,
    table5,
    write_table,
)
from genbench.tables.reference import REFERENCE_FILES
from genbench.tables.he_table1 import he_table1
from stages.inputs import METRICS, REPORTS, DatasetPaths
from stages.options import dataset_option, params_option, pipeline_datasets, resolve_dataset
from stages.params import Field, non_negative, positive, read_params_file
from stages.runner import StageResult, run_stage
from stages.tracking import git_commit

OUT = REPORTS / "report.md"
INDEX = REPORTS / "index.md"
TABLES = REPORTS / "tables"
FIGURES = REPORTS / "figures"
LEDGER = REPORTS / "ledger.csv"
FIGURE3_DATA = TABLES / "figure3_data.csv"
FIGURE_DATA = {key: TABLES / f"{key}_data.csv" for key in ("figure4", "figure5", "figure6")}  # dvc.yaml's plots read these


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """A figure's data as CSV (what `dvc plots show/diff` draws)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    storage.atomic_write_text(path, buf.getvalue())
ORIENTATION_DATASET = "digits"  # the embedded default, set beside the paper's MNIST

SCHEMA = {
    "title": Field((str, type(None)), None),
    "compare_with": Field(str, "Stable Diffusion 2.1", help="the paper's model whose Table 2 rows the run sits under"),
    "reference_dir": Field(str, "reports/reference", help="the published tables (CSV)"),
}


def _shot_list(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        return "must be null or a list of positive whole numbers, e.g. [1, 2, 4, 8, 16]"
    return None


SHOTS_SCHEMA = {
    "counts": Field((list, type(None)), None, _shot_list, help="images per class to score (null: 1, 2, 4, ...)"),
    "draws": Field(int, 3, positive, help="random subsets per shot count"),
    "seed": Field(int, 0, non_negative),
    "probe": Field(bool, True, help="also score each draw of the pooled sets (original, retrieved, generated) by the linear probe (Figure 3 as published, Figure 9)"),
}


# ---- stage `shots`: Figure 3's data for one dataset ----

def shots_inputs(paths: DatasetPaths) -> list[Path]:
    """What shots reads: the prepared metadata and original manifest, the generated manifest and
    the test, generated and original features (retrieved features when there are some)."""
    return [paths.prepared / "meta.json", paths.prepared / "original" / storage.MANIFEST, paths.generated / storage.MANIFEST,
            *(paths.features / f"{name}.safetensors" for name in ("test", "generated", "original"))]


def shots_work(p: dict, paths: DatasetPaths) -> StageResult:
    from genbench.features import load_features
    from stages.cler import external_sets, real_test_set, targets

    meta = paths.read_meta()
    test_feats, test_labels = real_test_set(paths)
    n, metric = len(meta["classnames"]), meta["metric"]
    result = {"dataset": {k: meta[k] for k in ("name", "group", "metric", "num_test", "shots") if k in meta}
              | {"classes": n}, "draws": p["draws"], "seed": p["seed"], "sources": {}}
    sets = external_sets(paths)
    original = paths.prepared / "original"
    pool = paths.features / "original_pool.safetensors"
    if pool.is_file():  # prepare.pool_shots: the original curve draws from the larger pool
        feats, labels, _ = load_features(pool)
        sets["original"] = (feats, targets(paths, labels, "original pool labels"))
        original = paths.prepared / "original_pool"
    drawn_for = {"original": storage.read_manifest(original)["class_index"].to_numpy()}
    for name, (feats, labels) in sets.items():
        result["sources"][name] = cler_by_shots(feats, labels, test_feats, test_labels, num_classes=n, metric=metric,
                                                shots=p["counts"], draws=p["draws"], seed=p["seed"],
                                                draw_classes=drawn_for.get(name),
                                                probe=p["probe"] and "/" not in name)
    out = paths.metrics / "shots.json"
    storage.atomic_write_json(out, result)
    click.echo("shots: " + "  ".join(f"{s}: {len(v)} points" for s, v in result["sources"].items()) + f" -> {out}")
    flat = {f"shots.{s.replace('/', '.')}.max": v[-1]["cler"] for s, v in result["sources"].items() if v}
    return StageResult(metrics=flat, artifacts=[out])


# ---- what the report reads ----

def optional_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def dataset_info(name: str) -> dict:
    """name, classes, metric, num_test, shots of a dataset: from shots.json, else prepared/meta.json."""
    paths = DatasetPaths(name)
    shots = optional_json(paths.metrics / "shots.json")
    if shots:
        return shots["dataset"]
    meta = optional_json(paths.prepared / "meta.json")
    if meta:
        return {**{k: meta.get(k) for k in ("name", "group", "metric", "num_test", "shots")},
                "classes": len(meta["classnames"])}
    spec = get_dataset(name)
    return {"name": name, "group": spec.group, "metric": spec.metric, "num_test": None, "shots": None,
            "classes": spec.num_classes}


def run_results(datasets: list[str]) -> dict[str, dict]:
    """Per dataset: info, and its cler, probe, shots, quality and retrieve metric files (None when absent)."""
    out = {}
    for name in datasets:
        paths = DatasetPaths(name)
        out[name] = {
            "info": dataset_info(name),
            "cler": optional_json(paths.metrics / "cler.json"),
            "probe": optional_json(paths.metrics / "probe.json"),
            "shots": optional_json(paths.metrics / "shots.json"),
            "quality": optional_json(paths.metrics / "quality.json"),
            "retrieve": optional_json(paths.metrics / "retrieve.json"),
            "tune": optional_json(paths.metrics / "tune.json"),
            "finetune": optional_json(paths.metrics / "finetune.json"),
            "backbones": optional_json(paths.metrics / "backbones.json"),
        }
    return out


def cler_by_strategy(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """{strategy: {registry dataset name: CLER of generated/<strategy>}} from the cler.json files."""
    out: dict[str, dict[str, float]] = {}
    for name, r in results.items():
        for source, scores in (r["cler"] or {}).get("sets", {}).items():
            if source.startswith("generated/"):
                out.setdefault(source.split("/", 1)[1], {})[get_dataset(name).name] = scores["cler"]
    return out


def images_per_class(results: dict[str, dict]) -> dict[str, int]:
    out = {}
    for name, r in results.items():
        sets = (r["cler"] or {}).get("sets", {})
        per_strategy = [s["images"] for k, s in sets.items() if k.startswith("generated/")]
        if per_strategy and r["info"]["classes"]:
            out[name] = per_strategy[0] // r["info"]["classes"]
    return out


def ti_reference(ti_embeddings: str) -> str:
    """Table 3's 'TI reference data' for generate.ti_embeddings: original or retrieval."""
    text = ti_embeddings.lower()
    return "retrieval" if "retriev" in text else "original" if "original" in text else ti_embeddings


def ti_results(results: dict[str, dict], reference: str) -> dict[tuple[str, str], dict[str, float]]:
    """Table 3's reproduced cells from cler.json: a strategy with the TI modifier (DT+TI) is
    Textual Inversion on `reference` images; the same strategy without TI (DT), at the same
    images per class, is the 'none' row. Keys: (reference data, generated images per class)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for name, r in results.items():
        sets = (r["cler"] or {}).get("sets", {})
        classes = r["info"]["classes"]
        for source, scores in sets.items():
            parts = source.split("/", 1)[1].split("+") if source.startswith("generated/") else []
            if "TI" not in parts:
                continue
            shots = str(scores["images"] // classes)
            out.setdefault((reference, shots), {})[get_dataset(name).name] = scores["cler"]
            plain = sets.get("generated/" + "+".join(p for p in parts if p != "TI"))
            if plain and plain["images"] // classes == int(shots):
                out.setdefault(("none", shots), {})[get_dataset(name).name] = plain["cler"]
    return out


# ---- tables ----

def cost_inputs(p: dict, human_usd: float) -> tuple[list[dict], list[dict] | None, dict]:
    """(published Table 5, audit of it, this run's cost table or None)."""
    from cost.audit import audit_cost_table
    from cost.ledger import cost_table, read_ledger

    reference = Path(p["reference_dir"])
    published = read_reference(reference, "table5")
    audit = [row.to_dict() for row in audit_cost_table(reference / "genbench_table5_cost.csv")]
    run_rows = cost_table(read_ledger(LEDGER), human_usd_per_image=human_usd) if LEDGER.is_file() else None
    return published, audit, run_rows


def section31_inputs(published: list[dict], audit: list[dict], run_rows: list[dict] | None, human_usd: float):
    from cost.audit import section31_comparison
    from genbench.tables.reference import number

    printed = {r["data_type"]: number(r["usd_per_image"]) for r in published}
    gen_audit = next(a for a in audit if KIT_DATA_TYPES.get(a["data_type"]) == "generated")
    human = printed.get("original") or human_usd
    recomputed = section31_comparison(generated_usd_per_image=printed["generative"], human_usd_per_image=human)
    from_hours = section31_comparison(generated_usd_per_image=gen_audit["recomputed_usd_per_image"],
                                      human_usd_per_image=human)
    ours = next((r for r in run_rows or [] if r["data_type"] == "generated" and r["usd_per_image"]), None)
    run = section31_comparison(generated_usd_per_image=ours["usd_per_image"], human_usd_per_image=human_usd) if ours else None
    return recomputed, from_hours, run


def build_tables(p: dict, results: dict[str, dict], *, models: dict[str, str], snapshot_label: str, human_usd: float,
                 ti_embeddings: str) -> tuple[list, list]:
    reference = Path(p["reference_dir"])
    published5, audit, run_rows = cost_inputs(p, human_usd)
    t2_rows = read_reference(reference, "table2")
    test_sizes = {get_dataset(n).name: r["info"]["num_test"] for n, r in results.items() if r["info"].get("num_test")}
    specs = {**{name: spec for name, spec in DATASETS.items() if spec.group != "Embedded"},
             **{get_dataset(n).name: get_dataset(n) for n in results}}
    tables = [
        table1(published5, audit, run_rows, snapshot=snapshot_label),
        table2(t2_rows, cler_by_strategy(results), run_model=models["generator"], compare_with=p["compare_with"],
               images_per_class=images_per_class(results)),
        table3(read_reference(reference, "table3"), ti_results(results, ti_reference(ti_embeddings))),
        table4(read_reference(reference, "table4"), specs, category_total(), test_sizes=test_sizes),
        table5(published5, audit, run_rows, snapshot=snapshot_label),
        section31(*section31_inputs(published5, audit, run_rows, human_usd), snapshot=snapshot_label),
        he_table1(read_reference(reference, "he2023_table1"), {get_dataset(n).name: r["tune"] for n, r in results.items() if r["tune"]}),
    ]
    orientation = []
    mini = results.get(ORIENTATION_DATASET)
    if mini and mini["cler"]:
        used = f"generator `{models['generator']}` and CLIP `{models['CLIP']}`"
        orientation.append(mnist_orientation(t2_rows, mini["cler"], mini["probe"], dataset=ORIENTATION_DATASET,
                                             models=used))
    return tables, orientation


# ---- figures ----

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


# ---- the stage ----

def work(p: dict, all_params: dict, datasets: list[str]) -> StageResult:
    from cost.prices import load_snapshot

    profile = all_params.get("profile", "embedded")
    pricing = all_params.get("cost") or {}
    snapshot = load_snapshot(pricing.get("snapshot", "paper-2023"))
    human_usd = float(pricing.get("human_label_usd_per_image") or snapshot.human_labelling_usd_per_image or 1.2e-2)
    models = {"generator": (all_params.get("generate") or {}).get("model", "?"),
              "CLIP": (all_params.get("embed") or {}).get("model", "?")}
    commit = git_commit()
    cost = optional_json(METRICS / "cost.json") or {"usd_per_image": {}, "usd_total": None, "snapshot": snapshot.name}
    FIGURES.mkdir(parents=True, exist_ok=True)
    results = run_results(datasets)

    generate = all_params.get("generate") or {}
    tables, orientation = build_tables(p, results, models=models, snapshot_label=snapshot.label(), human_usd=human_usd,
                                       ti_embeddings=str(generate.get("ti_embeddings") or "original"))
    entries = []
    for table in tables + orientation:
        files = write_table(table, TABLES)
        entries.append(TableEntry(table, {s: str(path.relative_to(REPORTS)) for s, path in files.items()}))
    from stages.paper_figures import paper_figures

    figures = [figure3(results, cost["usd_per_image"], snapshot.label()), *figure4_5(results), figure6(results),
               *paper_figures(results, datasets, usd_per_image=cost["usd_per_image"], price_label=snapshot.label(),
                              ti_reference=ti_reference(str(generate.get("ti_embeddings") or "original"))),
               *figure10_11(results, models["CLIP"])]

    scored = [n for n in datasets if results[n]["cler"] and results[n]["probe"]]
    summary = [DatasetResults(info=results[n]["info"], cler=results[n]["cler"],
                              probe=results[n]["probe"], figures=dataset_figures(n, results[n])) for n in scored]
    storage.atomic_write_text(OUT, build_report(summary, cost, profile=profile, commit=commit, title=p["title"]))
    storage.atomic_write_text(INDEX, build_index(profile=profile, commit=commit, snapshot=snapshot.label(),
                                                 datasets=datasets, models=models, tables=entries, figures=figures,
                                                 orientation=orientation, sections=frontier_sections(datasets)))
    drawn = sum(f.path is not None for f in figures)
    click.echo(f"report: {INDEX} ({len(entries)} tables, {drawn} of {len(figures)} paper figures drawn), {OUT}")
    artifacts = [INDEX, OUT, *sorted(TABLES.glob("*")), *sorted(FIGURES.glob("*.png"))]
    return StageResult(metrics={"tables": len(entries), "figures_drawn": drawn}, artifacts=artifacts)


def frontier_sections(datasets: list[str]) -> list[str]:
    """For each dataset with metrics/D/frontier.json: its figure (reports/figures/frontier[-D].png)
    and its cheapest-within-target table, as an index section."""
    from genbench.frontier import frontier_figure, table_markdown

    out = []
    for name in datasets:
        path = METRICS / name / "frontier.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        rows = data["points"]
        png = FIGURES / ("frontier.png" if len(datasets) == 1 else f"frontier-{name}.png")
        frontier_figure(rows, png, zero_shot=data["zero_shot"], original=data["original_cler"],
                        title=f"{name}: CLER against cost, {len(rows)} settings")
        default = next((r for r in rows if r["id"] == data["default"]), None)
        rel = png.relative_to(INDEX.parent)
        out.append(f"## Cost-quality frontier: {name}\n\n![frontier {name}]({rel})\n\n"
                   f"Cheapest setting within 1, 2 and 5 CLER points of the best ({len(rows)} settings, "
                   f"95 % bootstrap intervals in metrics/{name}/frontier.json):\n\n" + table_markdown(data["table"], default))
    return out


@click.group("report", invoke_without_command=True)
@params_option
@click.pass_context
def command(ctx: click.Context, params_file: str) -> None:
    """Build reports/ (index.md, report.md, tables/, figures/) from what the pipeline has produced (params: report.*).

    Without a subcommand this is the pipeline stage; `shots` computes Figure 3's data for one dataset.
    """
    if ctx.invoked_subcommand is not None:
        return
    all_params = read_params_file(params_file)
    datasets = pipeline_datasets(all_params)
    run_stage("report", params_file, SCHEMA, lambda p: work(p, all_params, datasets), check=_check_reference)


def _check_reference(p: dict) -> None:
    if not Path(p["reference_dir"]).is_dir():
        raise GenBenchError(f"params key 'report.reference_dir' = {p['reference_dir']!r} is not a directory; it must "
                            "hold the published tables (the kit ships them in reports/reference)")
    for key in REFERENCE_FILES:
        read_reference(p["reference_dir"], key)


@command.command("shots")
@params_option
@dataset_option
def shots_command(params_file: str, dataset: str | None) -> None:
    """CLER of each data source at 1, 2, 4, ... images per class: Figure 3's data (params: shots.*)."""
    name = resolve_dataset(params_file, dataset)
    paths = DatasetPaths(name)
    run_stage("shots", params_file, SHOTS_SCHEMA, lambda p: shots_work(p, paths), lambda p: paths.require(*shots_inputs(paths)),
              dataset=name)
