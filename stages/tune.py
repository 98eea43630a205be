"""Stage `tune`: He et al.'s classifier tuning. A linear head initialised from the zero-shot text
classifier is tuned on frozen features of the generated images with CE and with SCE
(genbench/tune.py), optionally after Real Filtering against the few-shot original images
(genbench/strategies/real_filter.py), and scored on the real test set."""

from __future__ import annotations

import time

import click

from genbench import storage
from genbench.feature_sets import external_sets, real_test_set
from genbench.features import load_features
from genbench.strategies.real_filter import real_filter_mask
from genbench.tune import SELECTIONS, TuneSettings, tune_scores
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult
from stages.frame.sections import CLER_SCHEMA

def _selection(value) -> str | None:
    return None if value in SELECTIONS else f"must be one of {', '.join(SELECTIONS)}"


def _weight(value) -> str | None:
    return None if 0 <= value <= 1 else "must lie between 0 and 1"


SCHEMA = {
    "epochs": Field(int, 30, non_negative, help="epochs over the generated features (0: the zero-shot head)"),
    "batch_size": Field(int, 512, positive, help="generated images per AdamW step"),
    "lr": Field(float, 2e-3, positive, help="AdamW peak learning rate (cosine to 0, no warm-up)"),
    "weight_decay": Field(float, 0.1, non_negative, help="AdamW weight decay"),
    "soft_weight": Field(float, 0.5, _weight, help="SCE: weight of the zero-shot teacher's soft targets (released --sl)"),
    "soft_temperature": Field(float, 2.0, positive, help="SCE: temperature of the teacher's softmax (released --sl_T)"),
    "select": Field(str, "last", _selection, help="last epoch's head, or best_test_epoch as the released code"),
    "seed": Field(int, 0, help="seed of the mini-batch order"),
    "real_filter": Field(bool, True, help="RF: drop generated images whose nearest few-shot real images are of another class"),
    "rf_neighbours": Field(int, 1, positive, help="few-shot real neighbours RF's majority vote reads"),
    "ranking": CLER_SCHEMA["ranking"],
}


def work(p: dict, paths: DatasetPaths) -> StageResult:
    started = time.perf_counter()
    meta = paths.read_meta()
    out = paths.metrics / "tune.json"
    test_feats, test_labels = real_test_set(paths.features, meta)
    text_feats, _, _ = load_features(paths.features / "text.safetensors")
    gen_feats, gen_labels = external_sets(paths.features, paths.generated, meta)["generated"]
    total = kept = len(gen_feats)
    if p["real_filter"]:
        real_feats, real_labels, _ = load_features(paths.features / "original.safetensors")
        mask = real_filter_mask(gen_feats, gen_labels, real_feats, real_labels, neighbours=p["rf_neighbours"])
        gen_feats, gen_labels, kept = gen_feats[mask], gen_labels[mask], int(mask.sum())
    settings = TuneSettings(**{k: p[k] for k in TuneSettings.__dataclass_fields__})
    scores = tune_scores(gen_feats, gen_labels, test_feats, test_labels, text_feats, settings, metric=meta["metric"],
                         ranking=p["ranking"])
    result = {"metric": meta["metric"], "ranking": p["ranking"], "real_filter": p["real_filter"],
              "select": p["select"], **scores,
              "images": total, "images_kept": kept,
              "seconds": time.perf_counter() - started}
    storage.atomic_write_json(out, result)
    click.echo(f"tune: zero-shot {scores['zero_shot']:.2f}  CE {scores['ce']:.2f}  SCE {scores['sce']:.2f} "
               f"on {kept} generated images -> {out}")
    return StageResult(metrics={f"tune.{k}": scores[k] for k in scores} | {"tune.images_kept": kept}, artifacts=[out])


command = dataset_stage_command(
    "tune", SCHEMA, work, "Classifier tuning (CE, SCE) on generated features from the zero-shot head (params: tune.*).",
    requires=lambda paths, p: paths.scored_features()
)
