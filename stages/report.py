"""Stage `report`: the paper's tables (genbench.tables.run_tables) and figures
(genbench.figures.report_figures) rebuilt from whatever the pipeline has produced, published beside
reproduced. `genbench report` writes
- reports/index.md: which profile, commit and price snapshot produced the report, links to all of it;
- reports/report.md: this run's scores per dataset and data source, and the cost per data type;
- reports/tables/<key>.{md,csv,tex}: Tables 1-5, Section 3.1, the embedded default beside MNIST;
- reports/figures/*.png: Figure 3 (and 4, 5, 6 when their stages have run), score charts, samples.
It reads metrics/ (Figure 3's data: the per-dataset stage `shots`), plots/, reports/ledger.csv and
reports/reference/ (the published tables); a dataset without shots.json takes its size from
data/<ds>/prepared/meta.json.
"""

from __future__ import annotations

from pathlib import Path

import click

from genbench import storage
from genbench.errors import GenBenchError
from genbench.figures.report_figures import FigureFolders, dataset_figures, report_figures
from genbench.report import DatasetResults, TableEntry, build_index, build_report, frontier_section, optional_json, read_results
from genbench.tables import read_reference, write_table
from genbench.tables.reference import REFERENCE_FILES
from genbench.tables.run_tables import CostInputs, paper_tables, section31_prices, ti_reference
from stages.frame.options import params_option, pipeline_datasets
from stages.frame.params import Field, read_params_file
from stages.frame.paths import METRICS, REPORTS, DatasetPaths
from stages.frame.runner import StageResult, run_stage
from stages.frame.tracking import git_commit

OUT = REPORTS / "report.md"
INDEX = REPORTS / "index.md"
LEDGER = REPORTS / "ledger.csv"
FIGURES = REPORTS / "figures"
TABLES = REPORTS / "tables"

SCHEMA = {
    "title": Field((str, type(None)), None),
    "compare_with": Field(str, "Stable Diffusion 2.1", help="the paper's model whose Table 2 rows the run sits under"),
    "reference_dir": Field(str, "reports/reference", help="the published tables (CSV)"),
}


def cost_inputs(reference: Path, human_usd: float | None) -> CostInputs:
    """Published Table 5, the cost layer's audit of it, this run's cost table and Section 3.1."""
    from cost.audit import audit_cost_table, section31_comparison
    from cost.ledger import cost_table, read_ledger

    published = read_reference(reference, "table5")
    audit = [row.to_dict() for row in audit_cost_table(reference / "genbench_table5_cost.csv")]
    run_rows = cost_table(read_ledger(LEDGER), human_usd_per_image=human_usd) if LEDGER.is_file() else None
    section31 = [None if prices is None else section31_comparison(generated_usd_per_image=prices[0], human_usd_per_image=prices[1])
                 for prices in section31_prices(published, audit, run_rows, human_usd)]
    return CostInputs(published, audit, run_rows, section31)


def work(p: dict, all_params: dict, datasets: list[str]) -> StageResult:
    from cost.prices import load_snapshot

    profile = all_params.get("profile", "embedded")
    pricing = all_params.get("cost") or {}
    snapshot = load_snapshot(pricing.get("snapshot", "paper-2023"))
    human_usd = snapshot.human_labelling_usd_per_image  # None: the snapshot names no human-labelling price
    models = {"generator": (all_params.get("generate") or {}).get("model", "?"),
              "CLIP": (all_params.get("embed") or {}).get("model", "?")}
    commit = git_commit()
    cost = optional_json(METRICS / "cost.json") or {"usd_per_image": {}, "usd_total": None, "snapshot": snapshot.name}
    FIGURES.mkdir(parents=True, exist_ok=True)
    folders = {n: DatasetPaths(n) for n in datasets}
    results = read_results(folders)

    generate = all_params.get("generate") or {}
    ti_embeddings = str(generate.get("ti_embeddings") or "original")
    tables, orientation = paper_tables(p["reference_dir"], results, cost_inputs(Path(p["reference_dir"]), human_usd),
                                       models=models, compare_with=p["compare_with"], snapshot=snapshot.label(),
                                       ti_embeddings=ti_embeddings)
    entries = []
    for table in tables + orientation:
        files = write_table(table, TABLES)
        entries.append(TableEntry(table, {s: str(path.relative_to(REPORTS)) for s, path in files.items()}))
    figures = report_figures(results, datasets, folders,
                             FigureFolders(FIGURES, TABLES, METRICS), usd_per_image=cost["usd_per_image"],
                             price_label=snapshot.label(), ti_reference=ti_reference(ti_embeddings),
                             primary_model=models["CLIP"])

    scored = [n for n in datasets if results[n]["cler"] and results[n]["probe"]]
    summary = [DatasetResults(info=results[n]["info"], cler=results[n]["cler"], probe=results[n]["probe"],
                              figures=dataset_figures(n, results[n], folders[n].samples, FIGURES)) for n in scored]
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
    out = []
    for name in datasets:
        data = optional_json(METRICS / name / "frontier.json")
        if data is not None:
            png = FIGURES / ("frontier.png" if len(datasets) == 1 else f"frontier-{name}.png")
            out.append(frontier_section(name, data, png, str(png.relative_to(INDEX.parent))))
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

