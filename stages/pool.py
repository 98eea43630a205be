"""Stage `pool`: the caption pool the retrieval baseline searches.

It writes the embedded default's noisy captioned digits as parquet shards (data/pool); a user with
a real pool (LAION parquet shards from img2dataset, WebDataset tars) points `index.pool` at it
instead and this stage's output goes unread.
"""

from __future__ import annotations

import click

from genbench import storage
from genbench.retrieval.embedded_pool import POOL_BUILDERS, composition
from genbench.retrieval.pool import write_parquet_pool
from stages.frame.options import params_option
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import POOL_DIR
from stages.frame.runner import StageResult, run_stage


def unit_interval(value) -> str | None:
    return None if 0 <= value <= 1 else "must lie between 0 and 1"


SCHEMA = {
    "source": Field(str, "digits", choices=POOL_BUILDERS, help="embedded pool builder"),
    "image_size": Field(int, 32, positive),
    "per_class": Field((int, type(None)), None, positive, help="training images per class to use (null: all)"),
    "wrong_fraction": Field(float, 0.1, unit_interval, help="captions naming another class"),
    "vague_fraction": Field(float, 0.15, unit_interval, help="captions naming no class"),
    "distractor_fraction": Field(float, 0.1, unit_interval, help="extra images with no class, per real image"),
    "seed": Field(int, 0, non_negative),
    "shard_size": Field(int, 1000, positive),
}

def pool_work(p: dict) -> StageResult:
    items = POOL_BUILDERS[p["source"]](p["image_size"], p["seed"], per_class=p["per_class"], wrong_fraction=p["wrong_fraction"],
                                       vague_fraction=p["vague_fraction"], distractor_fraction=p["distractor_fraction"])
    kinds = composition(items)
    with storage.atomic_dir(POOL_DIR) as tmp:
        shards = write_parquet_pool(tmp, items, p["shard_size"])
        storage.atomic_write_json(tmp / "pool.json", {"source": p["source"], "items": len(items), "composition": kinds,
                                                      "shards": [s.name for s in shards], "params": p})
    click.echo(f"pool: {len(items)} captioned images ({', '.join(f'{k} {v}' for k, v in kinds.items())}) -> {POOL_DIR}")
    return StageResult(metrics={"pool_items": len(items), **{f"pool_{k}": v for k, v in kinds.items()}}, items=len(items))


@click.command("pool")
@params_option
def command(params_file: str) -> None:
    """Write the embedded default's noisy captioned-digits pool as parquet shards (params: pool.*)."""
    run_stage("pool", params_file, SCHEMA, pool_work)
