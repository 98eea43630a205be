"""Stage `shots` (`genbench shots --dataset NAME`): Figure 3's data for one dataset.

Writes metrics/NAME/shots.json: CLER of each data source at 1, 2, 4, ... images per class
(params `shots`), and the linear probe of the pooled sets; the original curve draws from
prepared/original_pool (prepare.pool_shots) when the embed stage has encoded one, else from the
prepare.shots-shot original set.
"""

from __future__ import annotations

from pathlib import Path

import click

from genbench import storage
from genbench.tables.shots import cler_by_shots
from stages.frame.dataset_command import dataset_stage_command
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult


def _shot_list(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
        return "must be null or a list of positive whole numbers, e.g. [1, 2, 4, 8, 16]"
    return None


SCHEMA = {
    "counts": Field((list, type(None)), None, _shot_list, help="images per class to score (null: 1, 2, 4, ...)"),
    "draws": Field(int, 3, positive, help="random subsets per shot count"),
    "seed": Field(int, 0, non_negative),
    "probe": Field(bool, True, help="also score each draw of the pooled sets (original, retrieved, generated) by the linear probe (Figure 3 as published, Figure 9)"),
}


def shots_inputs(paths: DatasetPaths) -> list[Path]:
    """What shots reads: the prepared metadata and original manifest, the generated manifest and
    the test, generated and original features (retrieved features when there are some)."""
    return [paths.prepared / "meta.json", paths.prepared / "original" / storage.MANIFEST, paths.generated / storage.MANIFEST,
            *(paths.features / f"{name}.safetensors" for name in ("test", "generated", "original"))]


def shots_work(p: dict, paths: DatasetPaths) -> StageResult:
    from genbench.features import load_features
    from genbench.feature_sets import external_sets, real_test_set, targets

    meta = paths.read_meta()
    test_feats, test_labels = real_test_set(paths.features, meta)
    n, metric = len(meta["classnames"]), meta["metric"]
    result = {"dataset": {k: meta[k] for k in ("name", "group", "metric", "num_test", "shots") if k in meta}
              | {"classes": n}, "draws": p["draws"], "seed": p["seed"], "sources": {}}
    sets = external_sets(paths.features, paths.generated, meta)
    original = paths.prepared / "original"
    pool = paths.features / "original_pool.safetensors"
    if pool.is_file():  # prepare.pool_shots: the original curve draws from the larger pool
        feats, labels, _ = load_features(pool)
        sets["original"] = (feats, targets(meta, labels, "original pool labels"))
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


command = dataset_stage_command(
    "shots", SCHEMA, shots_work, "CLER of each data source at 1, 2, 4, ... images per class: Figure 3's data (params: shots.*).",
    requires=lambda paths, p: shots_inputs(paths))
