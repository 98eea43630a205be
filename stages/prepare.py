"""Stage `prepare`: the dataset's real test split and the k-shot original training set, as image
shards with manifests, plus the dataset metadata (class names, templates, metric) later stages read."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from genbench import storage
from genbench.datasets import get_dataset
from genbench.kshot import drawn_for, kshot_indices
from genbench.labels import manifest_label_columns
from stages.inputs import DatasetPaths
from stages.options import dataset_option, params_option, resolve_dataset
from stages.params import Field, non_negative, positive
from stages.runner import StageResult, run_stage

SCHEMA = {
    "image_size": Field(int, 32, positive),
    "shots": Field(int, 16, positive, help="original training images per class"),
    "seed": Field(int, 0, non_negative),
    "data_root": Field(str, "data/raw"),
}


def _rows(ds, split: str, labels: np.ndarray, source_idx: np.ndarray,
          drawn_classes: np.ndarray | None = None) -> list[dict]:
    columns = manifest_label_columns(labels, ds.classnames, drawn_classes)
    return [
        {"key": f"{ds.name}-{split}-{i:06d}", "dataset": ds.name, "split": split, **cols, "source_index": int(src)}
        for i, (cols, src) in enumerate(zip(columns, source_idx))
    ]


def work(p: dict, paths: DatasetPaths) -> StageResult:
    ds = get_dataset(paths.dataset)
    root = Path(p["data_root"])
    train = ds.loader("train", root, p["image_size"])
    test = ds.loader("test", root, p["image_size"])
    idx = kshot_indices(train.labels, ds.num_classes, p["shots"], p["seed"], ds.classnames)
    with storage.atomic_dir(paths.prepared) as tmp:
        storage.write_image_set(tmp / "test", test.images, _rows(ds, "test", test.labels, np.arange(len(test))))
        original = _rows(ds, "original", train.labels[idx], idx, drawn_for(ds.num_classes, p["shots"]))
        storage.write_image_set(tmp / "original", train.images[idx], original)
        meta = {**ds.metadata(), "image_size": p["image_size"], "shots": p["shots"], "num_test": len(test), "num_original": len(idx)}
        storage.atomic_write_json(tmp / "meta.json", meta)
    click.echo(f"prepare: {ds.name}: {len(test)} test images, {len(idx)} original ({p['shots']}-shot) -> {paths.prepared}")
    return StageResult(metrics={"num_test": len(test), "num_original": len(idx)}, items=len(idx))


@click.command("prepare")
@params_option
@dataset_option
def command(params_file: str, dataset: str | None) -> None:
    """Materialise the test split and the k-shot original set (params: prepare.*)."""
    name = resolve_dataset(params_file, dataset)
    get_dataset(name)
    run_stage("prepare", params_file, SCHEMA, lambda p: work(p, DatasetPaths(name)), dataset=name)
