"""The frontier's points as work: which grid points still need a row (`pending`, `row_context`),
the generate settings of each checked (`check_grid`), a point's images embedded with the embed
section's model (`embed_images`) and scored (`Scoring`), its MLflow run's values
(`point_run_values`), the finished rows (`PointRows`), and the summary of all rows (`summarise_rows`) written as frontier.json,
the Pareto figure and the cheapest-within-target table (`write_summary`).

Each finished point is one JSON row named by genbench.frontier.row_key (its settings and every
param its row depends on), so a finished point is never recomputed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genbench import storage
from genbench.errors import GenBenchError
from genbench.executors import EMBED_EXECUTORS, EmbeddingWorker, ExecutorOptions, load_encoder
from genbench.feature_sets import real_test_set, targets
from genbench.features import load_features
from genbench.frontier import (
    GRID_KEYS,
    cheapest_within,
    frontier_figure,
    is_default,
    pareto_front,
    point_label,
    reference_scores,
    row_key,
    score_features,
    table_markdown,
)
from genbench.generation_checks import check_values
from genbench.labels import feature_labels

# frontier params a finished row depends on (the others say where and whether to keep files)
ROW_PARAMS = ("bootstrap_draws", "confidence", "seed")
# a row's scores and cost logged as the metrics of its MLflow run
RUN_METRICS = ("cler", "cler_ensemble", "probe", "label_agreement", "usd_per_image", "seconds", "images")


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
    def load(cls, features: Path, meta: dict) -> "Scoring":
        """From the features folder of the dataset whose meta.json is `meta`."""
        test_feats, test_labels = real_test_set(features, meta)
        text_feats, _, _ = load_features(features / "text.safetensors")
        return cls(test_feats, test_labels, text_feats, len(meta["classnames"]), meta["metric"], meta.get("task", "multiclass"))


def row_context(sections: dict, pricing: dict, threads: int) -> dict:
    """Everything besides a point's own settings that its row depends on (genbench.frontier.row_key)."""
    return {"generate": sections["generate"], "embed": sections["embed"], "cler": {"ranking": sections["cler"]["ranking"]},
            "probe": sections["probe"], "frontier": {k: sections["frontier"][k] for k in ROW_PARAMS}, "pricing": pricing,
            "cpu_threads": threads}


def pending(points: list[dict], folder: Path, context: dict) -> list[dict]:
    """The points with no finished row in `folder` yet (a finished row is never recomputed)."""
    return [p for p in points if not (folder / f"{row_key(p, context)}.json").is_file()]


@dataclass(frozen=True)
class PointRows:
    """The finished rows of the points in `folder`, one JSON file each named by row_key(point, context)."""

    folder: Path
    context: dict

    @classmethod
    def open(cls, folder: Path, context: dict) -> "PointRows":
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, context)

    def path(self, point: dict) -> Path:
        return self.folder / f"{row_key(point, self.context)}.json"

    def pending(self, points: list[dict]) -> list[dict]:
        return pending(points, self.folder, self.context)

    def save(self, point: dict, row: dict) -> dict:
        """Write the point's finished row atomically; returns it."""
        storage.atomic_write_json(self.path(point), row)
        return row

    def rows(self, points: list[dict]) -> list[dict]:
        """The finished rows of `points`, in their order."""
        return [json.loads(self.path(point).read_text()) for point in points]


def check_grid(points: list[dict], generate: dict) -> None:
    """Every point's generate settings (the section with the point's keys over it) pass the generate
    section's values checks; the first that does not is named in the error."""
    for point in points:
        try:
            check_values({**generate, **point})
        except GenBenchError as exc:
            raise GenBenchError(f"frontier grid point {point_label(point)!r}: {exc}") from None


