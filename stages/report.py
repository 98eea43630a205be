"""Stage `report`: the paper's tables and figures rebuilt from whatever the pipeline has produced,
published beside reproduced (Figure 3's data come from the per-dataset stage `shots`; the figures are
drawn by stages/paper_figures.py).

`genbench report` writes
- reports/index.md: which profile, commit and price snapshot produced the report, links to all of it;
- reports/report.md: this run's scores per dataset and data source, and the cost per data type;
- reports/tables/<key>.{md,csv,tex}: Tables 1-5, Section 3.1, the embedded default beside MNIST;
- reports/figures/*.png: Figure 3 (and 4, 5, 6 when their stages have run), score charts, samples.

It reads metrics/, plots/, reports/ledger.csv and reports/reference/ (the published tables);
a dataset whose shots.json is missing takes its size from data/<ds>/prepared/meta.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from genbench import storage
from genbench.datasets import DATASETS, category_total, get_dataset
from genbench.errors import GenBenchError
from genbench.report import DatasetResults, TableEntry, build_index, build_report
from genbench.tables import (
    KIT_DATA_TYPES,
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
from stages.frame.paths import METRICS, REPORTS, DatasetPaths
from stages.frame.options import params_option, pipeline_datasets
from stages.paper_figures import FIGURES, TABLES, dataset_figures, report_figures
from stages.frame.params import Field, read_params_file
from stages.frame.runner import StageResult, run_stage
from stages.frame.tracking import git_commit

OUT = REPORTS / "report.md"
INDEX = REPORTS / "index.md"
LEDGER = REPORTS / "ledger.csv"
ORIENTATION_DATASET = "digits"  # the embedded default, set beside the paper's MNIST

SCHEMA = {
    "title": Field((str, type(None)), None),
    "compare_with": Field(str, "Stable Diffusion 2.1", help="the paper's model whose Table 2 rows the run sits under"),
    "reference_dir": Field(str, "reports/reference", help="the published tables (CSV)"),
}


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
    figures = report_figures(results, datasets, usd_per_image=cost["usd_per_image"], price_label=snapshot.label(),
                             ti_reference=ti_reference(str(generate.get("ti_embeddings") or "original")),
                             primary_model=models["CLIP"])

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


@click.command("report")
@params_option
def command(params_file: str) -> None:
    """Build reports/ (index.md, report.md, tables/, figures/) from what the pipeline has produced (params: report.*)."""
    all_params = read_params_file(params_file)
    datasets = pipeline_datasets(all_params)
    run_stage("report", params_file, SCHEMA, lambda p: work(p, all_params, datasets), check=_check_reference)


def _check_reference(p: dict) -> None:
    if not Path(p["reference_dir"]).is_dir():
        raise GenBenchError(f"params key 'report.reference_dir' = {p['reference_dir']!r} is not a directory; it must "
                            "hold the published tables (the kit ships them in reports/reference)")
    for key in REFERENCE_FILES:
        read_reference(p["reference_dir"], key)

