"""Stage `frontier`: a grid of generation settings (genbench.frontier), each point generated and
embedded through the generate and embed stages' own code (stages.generate.make_work, the embed
executors), metered and priced like any stage (stages.frame.runner.price_readings, so the same meter and
price path as the cost ledger), and scored by genbench.frontier.score_features on the pipeline's
own test and text features. Each finished point is one JSON file under data/<dataset>/frontier/
points, named by genbench.frontier.row_key (its settings and every param its row depends on),
written atomically and never recomputed; each is also an MLflow run nested under the stage's run.
The rows, the Pareto figure and the cheapest-within-target table are built from those files.

Points run on `frontier.cpu_threads` torch threads (null: torch's own count), grouped so that the
loaded generator and CLIP model are reused from one point to the next.

Outputs: metrics/<dataset>/frontier.json and data/<dataset>/frontier/frontier.{png,md}; the report stage
draws reports/figures/frontier.png and puts the table in reports/index.md from frontier.json.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import click
import numpy as np
import torch
from tqdm import tqdm

from cost.ledger import LedgerRow, usd_per_image_by_data_type
from cost.meter import Meter
from cost.prices import load_snapshot
from genbench import storage
from genbench.errors import GenBenchError
from genbench.executors import EMBED_EXECUTORS, EmbeddingWorker, ExecutorOptions, load_encoder
from genbench.executors.workers import torch_threads
from genbench.features import load_features
from genbench.frontier import (
    GRID_KEYS,
    cheapest_within,
    frontier_figure,
    is_default,
    load_grid,
    pareto_front,
    point_id,
    point_label,
    reference_scores,
    row_key,
    run_order,
    score_features,
    table_markdown,
)
from genbench.feature_sets import real_test_set, targets
from genbench.labels import feature_labels
from stages import embed as embed_stage
from stages import generate as generate_stage
from stages.frame.options import address_option, dataset_option, executor_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive, read_params_file, validate_section
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, current_tracker, price_readings, pricing_params, run_stage
from stages.frame.sections import CLER_SCHEMA, PROBE_SCHEMA

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
# frontier params a finished row depends on (the others say where and whether to keep files)
ROW_PARAMS = ("bootstrap_draws", "confidence", "seed")


@dataclass(frozen=True)
class PointPaths(DatasetPaths):
    """A dataset's paths with the generated images and sample grid of one frontier point."""

    root: Path = Path(".")

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    @property
    def samples(self) -> Path:
        return self.root / "samples.png"


@dataclass(frozen=True)
class Scoring:
    """What every point is scored against: the pipeline's test and text features, loaded once."""

    test_feats: np.ndarray
    test_labels: np.ndarray
    text_feats: np.ndarray
    num_classes: int
    metric: str
    task: str

    @classmethod
    def of(cls, paths: DatasetPaths) -> "Scoring":
        meta = paths.read_meta()
        test_feats, test_labels = real_test_set(paths)
        text_feats, _, _ = load_features(paths.features / "text.safetensors")
        return cls(test_feats, test_labels, text_feats, len(meta["classnames"]), meta["metric"], meta.get("task", "multiclass"))


def points_dir(paths: DatasetPaths) -> Path:
    return Path("data") / paths.dataset / "frontier" / "points"


def row_context(sections: dict, pricing: dict, threads: int) -> dict:
    """Everything besides a point's own settings that its row depends on (genbench.frontier.row_key)."""
    return {"generate": sections["generate"], "embed": sections["embed"], "cler": {"ranking": sections["cler"]["ranking"]},
            "probe": sections["probe"], "frontier": {k: sections["frontier"][k] for k in ROW_PARAMS}, "pricing": pricing,
            "cpu_threads": threads}


def pending(points: list[dict], folder: Path, context: dict) -> list[dict]:
    """The points with no finished row in `folder` yet (a finished row is never recomputed)."""
    return [p for p in points if not (folder / f"{row_key(p, context)}.json").is_file()]


