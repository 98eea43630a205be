"""Stage `index`: the FAISS index over a caption pool's CLIP text embeddings.

It embeds every caption of `index.pool` and writes data/index (index.faiss, captions.parquet,
meta.json); its cost is amortised over the retrieved images in the ledger.
"""

from __future__ import annotations

from pathlib import Path

import click

from genbench import storage
from genbench.clip_models import load_clip
from genbench.devices import resolve_device
from genbench.errors import GenBenchError
from genbench.features import encode_texts, model_sha256
from genbench.retrieval.index import INDEX_KINDS, write_caption_index
from stages.frame.options import params_option
from stages.frame.params import Field, non_negative, positive
from stages.frame.paths import INDEX_DIR, POOL_DIR
from stages.frame.runner import StageResult, run_stage


SCHEMA = {
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
    click.echo(f"index: {meta['count']} captions, {meta['kind']} index (faiss {meta['faiss_version']}) -> {INDEX_DIR}")
    return StageResult(metrics={"captions_indexed": meta["count"]}, items=meta["count"], data_type="retrieved",
                       tags={"index_kind": meta["kind"], "clip_model": p["model"], "faiss_version": meta["faiss_version"]})


@click.command("index")
@params_option
def command(params_file: str) -> None:
    """Embed a caption pool with CLIP and build its FAISS index (params: index.*)."""
    run_stage("index", params_file, SCHEMA, index_work, check_index)