def embed_images(embed: dict, generated: Path, executor: str, options: ExecutorOptions):
    """The images in `generated` encoded with the embed section's CLIP model, as the embed stage
    encodes a set; (the encoded set, the workers' readings)."""
    worker = EmbeddingWorker(embed["model"], embed["pretrained"], seed=embed["seed"], device=embed["device"],
                             batch_size=embed["batch_size"], decode_workers=embed["workers"])
    loaded = load_encoder(worker if executor == "local" else replace(worker, device="cpu"))
    run = EMBED_EXECUTORS[executor]({"generated": generated}, replace(worker, weights_sha256=loaded.weights_sha256),
                                    options=options, progress=False)
    return run.sets["generated"], run.readings


def score_point(got, scoring: Scoring, meta: dict, sections: dict) -> dict:
    """The scores of a point's encoded images `got` (genbench.frontier.score_features) with the
    cler section's ranking, the probe section and the frontier section's bootstrap."""
    labels = targets(meta, feature_labels(got.manifest, scoring.task, scoring.num_classes), "generated labels")
    f = sections["frontier"]
    return score_features(got.features, labels, scoring.test_feats, scoring.test_labels, scoring.text_feats,
                          num_classes=scoring.num_classes, metric=scoring.metric, ranking=sections["cler"]["ranking"],
                          probe=sections["probe"], draws=f["bootstrap_draws"], seed=f["seed"], confidence=f["confidence"])


def point_run_values(row: dict, generate: dict) -> tuple[dict[str, float], dict[str, str]]:
    """A row's MLflow run: its scores and cost as metrics (those not None), and every grid setting
    as a param (the point's, or the generate section's)."""
    settings = {**generate, **row["settings"]}
    values = {k: row[k] for k in RUN_METRICS} | {"cler_ci_low": row["cler_ci"][0], "cler_ci_high": row["cler_ci"][1]}
    return {k: float(v) for k, v in values.items() if v is not None}, {k: str(settings[k]) for k in GRID_KEYS}


def summarise_rows(rows: list[dict], generate: dict, refs: dict) -> dict:
    """frontier.json: the rows (without their ledger rows, each marked on the Pareto front or
    not), the front's ids, the cheapest-within-target table, the default setting's id and the
    reference scores `refs`."""
    front = pareto_front([r["usd_per_image"] for r in rows], [r["cler"] for r in rows])
    default = next((r for r in rows if is_default(r["settings"], generate)), None)
    public = [{k: v for k, v in r.items() if k != "ledger_rows"} | {"pareto": i in front} for i, r in enumerate(rows)]
    return {"points": public, "pareto": [rows[i]["id"] for i in front], "table": cheapest_within(rows),
            "default": default["id"] if default else None, **refs}


def original_references(features: Path, meta: dict, scoring: Scoring, ranking: str) -> dict:
    """Zero-shot CLIP and the original data's CLER (genbench.frontier.reference_scores)."""
    orig, orig_labels, _ = load_features(features / "original.safetensors")
    return reference_scores(scoring.test_feats, scoring.test_labels, scoring.text_feats, orig,
                            targets(meta, orig_labels, "original labels"), num_classes=scoring.num_classes,
                            metric=scoring.metric, ranking=ranking)


def write_summary(rows: list[dict], generate: dict, refs: dict, out: Path, folder: Path, title: str) -> dict:
    """Write the summary (`summarise_rows`) to `out`, and the Pareto figure and the table to
    folder/frontier.png and folder/frontier.md; returns the summary."""
    summary = summarise_rows(rows, generate, refs)
    storage.atomic_write_json(out, summary)
    frontier_figure(rows, folder / "frontier.png", zero_shot=refs["zero_shot"], original=refs["original_cler"], title=title)
    default = next((r for r in rows if r["id"] == summary["default"]), None)
    storage.atomic_write_text(folder / "frontier.md", table_markdown(summary["table"], default))
    return summary


def summary_metrics(summary: dict, computed: int) -> dict:
    """The stage's metrics of a summary: points, those computed now, those on the Pareto front, the
    best CLER and the USD per 1,000 images of the cheapest setting within 2 CLER points of it."""
    within2 = summary["table"][1]
    return {"points": len(summary["points"]), "points_computed": computed, "pareto_points": len(summary["pareto"]),
            "best_cler": within2["best_cler"], "within2_usd_per_1000": within2["usd_per_1000_images"]}
