"""Stages `pool` and `index` (command `retrieve-index`): the caption pool the retrieval baseline
searches, and the FAISS index over its captions' CLIP text embeddings.

`pool` writes the embedded default's noisy digits pool as parquet shards (data/pool); a user
with a real pool (LAION parquet shards from img2dataset, WebDataset tars) points `index.pool`
at it instead. `retrieve-index` embeds every caption and writes data/index (index.faiss,
captions.parquet, meta.json); its cost is amortised over the retrieved images in the ledger
(stage name `index`).
"""

from __future__ import annotations

from pathlib import Path

import click

from genbench import storage
from genbench.clip_models import load_clip
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.features import encode_texts, model_sha256
from genbench.retrieval.embedded_pool import POOL_BUILDERS, composition
from genbench.retrieval.index import INDEX_KINDS, write_caption_index
from genbench.retrieval.pool import write_parquet_pool
from stages.inputs import INDEX_DIR, POOL_DIR
from stages.options import params_option
from stages.params import Field, non_negative, positive
from stages.runner import StageResult, run_stage


def unit_interval(value) -> str | None:
    return None if 0 <= value <= 1 else "must lie between 0 and 1"


POOL_SCHEMA = {
    "source": Field(str, "digits", choices=POOL_BUILDERS, help="embedded pool builder"),
    "image_size": Field(int, 32, positive),
    "per_class": Field((int, type(None)), None, positive, help="training images per class to use (null: all)"),
    "wrong_fraction": Field(float, 0.1, unit_interval, help="captions naming another class"),
    "vague_fraction": Field(float, 0.15, unit_interval, help="captions naming no class"),
    "distractor_fraction": Field(float, 0.1, unit_interval, help="extra images with no class, per real image"),
    "seed": Field(int, 0, non_negative),
    "shard_size": Field(int, 1000, positive),
}

INDEX_SCHEMA = {
    "pool": Field(str, str(POOL_DIR), help="pool directory: parquet shards or WebDataset tars"),
    "model": Field(str, "tiny-clip", help="CLIP model for caption and query embeddings"),
    "pretrained": Field((str, type(None)), None),
    "device": Field(str, "auto"),
    "batch_size": Field(int, 256, positive),
    "kind": Field(str, "auto", choices=INDEX_KINDS, help="auto | flat | ivfpq | hnsw"),
    "exact_max": Field(int, 100_000, positive, help="auto: exact flat index up to this many captions, ivfpq above"),
    "nprobe": Field(int, 16, positive, help="inverted lists visited per ivfpq search"),
    "seed": Field(int, 0, non_negative),
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


def check_index(p: dict) -> None:
    if not Path(p["pool"]).exists():
        raise GenBenchError(f"params key 'index.pool' = {p['pool']!r} does not exist; run the pool stage or point it at your pool")
    resolve_device(p["device"], "index.device")


def index_work(p: dict) -> StageResult:
    device = resolve_device(p["device"], "index.device")
    bundle = load_clip(p["model"], p["pretrained"], seed=p["seed"], device=device)
    model = {"name": p["model"], "pretrained": p["pretrained"], "seed": p["seed"], "weights_sha256": model_sha256(bundle.model)}
    with storage.atomic_dir(INDEX_DIR) as tmp:
        meta = write_caption_index(tmp, p["pool"], lambda texts: encode_texts(bundle, texts, device=device), model=model,
                                   kind=p["kind"], exact_max=p["exact_max"], nprobe=p["nprobe"], batch_size=p["batch_size"], seed=p["seed"])
    click.echo(f"retrieve-index: {meta['count']} captions, {meta['kind']} index (faiss {meta['faiss_version']}) -> {INDEX_DIR}")
    return StageResult(metrics={"captions_indexed": meta["count"]}, items=meta["count"], data_type="retrieved",
                       tags={"index_kind": meta["kind"], "clip_model": p["model"], "faiss_version": meta["faiss_version"]})


@click.command("pool")
@params_option
def pool_command(params_file: str) -> None:
    """Write the embedded default's noisy captioned-digits pool as parquet shards (params: pool.*)."""
    run_stage("pool", params_file, POOL_SCHEMA, pool_work)


@click.command("retrieve-index")
@params_option
def command(params_file: str) -> None:
    """Embed a caption pool with CLIP and build its FAISS index (params: index.*)."""
    run_stage("index", params_file, INDEX_SCHEMA, index_work, check_index)