def _metered(stage: str, work, snapshot, pricing: dict, data_type: str | None):
    """`work() -> (result, items, worker readings)` inside a Meter, as run_stage meters a stage;
    (result, its priced ledger rows)."""
    with Meter(stage) as meter:
        result, items, readings = work()
        meter.add_items(0 if readings else items)
    own, workers = price_readings(meter.reading, readings, snapshot, pricing["sku"], data_type)
    return result, [own, *workers]


def run_point(point: dict, sections: dict, paths: DatasetPaths, scoring: Scoring, pricing: dict, executor: str,
              address: str | None) -> dict:
    """One grid point through generate, embed and the scores; its row with its priced ledger rows."""
    snapshot = load_snapshot(pricing["snapshot"])
    settings = {**sections["generate"], **point}
    generate_stage.check_values(settings)
    where = points_dir(paths) / f"{point_id(point)}.work"
    point_paths = PointPaths(paths.dataset, root=where)

    def generate():
        gen = generate_stage.make_work(point_paths, None, executor, address)(settings)
        return gen, gen.items, gen.worker_readings

    _, rows = _metered("generate", generate, snapshot, pricing, "generated")

    e = sections["embed"]
    worker = EmbeddingWorker(e["model"], e["pretrained"], seed=e["seed"], device=e["device"], batch_size=e["batch_size"],
                             decode_workers=e["workers"])

    def embed():
        loaded = load_encoder(worker if executor == "local" else replace(worker, device="cpu"))
        run = EMBED_EXECUTORS[executor]({"generated": point_paths.generated}, replace(worker, weights_sha256=loaded.weights_sha256),
                                        options=ExecutorOptions(address=address, meter=Meter), progress=False)
        got = run.sets["generated"]
        return got, len(got.features), run.readings

    got, embed_rows = _metered("embed", embed, snapshot, pricing, None)
    rows += embed_rows

    labels = targets(paths, feature_labels(got.manifest, scoring.task, scoring.num_classes), "generated labels")
    f = sections["frontier"]
    scores = score_features(got.features, labels, scoring.test_feats, scoring.test_labels, scoring.text_feats,
                            num_classes=scoring.num_classes, metric=scoring.metric, ranking=sections["cler"]["ranking"],
                            probe=sections["probe"], draws=f["bootstrap_draws"], seed=f["seed"], confidence=f["confidence"])
    if not f["keep_images"]:
        shutil.rmtree(where, ignore_errors=True)
    usd = usd_per_image_by_data_type([LedgerRow.from_dict(r) for r in rows], human_usd_per_image=0.0)["generated"]
    return {"id": point_id(point), "settings": point, "images": int(len(got.features)),
            "seconds": sum(r["wall_s"] for r in rows), "usd_per_image": usd, **scores, "ledger_rows": rows}


def read_sections(params_file: str, frontier: dict) -> dict:
    """The frontier section with the generate, embed, cler and probe sections it runs and scores with."""
    all_params = read_params_file(params_file)
    return {"frontier": frontier,
            "generate": validate_section(all_params.get("generate"), "generate", generate_stage.SCHEMA),
            "embed": validate_section(all_params.get("embed"), "embed", embed_stage.SCHEMA),
            "cler": validate_section(all_params.get("cler"), "cler", CLER_SCHEMA),
            "probe": validate_section(all_params.get("probe"), "probe", PROBE_SCHEMA)}


def make_work(paths: DatasetPaths, params_file: str, grid_file: str | None, executor: str, address: str | None):
    def work(p: dict) -> StageResult:
        sections = read_sections(params_file, p)
        pricing = pricing_params(read_params_file(params_file))
        points = load_grid(grid_file or p["grid"])
        threads = p["cpu_threads"] or torch.get_num_threads()
        context = row_context(sections, pricing, threads)
        folder = points_dir(paths)
        folder.mkdir(parents=True, exist_ok=True)
        scoring = Scoring.of(paths)
        todo = run_order(pending(points, folder, context), sections["generate"])
        with torch_threads(threads):
            for point in tqdm(todo, desc="frontier", unit="point"):
                row = run_point(point, sections, paths, scoring, pricing, executor, address)
                storage.atomic_write_json(folder / f"{row_key(point, context)}.json", row)
                log_point_run(row, sections["generate"], paths.dataset)
        rows = [json.loads((folder / f"{row_key(pt, context)}.json").read_text()) for pt in points]
        return summarise(rows, paths, sections, scoring, len(todo))

    return work


