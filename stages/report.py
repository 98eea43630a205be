"""Stage `report`: a Markdown report of this run (scores per data source, cost per data type),
a summary chart and the sample grid."""

from __future__ import annotations

import os
import shutil

import click

from genbench import storage
from genbench.plots import bar_chart
from genbench.report import build_report
from stages.inputs import METRICS, PLOTS, REPORTS, read_json, read_meta
from stages.options import params_option
from stages.params import Field, read_params_file
from stages.runner import StageResult, run_stage
from stages.tracking import git_commit

OUT = REPORTS / "report.md"
FIGURES = REPORTS / "figures"
SCHEMA = {"title": Field((str, type(None)), None)}


def work(p: dict, profile: str) -> StageResult:
    meta = read_meta()
    cler = read_json(METRICS / "cler.json", "cler")
    probe = read_json(METRICS / "probe.json", "probe")
    cost = read_json(METRICS / "cost.json", "cost")
    FIGURES.mkdir(parents=True, exist_ok=True)
    values = {"zero-shot": cler["zero_shot"]}
    values.update({f"CLER {n}": s["cler"] for n, s in cler["sets"].items()})
    values.update({f"probe {n}": s["score"] for n, s in probe["sets"].items()})
    bar_chart(values, FIGURES / "scores.png", ylabel=f"{meta['metric']} (%)", title=f"{meta['name']}: scores on the test set",
              reference=100.0 / len(meta["classnames"]), reference_label="chance")
    with storage.atomic_path(FIGURES / "samples.png") as tmp:
        shutil.copyfile(PLOTS / "samples.png", tmp)
    figures = {"scores per data source": "figures/scores.png", "generated samples, one row per class": "figures/samples.png"}
    text = build_report(meta, cler, probe, cost, profile=profile, commit=git_commit(), figures=figures)
    if p["title"]:
        text = text.replace(text.splitlines()[0], f"# {p['title']}", 1)
    storage.atomic_write_text(OUT, text)
    click.echo(f"report: {OUT}")
    return StageResult(artifacts=[OUT, FIGURES / "scores.png"])


@click.command("report")
@params_option
def command(params_file: str) -> None:
    """Write reports/report.md with this run's scores and costs (params: report.*)."""
    profile = read_params_file(params_file).get("profile", "embedded")
    run_stage("report", params_file, SCHEMA, lambda p: work(p, profile))
