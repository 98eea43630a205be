"""Stage `frontier`: a grid of generation settings (genbench.frontier), each point generated,
embedded, scored and priced through the generate, embed, cler and probe stages' own code, metered
like any stage (cost.meter, priced by cost.ledger). Each finished point is one JSON file under
data/<dataset>/frontier/points (written atomically, never recomputed); the rows, the Pareto figure
and the cheapest-within-target table are built from those files.

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
from tqdm import tqdm

from cost.ledger import price_reading, usd_per_image_by_data_type
from cost.meter import Meter
from cost.prices import load_snapshot
from genbench import storage
from genbench.executors import EMBED_EXECUTORS, EmbeddingWorker, ExecutorOptions, load_encoder
from genbench.features import load_features
from genbench.frontier import (
    bootstrap_interval,
    cheapest_within,
    frontier_figure,
    load_grid,
    pareto_front,
    point_id,
    point_label,
    table_markdown,
)
from genbench.labels import feature_labels
from genbench.metrics import cler, label_agreement, zero_shot
from genbench.probe import linear_probe
from stages import embed as embed_stage
from stages import generate as generate_stage
from stages.cler import SCHEMA as CLER_SCHEMA
from stages.cler import real_test_set, targets
from stages.inputs import DatasetPaths
from stages.options import address_option, dataset_option, executor_option, params_option, resolve_dataset
from stages.params import Field, non_negative, positive, read_params_file, validate_section
from stages.probe import SCHEMA as PROBE_SCHEMA
from stages.runner import StageResult, pricing_params, run_stage

SCHEMA = {
    "grid": Field(str, "profiles/frontier/embedded.yaml", help="YAML grid of generate settings (genbench.frontier)"),
    "bootstrap_draws": Field(int, 200, positive, help="bootstrap resamples of the test images per point"),
    "confidence": Field(float, 0.95, lambda v: None if 0 < v < 1 else "must lie in (0, 1)"),
    "seed": Field(int, 0, non_negative, help="seeds the bootstrap resamples"),
    "keep_images": Field(bool, False, help="keep each point's generated shards (false: only its JSON row)"),
}


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


def points_dir(paths: DatasetPaths) -> Path:
    return Path("data") / paths.dataset / "frontier" / "points"


def pending(points: list[dict], folder: Path) -> list[dict]:
    """The points with no finished row in `folder` yet (a finished row is never recomputed)."""
    return [p for p in points if not (folder / f"{point_id(p)}.json").is_file()]


def _priced(reading, snapshot, sku, data_type) -> dict:
    return price_reading(reading, snapshot, override_sku=sku, data_type=data_type).to_dict()


def run_point(point: dict, sections: dict, paths: DatasetPaths, pricing: dict, executor: str, address: str | None) -> dict:
    """One grid point through generate, embed, cler and probe; its row with both meter readings."""
    snapshot = load_snapshot(pricing["snapshot"])
    settings = {**sections["generate"], **point}
    generate_stage.check_values(settings)
    where = points_dir(paths) / f"{point_id(point)}.work"
    point_paths = PointPaths(paths.dataset, root=where)
    with Meter("generate") as meter:
        gen = generate_stage.make_work(point_paths, None, executor, address)(settings)
        meter.add_items(0 if gen.worker_readings else gen.items)
    rows = [_priced(meter.reading, snapshot, pricing["sku"], "generated")]
    rows += [_priced(_reading(r), snapshot, pricing["sku"], "generated") for r in gen.worker_readings]

    e = sections["embed"]
    worker = EmbeddingWorker(e["model"], e["pretrained"], seed=e["seed"], device=e["device"], batch_size=e["batch_size"],
                             decode_workers=e["workers"])
    meta = paths.read_meta()
    with Meter("embed") as meter:
        loaded = load_encoder(worker if executor == "local" else replace(worker, device="cpu"))
        run = EMBED_EXECUTORS[executor]({"generated": point_paths.generated}, replace(worker, weights_sha256=loaded.weights_sha256),
                                        options=ExecutorOptions(address=address, meter=Meter))
        got = run.sets["generated"]
        meter.add_items(0 if run.readings else len(got.features))
    rows.append(_priced(meter.reading, snapshot, pricing["sku"], None))
    rows += [_priced(_reading(r), snapshot, pricing["sku"], None) for r in run.readings]

    labels = targets(paths, feature_labels(got.manifest, meta.get("task", "multiclass"), len(meta["classnames"])), "generated labels")
    scores = score_point(got.features, labels, paths, sections)
    if not sections["frontier"]["keep_images"]:
        shutil.rmtree(where, ignore_errors=True)
    from cost.ledger import LedgerRow

    usd = usd_per_image_by_data_type([LedgerRow.from_dict(r) for r in rows], human_usd_per_image=0.0)["generated"]
    return {"id": point_id(point), "settings": point, "images": int(len(got.features)),
            "seconds": sum(r["wall_s"] for r in rows), "usd_per_image": usd, **scores, "ledger_rows": rows}


def _reading(data: dict):
    from cost.meter import Reading

    return Reading.from_dict(data)


def score_point(feats: np.ndarray, labels: np.ndarray, paths: DatasetPaths, sections: dict) -> dict:
    """CLER (with its bootstrap interval over test images), CLER-ensemble, probe and label
    agreement of one point's generated features, as the cler and probe stages score them."""
    meta = paths.read_meta()
    test_feats, test_labels = real_test_set(paths)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    n, metric, ranking = len(meta["classnames"]), meta["metric"], sections["cler"]["ranking"]
    s = cler(feats, labels, test_feats, test_labels, num_classes=n, text_feats=text_feats, metric=metric, ranking=ranking)
    f = sections["frontier"]

    def resampled(idx: np.ndarray) -> float:
        return cler(feats, labels, test_feats[idx], test_labels[idx], num_classes=n, metric=metric, ranking=ranking)["cler"]

    ci = bootstrap_interval(resampled, len(test_feats), draws=f["bootstrap_draws"], seed=f["seed"], confidence=f["confidence"])
    pr = sections["probe"]
    probe = linear_probe(feats, labels, test_feats, test_labels, metric=metric, seed=pr["seed"], val_fraction=pr["val_fraction"],
                         protocol=pr["protocol"], num_classes=n)
    return {"cler": s["cler"], "cler_ci": list(ci), "cler_ensemble": s["cler_ensemble"], "probe": probe["score"],
            "label_agreement": label_agreement(feats, labels, text_feats)}