def log_point_run(row: dict, generate: dict, dataset: str) -> None:
    """The point as an MLflow run nested under the stage's run: every grid setting as a param (the
    point's or the generate section's), its scores and cost as metrics, so the MLflow UI's
    parallel-coordinates and scatter views compare the points."""
    from mlflow.entities import Metric, Param

    from stages.frame.tracking import DATASET_TAG, KIND_TAG, STAGE_TAG

    tracker = current_tracker()
    if tracker is None:
        return
    client, now = tracker.client, int(__import__("time").time() * 1000)
    settings = {**generate, **row["settings"]}
    run = client.create_run(tracker.experiment_id, run_name=f"frontier@{dataset}:{point_label(row['settings'])}",
                            tags={"mlflow.parentRunId": tracker.run_id, STAGE_TAG: "frontier", "dvc_stage": "frontier",
                                  KIND_TAG: "frontier-point", DATASET_TAG: dataset, "frontier_point": row["id"]})
    values = {k: row[k] for k in ("cler", "cler_ensemble", "probe", "label_agreement", "usd_per_image", "seconds", "images")}
    values |= {"cler_ci_low": row["cler_ci"][0], "cler_ci_high": row["cler_ci"][1]}
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items() if v is not None],
                     params=[Param(k, str(settings[k])) for k in GRID_KEYS])
    client.set_terminated(run.info.run_id, status="FINISHED")


def summarise(rows: list[dict], paths: DatasetPaths, sections: dict, scoring: Scoring, computed: int) -> StageResult:
    orig, orig_labels, _ = load_features(paths.features / "original.safetensors")
    refs = reference_scores(scoring.test_feats, scoring.test_labels, scoring.text_feats,
                            orig, targets(paths, orig_labels, "original labels"), num_classes=scoring.num_classes,
                            metric=scoring.metric, ranking=sections["cler"]["ranking"])
    front = pareto_front([r["usd_per_image"] for r in rows], [r["cler"] for r in rows])
    table = cheapest_within(rows)
    default = next((r for r in rows if is_default(r["settings"], sections["generate"])), None)
    out = paths.metrics / "frontier.json"
    public = [{k: v for k, v in r.items() if k != "ledger_rows"} | {"pareto": i in front} for i, r in enumerate(rows)]
    storage.atomic_write_json(out, {"points": public, "pareto": [rows[i]["id"] for i in front], "table": table,
                                    "default": default["id"] if default else None, **refs})
    figure, table_path = points_dir(paths).parent / "frontier.png", points_dir(paths).parent / "frontier.md"
    frontier_figure(rows, figure, zero_shot=refs["zero_shot"], original=refs["original_cler"],
                    title=f"{paths.dataset}: CLER against cost, {len(rows)} settings")
    storage.atomic_write_text(table_path, table_markdown(table, default))
    within2 = table[1]
    click.echo(f"frontier: {len(rows)} points ({computed} computed now), {len(front)} on the Pareto front; best CLER "
               f"{within2['best_cler']:.2f}; within 2 points: {within2['setting']} at {within2['usd_per_1000_images']:.3g} "
               f"USD/1,000 images -> {out}")
    return StageResult(metrics={"points": len(rows), "points_computed": computed, "pareto_points": len(front),
                                "best_cler": within2["best_cler"],
                                "within2_usd_per_1000": within2["usd_per_1000_images"]},
                       artifacts=[out, figure, table_path])


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
        for point in load_grid(grid_file or p["grid"]):
            try:
                generate_stage.check_values({**generate, **point})
            except GenBenchError as exc:
                raise GenBenchError(f"frontier grid point {point_label(point)!r}: {exc}") from None
        paths.require(*(paths.features / f"{s}.safetensors" for s in ("test", "text", "original")), paths.prepared / "meta.json")

    run_stage("frontier", params_file, SCHEMA, make_work(paths, params_file, grid_file, executor, address), checks, dataset=name)
