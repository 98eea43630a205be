"""Executors: who makes the shards of a generation plan and who encodes the shards of image sets.

`local` works through the shards in this process; `ray` spreads them over the GPUs (or CPUs) of a
Ray cluster, one model per worker, whole shards per task, failed shards retried. Both run the same
worker code (genbench.executors.workers) on the same picklable worker spec, so they write the same
shards and manifest rows (the same bytes on the same kind of CPU with the same `cpu_threads`).

    run = EXECUTORS[name](out_dir, shards, indices, GenerationWorker(...), row_extra, plan_hashes,
                          options=ExecutorOptions(address=...))
    run.rows, run.made, run.readings
    encoded = EMBED_EXECUTORS[name]({"test": dir, ...}, EmbeddingWorker(...), options=...)
    encoded.sets["test"].features
"""

from genbench.executors.local import embed_local, generate_local
from genbench.executors.on_ray import embed_on_ray, generate_on_ray
from genbench.executors.runs import EmbedRun, EncodedSet, ExecutorOptions, ShardRun
from genbench.executors.workers import (
    EmbeddingWorker,
    GenerationWorker,
    ShardMaker,
    load_encoder,
    load_generator,
)

# name -> fn(out_dir, shards, indices, worker: GenerationWorker, row_extra, plan_hashes, *, init_images, options,
#            progress, on_shard_done) -> ShardRun; rows in the order of `indices`, complete shards skipped
EXECUTORS = {"local": generate_local, "ray": generate_on_ray}

# name -> fn(image_sets: {name: directory}, worker: EmbeddingWorker, *, options, progress) -> EmbedRun
EMBED_EXECUTORS = {"local": embed_local, "ray": embed_on_ray}

__all__ = [
    "EMBED_EXECUTORS", "EXECUTORS", "EmbedRun", "EmbeddingWorker", "EncodedSet", "ExecutorOptions",
    "GenerationWorker", "ShardMaker", "ShardRun", "load_encoder", "load_generator",
]
