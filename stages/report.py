"""Stage `report`: a Markdown report of this run (per dataset: scores per data source; cost per
data type), a chart of the scores and the sample grids."""

from __future__ import annotations

import shutil

import click

from genbench import storage
from genbench.plots import bar_chart
from genbench.report import DatasetResults, build_report
from stages.inputs import METRICS, REPORTS, DatasetPaths, read_json
from stages.options import params_option, pipeline_datasets
from stages.params import Field, read_params_file
from stages.runner import StageResult, run_stage
from stages.tracking import git_commit

OUT = REPORTS / "report.md"
FIGURES = REPORTS / "figures"
SCHEMA = {"title": Field((str, type(None)), None)}


def dataset_results(name: str) -> DatasetResults:
    paths = DatasetPaths(name)
    meta = paths.read_meta()
    cler = read_json(paths.metrics / "cler.json", f"cler@{name}")
    probe = read_json(paths.metrics / "probe.json", f"probe@{name}")
    values = {"zero-shot": cler["zero_shot"]}
    values.update({f"CLER {n}": s["cler"] for n, s in cler["sets"].items()})
    values.update({f"probe {n}": s["score"] for n, s in probe["sets"].items()})
    scores_png = FIGURES / f"{name}-scores.png"
    bar_chart(values, scores_png, ylabel=f"{meta['metric']} (%)", title=f"{name}: scores on the test set",
              reference=100.0 / len(meta["classnames"]), reference_label="chance")
    samples_png = FIGURES / f"{name}-samples.png"
    with storage.atomic_path(samples_png) as tmp:
        shutil.copyfile(paths.samples, tmp)
    figures = {f"{name}: scores per data source": f"figures/{scores_png.name}",
               f"{name}: generated samples, one row per class": f"figures/{samples_png.name}"}
    return DatasetResults(meta=meta, cler=cler, probe=probe, figures=figures)


def work(p: dict, profile: str, datasets: list[str]) -> StageResult:
    cost = read_json(METRICS / "cost.json", "cost")
    FIGURES.mkdir(parents=True, exist_ok=True)
    results = [dataset_results(name) for name in datasets]
    text = build_report(results, cost, profile=profile, commit=git_commit(), title=p["title"])
    storage.atomic_write_text(OUT, text)
    click.echo(f"report: {OUT}")
    return StageResult(artifacts=[OUT, *sorted(FIGURES.glob("*.png"))])


@click.command("report")
@params_option
def command(params_file: str) -> None:
    """Write reports/report.md with this run's scores and costs (params: report.*)."""
    all_params = read_params_file(params_file)
    profile, datasets = all_params.get("profile", "embedded"), pipeline_datasets(all_params)
    run_stage("report", params_file, SCHEMA, lambda p: work(p, profile, datasets))
