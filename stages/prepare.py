"""Stage `prepare`: the dataset's real test split and the k-shot original training set, as image
shards with manifests, plus the dataset metadata (class names, templates, metric) later stages read.
With `pool_shots` it also writes a larger `pool_shots`-shot original set (an independent k-shot
draw with the same seed), which only the shots sweep reads: Figure 3's original-data curve
beyond `shots` images per class.

Labels are read first; only the k-shot images and the test images are decoded, `batch_size` at
a time by `workers` threads, and written into the shards as they come, so memory does not grow
with the size of either split."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from genbench import storage
from genbench.datasets import get_dataset
from genbench.kshot import drawn_for, kshot_indices
from genbench.labels import manifest_label_columns
from genbench.subsample import per_class_subsample
from stages.frame.options import dataset_option, params_option, resolve_dataset
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import DatasetPaths
from stages.frame.runner import StageResult, run_stage

SCHEMA = {
    "image_size": Field(int, 32, positive),
    "shots": Field(int, 16, positive, help="original training images per class"),
    "pool_shots": Field((int, type(None)), None, positive,
                        help="null: none; N: also an N-shot original pool (prepared/original_pool) the shots sweep draws from"),
    "seed": Field(int, 0, non_negative),
    "data_root": Field(str, "data/raw"),
    "test_per_class": Field((int, type(None)), None, positive,
                            help="null: the whole test split; N: a seeded subsample of at most N per class"),
    "templates": Field((int, type(None)), None, positive,
                       help="null: every prompt template of the dataset; N: its first N (meta.json's list, which the "
                            "zero-shot heads, retrieval queries and TI prompts read)"),
    "batch_size": Field(int, 256, positive, help="images decoded per batch"),
    "workers": Field(int, 4, positive, help="decoding threads"),
}


POOL = "original_pool"  # the larger original set of the shots sweep (Figure 3), when prepare.pool_shots is set


def _rows(ds, split: str, labels: np.ndarray, source_idx: np.ndarray,
          drawn_classes: np.ndarray | None = None) -> list[dict]:
    columns = manifest_label_columns(labels, ds.classnames, drawn_classes)
    return [
        {"key": f"{ds.name}-{split}-{i:06d}", "dataset": ds.name, "split": split, **cols, "source_index": int(src)}
        for i, (cols, src) in enumerate(zip(columns, source_idx))
    ]


def _write_split(directory: Path, ds, split: str, reader, indices: np.ndarray, p: dict,
                 drawn_classes: np.ndarray | None = None) -> None:
    """The images of `reader` at `indices` as an image set, decoded and written batch by batch."""
    rows = _rows(ds, split, reader.labels[indices], indices, drawn_classes)
    images = reader.images(indices, batch_size=p["batch_size"], workers=p["workers"])
    storage.write_image_stream(directory, zip(images, rows))


def work(p: dict, paths: DatasetPaths) -> StageResult:
    ds = get_dataset(paths.dataset)
    root = Path(p["data_root"])
    train = ds.open_split("train", root, p["image_size"])
    test = ds.open_split("test", root, p["image_size"])
    idx = kshot_indices(train.labels, ds.num_classes, p["shots"], p["seed"], ds.classnames)
    test_idx = per_class_subsample(test.labels, ds.num_classes, p["test_per_class"], p["seed"])
    with storage.atomic_dir(paths.prepared) as tmp:
        _write_split(tmp / "test", ds, "test", test, test_idx, p)
        _write_split(tmp / "original", ds, "original", train, idx, p, drawn_for(ds.num_classes, p["shots"]))
        if p["pool_shots"] is not None:
            pool_idx = kshot_indices(train.labels, ds.num_classes, p["pool_shots"], p["seed"], ds.classnames)
            _write_split(tmp / POOL, ds, POOL, train, pool_idx, p, drawn_for(ds.num_classes, p["pool_shots"]))
        meta = {**ds.metadata(), "image_size": p["image_size"], "shots": p["shots"], "num_test": len(test_idx), "num_original": len(idx)}
        meta["templates"] = meta["templates"][:p["templates"]]
        storage.atomic_write_json(tmp / "meta.json", meta)
    click.echo(f"prepare: {ds.name}: {len(test_idx)} test images, {len(idx)} original ({p['shots']}-shot) -> {paths.prepared}")
    return StageResult(metrics={"num_test": len(test_idx), "num_original": len(idx)}, items=len(idx))


@click.command("prepare")
@params_option
@dataset_option
def command(params_file: str, dataset: str | None) -> None:
    """Materialise the test split and the k-shot original set (params: prepare.*)."""
    name = resolve_dataset(params_file, dataset)
    get_dataset(name)
    run_stage("prepare", params_file, SCHEMA, lambda p: work(p, DatasetPaths(name)), dataset=name)
