"""Stage `frontier`: CLER against USD per image over a grid of generation settings
(genbench.frontier). Each point is generated and embedded with the generate and embed stages'
code (genbench.generation_run, genbench.frontier_points), metered and priced as any stage
(stages.frame.runner.metered_rows) and scored on the pipeline's own test and text features; its
row is one JSON file under data/<dataset>/frontier/points (never recomputed) and an MLflow run
nested under the stage's. Points run on `frontier.cpu_threads` torch threads (null: torch's own
count), grouped so that consecutive points reuse the loaded generator and CLIP model.

Outputs: metrics/<dataset>/frontier.json and data/<dataset>/frontier/frontier.{png,md}; the report
stage draws reports/figures/frontier.png and the table in reports/index.md from frontier.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import torch
from tqdm import tqdm

from cost.ledger import LedgerRow, apportion_items, delivered_items, usd_per_image_by_data_type
from cost.meter import Meter
from cost.prices import load_snapshot
from genbench.executors import ExecutorOptions
from genbench.executors.workers import torch_threads
from genbench.frontier import load_grid, point_id, point_label, run_order
from genbench.frontier_points import (PointRows, Scoring, check_grid, embed_images, original_references, point_run_values,
                                      row_context, score_point, summary_metrics, write_summary)
from genbench.generation_checks import check_values
from genbench.generation_plan import GenerationPaths
from genbench.generation_run import run_generation
from stages.frame.options import address_option, dataset_option, executor_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive, read_params_file, validate_section
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, log_nested_run, metered_rows, pricing_params, run_stage

SCHEMA = {
    "datasets": Field(list, [], help="datasets dvc.yaml runs the stage frontier@D for ([]: none; `genbench frontier --dataset D` runs any)"),
    "grid": Field(str, "profiles/frontier/embedded.yaml", help="YAML grid of generate settings (genbench.frontier)"),
    "bootstrap_draws": Field(int, 200, positive, help="bootstrap resamples of the test images per point"),
    "confidence": Field(float, 0.95, lambda v: None if 0 < v < 1 else "must lie in (0, 1)"),
    "seed": Field(int, 0, non_negative, help="seeds the bootstrap resamples"),
    "cpu_threads": Field((int, type(None)), None, lambda v: None if v is None or v >= 1 else "must be 1 or more, or null",
                         help="torch CPU threads the points run on (null: torch's own count)"),
    "keep_images": Field(bool, False, help="keep each point's generated shards (false: only its JSON row)"),
}


def points_dir(paths: DatasetPaths) -> Path:
    return Path("data") / paths.dataset / "frontier" / "points"


def run_point(point: dict, sections: dict, paths: DatasetPaths, scoring: Scoring, pricing: dict, executor: str,
              address: str | None) -> dict:
    """One grid point through generate, embed and the scores; its row with its priced ledger rows."""
    snapshot, options = load_snapshot(pricing["snapshot"]), ExecutorOptions(address=address, meter=Meter)
    settings = {**sections["generate"], **point}
    check_values(settings)
    root = points_dir(paths) / f"{point_id(point)}.work"
    where = GenerationPaths(paths.dataset, root / "generated", paths.prepared / "original", root / "samples.png")

    def generate():
        gen = run_generation(settings, paths.spec(), where, executor=executor, options=options, log=click.echo)
        items = delivered_items(gen.made, gen.kept, gen.candidates)
        return gen, items, apportion_items(gen.readings, items)

    def embed():
        got, readings = embed_images(sections["embed"], where.out_dir, executor, options)
        return got, len(got.features), readings

    _, rows = metered_rows("generate", generate, snapshot, pricing["sku"], "generated")
    got, embed_rows = metered_rows("embed", embed, snapshot, pricing["sku"], None)
    rows += embed_rows
    scores = score_point(got, scoring, paths.read_meta(), sections)
    if not sections["frontier"]["keep_images"]:
        shutil.rmtree(root, ignore_errors=True)
    usd = usd_per_image_by_data_type([LedgerRow.from_dict(r) for r in rows], human_usd_per_image=0.0)["generated"]
    return {"id": point_id(point), "settings": point, "images": int(len(got.features)),
            "seconds": sum(r["wall_s"] for r in rows), "usd_per_image": usd, **scores, "ledger_rows": rows}


def read_sections(params_file: str, frontier: dict) -> dict:
    """The frontier section with the generate, embed, cler and probe sections it runs and scores with."""
    from stages.frame.profile_rules import SECTIONS  # here: it imports every stage module

    all_params = read_params_file(params_file)
    raw = {"generate": all_params.get("generate"), "embed": all_params.get("embed"), "cler": all_params.get("cler"),
           "probe": all_params.get("probe")}
    return {"frontier": frontier, **{name: validate_section(v, name, SECTIONS[name][0]) for name, v in raw.items()}}


def make_work(paths: DatasetPaths, params_file: str, grid_file: str | None, executor: str, address: str | None):
    def work(p: dict) -> StageResult:
        sections = read_sections(params_file, p)
        pricing = pricing_params(read_params_file(params_file))
        points = load_grid(grid_file or p["grid"])
        threads = p["cpu_threads"] or torch.get_num_threads()
        store = PointRows.open(points_dir(paths), row_context(sections, pricing, threads))
        scoring = Scoring.load(paths.features, paths.read_meta())
        todo = run_order(store.pending(points), sections["generate"])
        with torch_threads(threads):
            for point in tqdm(todo, desc="frontier", unit="point"):
                row = store.save(point, run_point(point, sections, paths, scoring, pricing, executor, address))
                log_nested_run(f"frontier@{paths.dataset}:{point_label(row['settings'])}", "frontier-point",  # for MLflow's comparisons
                               {"frontier_point": row["id"]}, *point_run_values(row, sections["generate"]))
        return summarise(store.rows(points), paths, sections, scoring, len(todo))

    return work


def summarise(rows: list[dict], paths: DatasetPaths, sections: dict, scoring: Scoring, computed: int) -> StageResult:
    refs = original_references(paths.features, paths.read_meta(), scoring, sections["cler"]["ranking"])
    out, folder = paths.metrics / "frontier.json", points_dir(paths).parent
    summary = write_summary(rows, sections["generate"], refs, out, folder, f"{paths.dataset}: CLER against cost, {len(rows)} settings")
    m = summary_metrics(summary, computed)
    click.echo(f"frontier: {m['points']} points ({computed} computed now), {m['pareto_points']} on the Pareto front; best CLER "
               f"{m['best_cler']:.2f}; within 2 points: {summary['table'][1]['setting']} at {m['within2_usd_per_1000']:.3g} "
               f"USD/1,000 images -> {out}")
    return StageResult(metrics=m, artifacts=[out, folder / "frontier.png", folder / "frontier.md"])


@click.command("frontier")
@params_option
@dataset_option
@click.option("--grid", "grid_file", default=None, metavar="FILE", help="YAML grid of generate settings (default: params frontier.grid).")
@executor_option
@address_option
def command(params_file: str, dataset: str | None, grid_file: str | None, executor: str, address: str | None) -> None:
    """Cost-quality frontier: CLER against USD per image over a grid of generation settings (params: frontier.*).

    Each point is generated, embedded, scored (CLER with a bootstrap interval, CLER-ensemble,
    probe, label agreement) and priced; a finished point is kept under data/D/frontier/points and
    never recomputed. Writes metrics/D/frontier.json and data/D/frontier/frontier.{png,md};
    `genbench report` draws reports/figures/frontier.png and its table from them."""
    name = resolve_dataset(params_file, dataset)
    paths = DatasetPaths(name)

    def checks(p: dict) -> None:
        generate = read_sections(params_file, p)["generate"]
        check_grid(load_grid(grid_file or p["grid"]), generate)
        paths.require(*(paths.features / f"{s}.safetensors" for s in ("test", "text", "original")), paths.prepared / "meta.json")

    run_stage("frontier", params_file, SCHEMA, make_work(paths, params_file, grid_file, executor, address), checks, dataset=name)