def reference_scores(paths: DatasetPaths, sections: dict) -> dict:
    """Zero-shot CLIP and the original data's CLER on the same test set (the figure's reference lines)."""
    meta = paths.read_meta()
    test_feats, test_labels = real_test_set(paths)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    orig, orig_labels, _ = load_features(paths.features / "original.safetensors")
    ranking, metric, n = sections["cler"]["ranking"], meta["metric"], len(meta["classnames"])
    zs = zero_shot(test_feats, test_labels, text_feats, metric=metric, ranking=ranking)
    o = cler(orig, targets(paths, orig_labels, "original labels"), test_feats, test_labels, num_classes=n, metric=metric, ranking=ranking)
    return {"zero_shot": zs, "original_cler": o["cler"]}


def make_work(paths: DatasetPaths, params_file: str, grid_file: str | None, executor: str, address: str | None):
    def work(p: dict) -> StageResult:
        all_params = read_params_file(params_file)
        sections = {"frontier": p, "generate": validate_section(all_params.get("generate"), "generate", generate_stage.SCHEMA),
                    "embed": validate_section(all_params.get("embed"), "embed", embed_stage.SCHEMA),
                    "cler": validate_section(all_params.get("cler"), "cler", CLER_SCHEMA),
                    "probe": validate_section(all_params.get("probe"), "probe", PROBE_SCHEMA)}
        pricing = pricing_params(all_params)
        points = load_grid(grid_file or p["grid"])
        folder = points_dir(paths)
        folder.mkdir(parents=True, exist_ok=True)
        computed = 0
        for point in tqdm(pending(points, folder), desc="frontier", unit="point"):
            out = folder / f"{point_id(point)}.json"
            row = run_point(point, sections, paths, pricing, executor, address)
            storage.atomic_write_json(out, row)
            log_point_run(row, all_params.get("profile", "embedded"), paths.dataset, params_file)
            computed += 1
        rows = [json.loads((folder / f"{point_id(pt)}.json").read_text()) for pt in points]
        return summarise(rows, paths, sections, computed)

    return work


def log_point_run(row: dict, profile: str, dataset: str, params_file: str) -> None:
    """The point as its own MLflow child run: its settings as params, its scores and cost as metrics."""
    from stages.tracking import StageTracker

    with StageTracker("frontier-point", profile, row["settings"], run_name=f"frontier@{dataset}:{point_label(row['settings'])}",
                      tags={"dataset": dataset, "frontier_point": row["id"]}, params_file=params_file) as tracker:
        tracker.log_metrics({k: row[k] for k in ("cler", "cler_ensemble", "probe", "label_agreement", "usd_per_image",
                                                 "seconds", "images")}
                            | {"cler_ci_low": row["cler_ci"][0], "cler_ci_high": row["cler_ci"][1]})


def summarise(rows: list[dict], paths: DatasetPaths, sections: dict, computed: int) -> StageResult:
    refs = reference_scores(paths, sections)
    front = pareto_front([r["usd_per_image"] for r in rows], [r["cler"] for r in rows])
    table = cheapest_within(rows)
    g = sections["generate"]
    default = next((r for r in rows if all(g.get(k) == v for k, v in r["settings"].items())), None)
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
    never recomputed. Writes metrics/D/frontier.json, reports/figures/frontier.png and
    reports/tables/frontier.md."""
    name = resolve_dataset(params_file, dataset)
    paths = DatasetPaths(name)

    def checks(p: dict) -> None:
        load_grid(grid_file or p["grid"])
        paths.require(*(paths.features / f"{s}.safetensors" for s in ("test", "text", "original")), paths.prepared / "meta.json")

    run_stage("frontier", params_file, SCHEMA, make_work(paths, params_file, grid_file, executor, address), checks, dataset=name)
